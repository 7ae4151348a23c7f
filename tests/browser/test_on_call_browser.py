"""The on-call pages and actions in a real browser (Debian's Chromium), on a real store with the
lane's queue layout, with hostile text in every field an operator reads.

- the overview: the verdict's banner and the history graphs (drawn from a real worker's known
  work), the last day, pause and resume with the answer on the page;
- the job browser and the job page: arguments cut with "show all", tries, the holder's worker,
  host and pid, a failure's traceback; retry, delete, cancel, each answered on the page (a
  refusal with its reason); a search by id; a job that is gone;
- locks (holders, never tokens), schedules (a job that claims no slot; run now), dead letters
  (why one cannot be requeued), downloads filtered by user, status and id.

Hostile text (markup and script, a right-to-left override, control characters, 10 KB strings)
must show as text: no dialog opens, no element is injected, the literal text is on the page.
Screenshots of every page go to ``test-output/screenshots/``; with ``SEEN_TEST_DOCS_IMAGES=1``
the overview and the job page are also written to ``docs/img/`` (the README's).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from redis.asyncio import Redis

from cache.download import DownloadStatus, ProgressUpdate
from cache.manager import CacheManager
from jobs.client import job_record
from jobs.deadletter import make_dead_letter, push_dead_letters
from tests.browser.test_dashboard_browser import new_page, until_js
from tests.conftest import TestServer
from tests.support.dashboard import running_dashboard
from tests.support.layout import LAYOUT, job_key, lease_key, put_job
from tests.support.processes import Fleet, run_burst_worker, worker_settings
from tests.support.queue import producer
from tests.support.waiting import fresh_beats, wait_until
from worker.heartbeat import WorkerBeat, add_beat

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

HOSTILE = (
    '<script>alert("x")</script><img src=x onerror=alert(1)> '
    "\u202eevil-rtl\u202c \x1b[31mred\x1b[0m \x07bell"
)
"""Markup, a script, a right-to-left override and control characters."""
SHOWN_CONTROL = "\u241b[31mred"
"""How the page shows the escape character: its Unicode picture."""
LONG = HOSTILE + "A" * 10_000
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"


def docs_image(shot: Path, name: str) -> None:
    """Copy a screenshot into docs/img/ when asked to (SEEN_TEST_DOCS_IMAGES=1)."""
    if os.environ.get("SEEN_TEST_DOCS_IMAGES") == "1":
        shutil.copyfile(shot, DOCS_IMAGES / name)


class Watch:
    """A page whose dialogs (an injected ``alert``) and console errors are recorded."""

    def __init__(self, page: Page, problems: list[str]) -> None:
        self.page = page
        self.problems = problems
        self.dialogs: list[str] = []
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    async def assert_inert(self) -> None:
        """Nothing hostile ran or was injected on the page now shown."""
        injected = await self.page.evaluate(
            "document.querySelectorAll('img[src=\"x\"], main script').length"
        )
        assert injected == 0, "an element was injected"
        assert not self.dialogs, self.dialogs


async def body_text(page: Page) -> str:
    return await page.locator("main").inner_text()


async def notice(page: Page) -> tuple[bool, str]:
    box = page.locator("#notice")
    await box.wait_for()
    classes = await box.get_attribute("class") or ""
    return "good" in classes.split(), await box.inner_text()


async def test_overview_graphs_banner_pause_and_resume(
    chromium: Browser, server: TestServer, raw: Redis, tmp_path: Path, screenshots: Path
) -> None:
    problems: list[str] = []
    queue = producer(server.addr)
    sections = {"worker": {"job_modules": ["tests.support.jobs"]}}
    try:
        with Fleet(tmp_path, server.addr, **sections) as fleet:
            fleet.start(1)

            async def up() -> bool:
                return len(await fresh_beats(raw)) == 1

            await wait_until(up, 30, "a worker")
            for n in range(20):
                await queue.enqueue_job("ping", _job_id=f"graph-ok-{n}")
            for n in range(3):
                await queue.enqueue_job("test_sleep", 0.2, _job_id=f"graph-slow-{n}")
                message = f"upstream returned 503 for download dl-{40 + n}"
                await queue.enqueue_job("test_fail", message, _job_id=f"graph-bad-{n}")
            async with running_dashboard(server.url, allow_actions=True) as dash:
                page = await new_page(chromium, problems)
                watch = Watch(page, problems)
                await page.goto(dash.url)
                await until_js(
                    page,
                    "window.seenHistory && window.seenHistory.loads > 0 && "
                    "(window.seenHistory.totals.complete || 0) >= 23 && "
                    "(window.seenHistory.totals.failed || 0) >= 3",
                    within=40,
                )
                drawn = await page.evaluate(
                    "Number(document.querySelector('#chart-throughput path[data-series="
                    '"complete"]\').dataset.drawn)'
                )
                assert drawn == 60  # one point per minute of the last hour
                durations = await page.evaluate(
                    "Number(document.querySelector('#chart-duration path[data-series="
                    '"p95"]\').dataset.drawn)'
                )
                assert durations >= 1
                level = await page.locator("#banner").get_attribute("data-level")
                assert level in ("green", "amber"), await page.locator("#banner").inner_text()
                await page.screenshot(path=str(screenshots / "overview.png"), full_page=True)
                docs_image(screenshots / "overview.png", "dashboard-overview.png")
                # the page an operator opens from there: a failed job, its traceback
                await page.goto(dash.url + "jobs?state=failed")
                await page.locator("tr.job-row[data-job='graph-bad-0'] a").click()
                await page.locator("#traceback").wait_for()
                await page.screenshot(path=str(screenshots / "job-page.png"), full_page=True)
                docs_image(screenshots / "job-page.png", "dashboard-job.png")
                await page.goto(dash.url)
                await until_js(page, "window.seenHistory && window.seenHistory.loads > 0")
                await page.get_by_role("button", name="last day").click()
                await until_js(page, "window.seenHistory.range === 'day'")
                assert await page.evaluate("window.seenHistory.points") == 144

                await page.fill("#pause-form input[name=reason]", HOSTILE)
                await page.click("#pause")
                ok, said = await notice(page)
                assert ok and "is paused by dashboard" in said, said
                paused = await page.locator("#paused").inner_text()
                assert '<script>alert("x")</script>' in paused and SHOWN_CONTROL in paused
                assert await page.locator("#banner").get_attribute("data-level") == "amber"
                assert "is paused" in await page.locator("#banner").inner_text()
                assert await raw.exists(LAYOUT.paused_key)
                await watch.assert_inert()
                await page.screenshot(path=str(screenshots / "overview-paused.png"))
                await page.click("#resume")
                ok, said = await notice(page)
                assert ok and "resumed" in said, said
                assert await page.locator("#paused").count() == 0
                assert not await raw.exists(LAYOUT.paused_key)
                await watch.assert_inert()
    finally:
        await queue.aclose()
    assert not problems, problems


async def plant_jobs(raw: Redis, manager: CacheManager, server: TestServer) -> dict[str, str]:
    """A failed job (a real worker's result with its traceback), then a waiting job with
    hostile 10 KB arguments, a deferred one and one held by a worker with a hostile host."""
    queue = producer(server.addr)
    try:
        await queue.enqueue_job("test_fail", LONG, _job_id="bad-1")
    finally:
        await queue.aclose()
    settings = worker_settings(server.addr, worker={"job_modules": ["tests.support.jobs"]})
    await run_burst_worker(settings)
    now = int(time.time() * 1000)
    await put_job(raw, "hostile-1", job_record("test_echo_job", [LONG, {"k": HOSTILE}]), now - 500)
    await put_job(raw, "later-1", job_record("ping", []), now + 3_600_000)
    await put_job(raw, "busy-1", job_record("test_sleep", [30]), now - 800)
    worker = "evil-host-4242-abcdef"
    await raw.set(lease_key("busy-1"), f"{worker}:feedf00d-1", px=120_000)
    await raw.set(LAYOUT.for_job("busy-1").retry("busy-1"), 2)
    beat = WorkerBeat(worker_id=worker, host=HOSTILE, pid=4242, state="running", last_beat_ms=now)
    async with raw.pipeline(transaction=False) as pipe:
        add_beat(pipe, manager.keys, beat, 60)
        await pipe.execute()
    return {"failed": "bad-1", "waiting": "hostile-1", "deferred": "later-1", "running": "busy-1"}


async def test_job_browser_job_page_and_actions(
    chromium: Browser, server: TestServer, raw: Redis, manager: CacheManager, screenshots: Path
) -> None:
    problems: list[str] = []
    ids = await plant_jobs(raw, manager, server)
    async with running_dashboard(server.url, allow_actions=True) as dash:
        page = await new_page(chromium, problems)
        watch = Watch(page, problems)
        await page.goto(dash.url + "jobs")
        row = page.locator(f"tr.job-row[data-job='{ids['waiting']}']")
        await row.wait_for()
        assert "test_echo_job" in await row.inner_text()
        assert "looked at" in await page.locator("#examined").inner_text()
        await page.screenshot(path=str(screenshots / "jobs.png"), full_page=True)
        await page.select_option("#job-filters select[name=state]", "running")
        await page.click("#job-filters button")
        running = page.locator(f"tr.job-row[data-job='{ids['running']}']")
        await running.wait_for()
        assert "evil-host-4242-abcdef" in await running.inner_text()
        assert "<img src=x onerror=alert(1)>" in await running.inner_text()
        await watch.assert_inert()

        # the job page of hostile arguments: cut, then whole on "show all"
        await page.goto(dash.url + "jobs")
        await row.locator("a").click()
        await page.wait_for_url(f"**/jobs/{ids['waiting']}")
        args = await page.locator("#args").inner_text()
        assert args.startswith('["<script>alert(\\"x\\")</script><img src=x onerror=alert(1)>')
        assert "\\u001b[31m" in args and "characters)" in args and len(args) < 5000  # JSON
        await page.click("#show-all")
        full = await page.locator("#args").inner_text()
        assert len(full) > 10_000 and full.count("A") >= 10_000
        await watch.assert_inert()

        # the failed job: its error and traceback, as text
        await page.goto(dash.url + f"jobs/{ids['failed']}")
        assert await page.locator("#job-state").inner_text() == "failed"
        trace = await page.locator("#traceback").inner_text()
        assert "raise ValueError(message)" in trace and "ValueError: <script>" in trace
        assert SHOWN_CONTROL in trace and re.search(r"… \(100\d\d chars\)", trace)  # cut, as text
        assert (await page.locator("#tries").inner_text()).startswith("1 of 1")
        await watch.assert_inert()
        await page.screenshot(path=str(screenshots / "job-failed.png"), full_page=True)

        # the running job: who holds it, and the actions (a refusal says why)
        await page.goto(dash.url + f"jobs/{ids['running']}")
        holder = await page.locator("#holder").inner_text()
        assert "evil-host-4242-abcdef on" in holder and "pid 4242" in holder
        assert "<img src=x onerror=alert(1)>" in holder and "lease" in holder
        assert (await page.locator("#tries").inner_text()).startswith("2 of")
        await page.screenshot(path=str(screenshots / "job.png"), full_page=True)
        await page.click("#cancel")
        ok, said = await notice(page)
        assert ok and "abort requested" in said, said
        assert await raw.zscore(LAYOUT.for_job(ids["running"]).abort, ids["running"]) is not None
        await watch.assert_inert()

        # retry now: the deferred job becomes due; delete the waiting one
        await page.goto(dash.url + f"jobs/{ids['deferred']}")
        await page.click("#retry")
        ok, said = await notice(page)
        assert ok and "made due now" in said, said
        assert await page.locator("#job-state").inner_text() == "waiting"
        await page.goto(dash.url + f"jobs/{ids['waiting']}")
        # the job is taken by a worker meanwhile: the refusal names why
        await raw.set(lease_key(ids["waiting"]), "other-1-1-abcdef:ab-1", px=60_000)
        await page.click("#delete")
        ok, said = await notice(page)
        assert not ok and "it is running: cancel it instead" in said, said
        await raw.delete(lease_key(ids["waiting"]))
        await page.click("#delete")
        ok, said = await notice(page)
        assert ok and "deleted" in said and page.url.endswith("/jobs"), (said, page.url)
        assert not await raw.exists(job_key(ids["waiting"]))

        # search by id; a job the store no longer has
        await page.fill("#job-search input[name=id]", ids["failed"])
        await page.click("#job-search button")
        assert "failed" in await page.locator("#found").inner_text()
        response = await page.goto(dash.url + f"jobs/{ids['waiting']}")
        assert response is not None and response.status == 404
        assert "not found" in await page.locator("#job-state").inner_text()
        await watch.assert_inert()
    assert not [p for p in problems if "404" not in p], problems


async def test_locks_schedules_dead_letters_and_downloads(
    chromium: Browser, server: TestServer, raw: Redis, manager: CacheManager, screenshots: Path
) -> None:
    problems: list[str] = []
    lock = await manager.locks.acquire("nightly-report", ttl=60)
    forged = "<img src=x onerror=alert(1)>/" + "\u202eevil-host" + "/42:" + "ab" * 16
    await raw.set(manager.keys.lock("forged"), forged, px=60_000)
    record = {"t": 1, "f": "ping", "a": [], "k": {}, "et": int(time.time() * 1000)}
    letters = [
        make_dead_letter(
            manager, job_id="dl-job-1", function="ping", reason=HOSTILE, payload=record
        ),
        make_dead_letter(manager, job_id="dl-job-2", function=HOSTILE, reason="bad", payload=LONG),
    ]
    await push_dead_letters(manager, letters)
    for job, user, status in (
        ("dl-a1", "alice", DownloadStatus.DOWNLOADING),
        ("dl-a2", "alice", DownloadStatus.PAUSED),
        ("dl-b1", "bob", DownloadStatus.DOWNLOADING),
    ):
        await manager.download.set_progress(
            ProgressUpdate(job_id=job, user_id=user, status=status, seq=1, bytes_total=100)
        )
    async with running_dashboard(server.url, allow_actions=True) as dash:
        page = await new_page(chromium, problems)
        watch = Watch(page, problems)

        await page.goto(dash.url + "locks")
        text = await body_text(page)
        me = manager.locks.holder
        assert f"{me.who}\t{me.host}\t{me.pid}" in text.replace("  ", "\t") or me.who in text
        assert "<img src=x onerror=alert(1)>" in text and "evil-host" in text
        assert lock.token.rpartition(":")[2] not in text and "ab" * 16 not in text
        await watch.assert_inert()
        await page.screenshot(path=str(screenshots / "locks.png"), full_page=True)

        await page.goto(dash.url + "schedules")
        repair = page.locator("#job-repair_pending_progress")
        assert "Claims no slot" in await repair.inner_text()
        await page.locator("#job-log_cache_stats button").click()
        ok, said = await notice(page)
        assert ok and "run log_cache_stats: enqueued as job" in said, said
        await page.screenshot(path=str(screenshots / "schedules.png"), full_page=True)

        await page.goto(dash.url + "dead-letters")
        rows = page.locator("tr.letter")
        assert await rows.count() == 2
        good = page.locator("tr.letter", has_text="dl-job-1")
        assert "as job dl-job-1 (its own id)" in await good.inner_text()
        bad = page.locator("tr.letter", has_text="dl-job-2")
        assert await bad.locator("input[type=checkbox]").is_disabled()
        assert "cannot: payload" in await bad.inner_text()
        assert '<script>alert("x")</script>' in await body_text(page)
        await watch.assert_inert()
        await page.screenshot(path=str(screenshots / "dead-letters-why.png"), full_page=True)
        await good.locator("input[type=checkbox]").check()
        group = page.locator("section.group", has=good)
        await group.get_by_role("button", name="Requeue selected", exact=True).click()
        ok, said = await notice(page)
        assert ok and "requeued as job dl-job-1 (its original id)" in said, said
        assert await rows.count() == 1

        await page.goto(dash.url + "downloads?user=alice")
        await until_js(page, "document.getElementById('conn').textContent === 'live'")
        await page.locator("tr[data-job='dl-a1']").wait_for()
        await page.locator("tr[data-job='dl-a2']").wait_for()
        assert await page.locator("tr[data-job='dl-b1']").count() == 0
        await page.screenshot(path=str(screenshots / "downloads-filtered.png"))
        await page.goto(dash.url + "downloads?status=paused")
        await page.locator("tr[data-job='dl-a2']").wait_for()
        assert await page.locator("tbody tr").count() == 1
        await page.goto(dash.url + "downloads?id=dl-b1")
        await page.locator("tr[data-job='dl-b1']").wait_for()
        assert await page.locator("tbody tr").count() == 1
        await watch.assert_inert()
    await lock.release()
    assert not problems, problems
