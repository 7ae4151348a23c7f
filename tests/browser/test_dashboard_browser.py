"""The dashboard in a real browser, on a real store with a real worker process.

- live progress bars move and end at the final state; a reconnect resumes without a gap or a
  duplicate (the browser's events are compared with the streams' entries);
- a dead letter appears and, with actions on, is requeued from the page and applied;
- a wrong token is refused, the right one lets in;
- a screenshot of each page is written to ``test-output/screenshots/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page
from redis.asyncio import Redis

from cache.download import DownloadStatus, ProgressUpdate
from cache.manager import CacheManager
from jobs.client import ProgressPublisher, enqueue_update
from tests.conftest import TestServer
from tests.support.dashboard import TOKEN, running_dashboard
from tests.support.processes import Fleet
from tests.support.waiting import fresh_beats, items, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

DOWNLOADS = [f"movie-{n}" for n in range(6)]
STEPS = 20
TOTAL = 2_000_000_000


async def new_page(browser: Browser, problems: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 760})

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            problems.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return page


def check(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return bool(await fn())

    return run


async def until_js(page: Page, expression: str, within: float = 20) -> None:
    """Poll a page expression (through the DevTools protocol: the page's CSP forbids eval,
    so Playwright's ``wait_for_function`` cannot run there)."""

    async def test() -> bool:
        return bool(await page.evaluate(expression))

    await wait_until(test, within, expression, interval=0.1)


async def produce(publisher: ProgressPublisher, pause: float) -> None:
    """Every download from 0 to 100 % in ``STEPS`` steps, then completed."""
    for step in range(1, STEPS + 1):
        status = DownloadStatus.COMPLETED if step == STEPS else DownloadStatus.DOWNLOADING
        await publisher.publish_many(
            [
                ProgressUpdate(
                    job_id=job,
                    user_id="alice",
                    status=status,
                    seq=step,
                    bytes_done=TOTAL * step // STEPS,
                    bytes_total=TOTAL,
                )
                for job in DOWNLOADS
            ]
        )
        await asyncio.sleep(pause)  # the producer's pace, not a synchronisation


async def stream_entries(manager: CacheManager) -> set[str]:
    out: set[str] = set()
    for shard in range(manager.config.download.shards):
        for entry_id, _ in await manager.client.xrange(manager.keys.download_events(shard)):
            out.add(f"{shard}:{entry_id.decode()}")
    return out


async def test_live_progress_moves_ends_final_and_resumes_without_gaps(
    chromium: Browser, server: TestServer, manager: CacheManager, tmp_path: Path, screenshots: Path
) -> None:
    problems: list[str] = []
    with Fleet(tmp_path, server.addr, queue={"layout": "arq"}) as fleet:
        fleet.start(1)
        await wait_until(check(lambda: fresh_beats(manager.client)), 20, "a worker")
        async with running_dashboard(server.url) as dash:
            page = await new_page(chromium, problems)
            await page.goto(dash.url + "downloads")
            await until_js(page, "document.getElementById('conn').textContent === 'live'")
            publisher = ProgressPublisher(manager)
            producer = asyncio.create_task(produce(publisher, 0.25))
            row = page.locator(f"tr[data-job='{DOWNLOADS[0]}']")
            await row.wait_for()
            first = float(await row.get_attribute("data-percent") or 0)
            await until_js(
                page,
                f"Number(document.querySelector(\"tr[data-job='{DOWNLOADS[0]}']\")"
                f".dataset.percent) > {first}",
            )
            await page.screenshot(path=str(screenshots / "downloads.png"))
            # a reconnect in the middle: it resumes from the last event id it saw
            await page.evaluate("window.seenDash.reconnect()")
            await producer
            for job in DOWNLOADS:
                done = page.locator(f"tr[data-job='{job}'][data-status='completed']")
                await done.wait_for(timeout=20_000)
                assert await done.get_attribute("data-percent") == "100"
                assert await done.locator("progress").evaluate("p => p.value") == 100
            expected = await stream_entries(manager)
            await until_js(page, f"window.seenDash.seen.size >= {len(expected)}")
            seen = set(await page.evaluate("Array.from(window.seenDash.seen)"))
            stats = await page.evaluate(
                "({d: window.seenDash.duplicates, c: window.seenDash.connects,"
                " s: window.seenDash.snapshots})"
            )
            await page.screenshot(path=str(screenshots / "downloads-final.png"))
            for name, path in (("overview", ""), ("schedules", "schedules"), ("locks", "locks")):
                await page.goto(dash.url + path)
                await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    assert stats["c"] == 2 and stats["s"] == 1, stats  # one snapshot (first load), then resumed
    assert stats["d"] == 0, "duplicates after the reconnect"
    assert seen == expected, f"gap: {len(expected - seen)} events never shown"
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems


async def test_dead_letter_appears_is_requeued_and_applied(
    chromium: Browser,
    server: TestServer,
    manager: CacheManager,
    raw: Redis,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    problems: list[str] = []
    job = "movie-owned"
    owner = ProgressUpdate(job_id=job, user_id="alice", status="downloading", seq=1)
    await manager.download.set_progress(owner)
    stolen = ProgressUpdate(job_id=job, user_id="mallory", status="downloading", seq=5)
    with Fleet(tmp_path, server.addr, queue={"layout": "arq"}) as fleet:
        fleet.start(1)
        await enqueue_update(manager.client, stolen)  # the worker refuses it: another owner
        await wait_until(
            check(lambda: items(manager.client, manager.keys.dead_letter())), 20, "a dead letter"
        )
        async with running_dashboard(server.url, allow_actions=True) as dash:
            page = await new_page(chromium, problems)
            await page.goto(dash.url + "dead-letters")
            letter = page.locator("tr.letter")
            await letter.wait_for()
            assert "mallory" in await letter.inner_text()
            await page.screenshot(path=str(screenshots / "dead-letters.png"), full_page=True)
            # the old download expired meanwhile (its TTL), so the update now applies
            shard = manager.download.layout.shard(job)
            await manager.client.delete(manager.keys.download_progress(job, shard))
            await letter.locator("input[type=checkbox]").check()
            await page.get_by_role("button", name="Requeue selected").click()
            await page.wait_for_url("**/dead-letters?done=1")
            assert await page.locator("tr.letter").count() == 0

            async def applied() -> bool:
                state = await manager.download.get_progress(job)
                return state is not None and state.user_id == "mallory" and state.seq == 5

            await wait_until(applied, 20, "the requeued update applied by the worker")
    assert not problems, problems


async def test_wrong_token_refused_right_token_lets_in(
    chromium: Browser, server: TestServer, raw: Redis, screenshots: Path
) -> None:
    problems: list[str] = []
    async with running_dashboard(server.url, token=TOKEN) as dash:
        page = await new_page(chromium, problems)
        await page.goto(dash.url)
        assert page.url.endswith("/login")
        await page.fill("input[name=token]", "not-the-token-" + "x" * 30)
        response_status: list[int] = []
        page.on("response", lambda r: response_status.append(r.status))
        await page.click("button[type=submit]")
        await page.locator("#error").wait_for()
        assert await page.locator("#error").inner_text() == "wrong token"
        assert 403 in response_status
        await page.screenshot(path=str(screenshots / "login-refused.png"))
        await page.fill("input[name=token]", TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for_url(dash.url)
        await page.locator("#workers").wait_for()
        cookies = await page.context.cookies()
        session = next(c for c in cookies if c["name"] == "seen_dashboard")
        assert session["httpOnly"] and session["sameSite"] == "Strict"
    problems = [p for p in problems if "403" not in p]  # the refused login itself
    assert not problems, problems


async def test_one_unreadable_entry_leaves_the_live_page_and_overview_standing(
    chromium: Browser, server: TestServer, manager: CacheManager, raw: Redis, screenshots: Path
) -> None:
    """Issue 18 item 3 in the browser: a bad member of a shard's active index and a heartbeat
    under a 300-character id; the pages show the good rows and say what was skipped."""
    problems: list[str] = []
    for job in ("movie-ok-1", "movie-ok-2"):
        await manager.download.set_progress(
            ProgressUpdate(job_id=job, user_id="alice", status=DownloadStatus.DOWNLOADING, seq=1)
        )
    await raw.zadd(manager.keys.download_active(0), {"bad id!:alice": 1})
    await raw.zadd(manager.keys.workers_index(), {"w" * 300: 1})
    async with running_dashboard(server.url) as dash:
        page = await new_page(chromium, problems)
        await page.goto(dash.url + "downloads")
        for job in ("movie-ok-1", "movie-ok-2"):
            await page.locator(f"tr[data-job='{job}']").wait_for()
        notice = page.locator("#unreadable")
        await notice.wait_for()
        assert (await notice.text_content() or "").startswith("1 unreadable entry skipped")
        await page.screenshot(path=str(screenshots / "downloads-unreadable.png"))
        await page.goto(dash.url)
        text = await page.locator("#unreadable").text_content() or ""
        assert text.startswith("1 unreadable entry skipped (heartbeat 1)"), text
    assert not problems, problems
