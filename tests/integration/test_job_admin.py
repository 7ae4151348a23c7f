"""The operator's tools on jobs, on the lane's queue layout and a real store: pause and resume,
one job's view, lists by state in bounded pages, retry now, cancel, delete, and dead letters
requeued under their original id.

A real worker (``SeenWorker`` in burst mode) leaves a complete and a failed result (with its
traceback); leases, try counters and deferred scores are written as the engine writes them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.manager import CacheManager
from cache.unreadable import Unreadable
from jobs.admin import JobAdmin, Verdict
from jobs.browse import LIST_STATES, CursorError, JobPage, list_jobs
from jobs.client import enqueue_job, enqueue_jobs, job_record
from jobs.deadletter import make_dead_letter, push_dead_letters, read_stored
from jobs.inspect import inspect_job
from jobs.queue_control import pause, pause_state, resume
from jobs.requeue import requeue_dead_letters, requeue_plan
from tests.conftest import TestServer
from tests.support.layout import LAYOUT, job_key, lease_key, queue_of, result_key
from tests.support.processes import run_burst_worker, worker_settings

pytestmark = pytest.mark.timeout(90)

WORKER = "host-a-4242-abc123"
KNOWN = {"update_progress", "ping", "test_fail", "test_sleep"}


@pytest.fixture
def admin(raw: Redis) -> JobAdmin:
    return JobAdmin(raw, LAYOUT)


async def put(raw: Redis, job_id: str, score: int, function: str = "ping", **extra: Any) -> None:
    """A job record and its queue entry, as a producer writes them."""
    await raw.set(job_key(job_id), job_record(function, extra.get("args", [])), px=86_400_000)
    await raw.zadd(queue_of(job_id), {job_id: score})


async def hold(raw: Redis, job_id: str, tries: int = 1) -> None:
    """What a claim writes: a lease with a worker's token, and the try counter."""
    await raw.set(lease_key(job_id), f"{WORKER}:0badc0de-7", px=15_000)
    await raw.set(LAYOUT.for_job(job_id).retry(job_id), tries, ex=88_400)


async def test_pause_resume_status(raw: Redis) -> None:
    assert not (await pause_state(raw, LAYOUT)).paused
    state = await pause(raw, LAYOUT, by="alice@ops", reason="store migration <b>")
    assert state.paused and state.by == "alice@ops" and state.reason == "store migration <b>"
    assert state.at_ms is not None and abs(state.at_ms - wall_ms()) < 5000
    again = await pause(raw, LAYOUT, by="bob")  # the first pause's record stays
    assert again.by == "alice@ops"
    assert await raw.exists(LAYOUT.paused_key)
    assert await resume(raw, LAYOUT) is True
    assert await resume(raw, LAYOUT) is False
    await raw.set(LAYOUT.paused_key, "1")  # set by hand: still paused
    state = await pause_state(raw, LAYOUT)
    assert state.paused and state.by is None
    assert "unknown operator" in state.describe()


async def test_each_state_of_one_job(raw: Redis, manager: CacheManager, server: TestServer) -> None:
    before = wall_ms()
    await enqueue_job(raw, "ping", job_id="ok1", layout=LAYOUT)
    await enqueue_job(raw, "test_fail", "boom <script>", job_id="bad1", layout=LAYOUT)
    settings = worker_settings(server.addr, worker={"job_modules": ["tests.support.jobs"]})
    await run_burst_worker(settings)  # a real worker leaves both results
    now = wall_ms()
    await put(raw, "w1", now - 5000)
    await put(raw, "d1", now + 600_000)
    await put(raw, "r1", now - 1000)
    await raw.set(LAYOUT.for_job("r1").retry("r1"), 2)
    await put(raw, "run1", now - 2000, "test_sleep", args=[30])
    await hold(raw, "run1", 3)

    views = {
        j: await inspect_job(raw, LAYOUT, j, manager=manager)
        for j in ("w1", "d1", "r1", "run1", "ok1", "bad1", "nope")
    }
    assert {j: v.state for j, v in views.items()} == {
        "w1": "waiting",
        "d1": "deferred",
        "r1": "retrying",
        "run1": "running",
        "ok1": "complete",
        "bad1": "failed",
        "nope": "not_found",
    }
    run = views["run1"]
    assert run.lease is not None and run.lease.holder == WORKER
    assert run.lease.ttl_ms is not None and 0 < run.lease.ttl_ms <= 15_000
    assert run.tries == 3 and run.function == "test_sleep" and run.args == "[30]"
    assert views["r1"].tries == 2 and views["d1"].score_ms == now + 600_000
    ok = views["ok1"].result
    assert ok is not None and ok.success and ok.value == '"pong"' and ok.finish_ms >= before
    bad = views["bad1"].result
    assert bad is not None and not bad.success and bad.error == "ValueError"
    assert bad.value == "boom <script>"
    assert bad.traceback is not None and "test_fail" in bad.traceback
    assert bad.traceback.rstrip().endswith("ValueError: boom <script>")
    assert views["bad1"].args == '["boom <script>"]' and views["bad1"].tries == 1


async def test_an_unreadable_record_is_shown_not_fatal(raw: Redis) -> None:
    await raw.set(job_key("junk"), "{not json")
    await raw.zadd(queue_of("junk"), {"junk": wall_ms()})
    await put(raw, "fine", wall_ms() - 10)
    skipped = Unreadable()
    view = await inspect_job(raw, LAYOUT, "junk", unreadable=skipped)
    assert view.state == "waiting" and view.function is None
    assert view.problem is not None and job_key("junk") in view.problem
    assert skipped.by_kind() == {"job": 1}
    listed = Unreadable()
    page = await list_jobs(raw, LAYOUT, "waiting", unreadable=listed)
    rows = {r.job_id: r.function for r in page.rows}
    assert rows == {"junk": None, "fine": "ping"} and listed.by_kind() == {"job": 1}
    # a queue key of another type: that shard is counted, the others are still listed
    others = [s for s in LAYOUT.shards if s.queue not in (queue_of("fine"), queue_of("junk"))]
    if others:  # the sharded layout
        await raw.set(others[0].queue, "not a sorted set")
        broken = Unreadable()
        page = await list_jobs(raw, LAYOUT, "waiting", unreadable=broken)
        assert "fine" in {r.job_id for r in page.rows} and broken.counts["job"] >= 1
    with pytest.raises(ValueError, match="job id"):
        await inspect_job(raw, LAYOUT, "bad id*")


async def all_pages(raw: Redis, state: str, limit: int, **kw: Any) -> list[JobPage]:
    pages: list[JobPage] = []
    cursor = None
    while True:
        page = await list_jobs(raw, LAYOUT, state, limit=limit, cursor=cursor, **kw)
        pages.append(page)
        assert page.examined <= max(limit, kw.get("scan_count", 500) * limit)
        cursor = page.cursor
        if cursor is None:
            return pages
        assert len(pages) < 200, "the pages never end"


async def test_queue_states_page_every_job_once_across_shards_and_ties(raw: Redis) -> None:
    """37 waiting jobs, 20 of them enqueued in the same millisecond (ties in every shard), 9
    deferred, 4 retrying and 2 running: pages of 5 list each exactly once in its state."""
    now = wall_ms()
    same = now - 10_000
    tied = [(f"tie-{n}", same) for n in range(20)]
    spread = [(f"w-{n}", now - 5000 + n) for n in range(17)]
    await enqueue_jobs(raw, [("ping", (), j) for j, _ in tied], layout=LAYOUT)
    for job_id, score in tied:
        await raw.zadd(queue_of(job_id), {job_id: score})
    for job_id, score in spread:
        await put(raw, job_id, score, "test_echo_job" if job_id.endswith("3") else "ping")
    for n in range(9):
        await put(raw, f"d-{n}", now + 60_000 + n)
    for n in range(4):
        await put(raw, f"r-{n}", now - 3000 + n)
        await raw.set(LAYOUT.for_job(f"r-{n}").retry(f"r-{n}"), 1)
    for n in range(2):
        await put(raw, f"run-{n}", now - 4000)
        await hold(raw, f"run-{n}")

    def ids(pages: list[JobPage]) -> list[str]:
        return [row.job_id for page in pages for row in page.rows]

    waiting = ids(await all_pages(raw, "waiting", 5))
    assert sorted(waiting) == sorted([j for j, _ in tied] + [j for j, _ in spread])
    assert len(waiting) == len(set(waiting))
    deferred = await all_pages(raw, "deferred", 5)
    assert ids(deferred) == [f"d-{n}" for n in range(9)]  # due-time order
    assert all(r.state == "deferred" and r.function == "ping" for p in deferred for r in p.rows)
    assert sorted(ids(await all_pages(raw, "retrying", 3))) == [f"r-{n}" for n in range(4)]
    echo = ids(await all_pages(raw, "waiting", 5, function="test_echo_job"))
    assert sorted(echo) == ["w-13", "w-3"]
    running = ids(await all_pages(raw, "running", 10, scan_count=10))
    assert sorted(running) == ["run-0", "run-1"]
    (first,) = [r for p in await all_pages(raw, "running", 10, scan_count=10) for r in p.rows][:1]
    assert first.holder == WORKER and first.tries == 1
    with pytest.raises(CursorError):
        await list_jobs(raw, LAYOUT, "waiting", cursor="s0")
    with pytest.raises(ValueError, match="state must be one of"):
        await list_jobs(raw, LAYOUT, "sleeping")


async def test_results_and_dead_letters_page(
    raw: Redis, manager: CacheManager, server: TestServer
) -> None:
    for n in range(6):
        await enqueue_job(raw, "ping", job_id=f"ok-{n}", layout=LAYOUT)
    for n in range(3):
        await enqueue_job(raw, "test_fail", f"no {n}", job_id=f"bad-{n}", layout=LAYOUT)
    settings = worker_settings(server.addr, worker={"job_modules": ["tests.support.jobs"]})
    await run_burst_worker(settings)
    for n in range(200):  # other keys the walk must step over
        await raw.set(f"seen:other:{n}", "x")
    complete = [r for p in await all_pages(raw, "complete", 4, scan_count=50) for r in p.rows]
    failed = [r for p in await all_pages(raw, "failed", 4, scan_count=50) for r in p.rows]
    assert sorted({r.job_id for r in complete}) == [f"ok-{n}" for n in range(6)]
    assert sorted({r.job_id for r in failed}) == [f"bad-{n}" for n in range(3)]
    assert all(r.error == "ValueError" and r.function == "test_fail" for r in failed)
    letters = [
        make_dead_letter(
            manager, job_id=f"j{n}", function="update_progress", reason="bad", payload={"n": n}
        )
        for n in range(7)
    ]
    await push_dead_letters(manager, letters)
    dead = await all_pages(raw, "dead", 3, manager=manager)
    assert [len(p.rows) for p in dead] == [3, 3, 1] and dead[0].total == 7
    assert [r.job_id for p in dead for r in p.rows] == [f"j{n}" for n in reversed(range(7))]
    assert set(LIST_STATES) == {
        "waiting",
        "deferred",
        "retrying",
        "running",
        "complete",
        "failed",
        "dead",
    }


async def test_retry_now_delete_and_cancel(raw: Redis, admin: JobAdmin) -> None:
    now = wall_ms()
    await put(raw, "later", now + 600_000)
    result = await admin.retry_now("later")
    assert result.verdict is Verdict.DONE
    score = await raw.zscore(queue_of("later"), "later")
    assert score is not None and score <= wall_ms()
    assert (await admin.retry_now("later")).verdict is Verdict.UNCHANGED
    assert (await admin.retry_now("nope")).verdict is Verdict.NOT_FOUND

    await put(raw, "busy", now - 1000)
    await hold(raw, "busy")
    refused = await admin.delete("busy")
    assert refused.verdict is Verdict.REFUSED and "running" in refused.message
    assert await raw.exists(job_key("busy")) and await raw.zscore(queue_of("busy"), "busy")
    assert (await admin.retry_now("busy")).verdict is Verdict.REFUSED

    await raw.set(LAYOUT.for_job("later").retry("later"), 2)
    deleted = await admin.delete("later")
    assert deleted.verdict is Verdict.DONE
    assert not await raw.exists(job_key("later"), LAYOUT.for_job("later").retry("later"))
    assert await raw.zscore(queue_of("later"), "later") is None
    assert (await admin.delete("later")).verdict is Verdict.NOT_FOUND

    cancelled = await admin.cancel("busy")
    assert cancelled.verdict is Verdict.DONE and "running" in cancelled.message
    assert await raw.zscore(LAYOUT.for_job("busy").abort, "busy") is not None
    await put(raw, "deferred", now + 600_000)
    assert (await admin.cancel("deferred")).verdict is Verdict.DONE
    assert await raw.zscore(queue_of("deferred"), "deferred") == 1  # made due: taken now
    assert (await admin.cancel("ghost")).verdict is Verdict.NOT_FOUND


async def test_a_cancelled_waiting_job_ends_cancelled_by_the_worker(
    raw: Redis, admin: JobAdmin, server: TestServer
) -> None:
    await enqueue_job(raw, "ping", job_id="to-cancel", layout=LAYOUT)
    assert (await admin.cancel("to-cancel")).ok
    await run_burst_worker(worker_settings(server.addr))
    view = await inspect_job(raw, LAYOUT, "to-cancel")
    assert view.state == "failed" and view.result is not None
    assert view.result.error == "CancelledError"


async def test_requeue_under_the_original_id_or_a_new_one(
    raw: Redis, manager: CacheManager
) -> None:
    record = {"t": 1, "f": "ping", "a": [], "k": {}, "et": wall_ms()}
    letters = [
        make_dead_letter(manager, job_id="orig-1", function="ping", reason="r", payload=record),
        make_dead_letter(manager, job_id="orig-2", function="ping", reason="r", payload=record),
        make_dead_letter(
            manager,
            job_id="batch-1",
            function="update_progress_batch",
            reason="r",
            payload={"job_id": "dl-1", "seq": 1},
        ),
        make_dead_letter(manager, job_id="x", function="ping", reason="r", payload="not json{"),
    ]
    await push_dead_letters(manager, letters)
    stored, _ = await read_stored(manager, 10)
    by_job = {s.letter.job_id: s for s in stored}
    assert requeue_plan(by_job["x"].letter, KNOWN) == "payload is not a job's arguments"
    await raw.set(result_key("orig-2"), b"{}")  # its failed result is still kept
    results = await requeue_dead_letters(
        manager,
        raw,
        LAYOUT,
        [by_job[j].id for j in ("orig-1", "orig-2", "batch-1", "x")],
        known=KNOWN,
        limit=10,
        who="test",
    )
    verdicts = {r.job_id: (r.verdict, r.new_id) for r in results}
    assert verdicts[by_job["orig-1"].id] == (Verdict.DONE, "orig-1")
    assert await raw.zscore(queue_of("orig-1"), "orig-1") is not None
    assert verdicts[by_job["orig-2"].id][0] is Verdict.REFUSED
    assert "orig-2 is taken" in results[1].message
    batch = verdicts[by_job["batch-1"].id]
    assert batch[0] is Verdict.DONE and batch[1] not in (None, "batch-1")
    assert verdicts[by_job["x"].id][0] is Verdict.REFUSED
    left = {s.letter.job_id for s in (await read_stored(manager, 10))[0]}
    assert left == {"orig-2", "x"}  # requeued entries are gone, refused ones stay
    (again,) = await requeue_dead_letters(
        manager, raw, LAYOUT, [by_job["orig-2"].id], known=KNOWN, limit=10, who="t", new_id=True
    )
    assert again.verdict is Verdict.DONE and again.new_id not in (None, "orig-2")
    record_text = await cast(Awaitable[str], raw.get(job_key(str(again.new_id))))
    assert json.loads(record_text)["f"] == "ping"
