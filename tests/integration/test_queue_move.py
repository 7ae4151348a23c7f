"""The layout mover (``jobs.queue_move``, ``queue_move.lua``) on the real store, both directions.

Per id, atomically: only a queued id no worker holds moves; its record keeps its remaining
PTTL, its try counter its TTL, its score (a deferred job stays deferred) and its abort mark; an
id the target already has is never overwritten (reported, or dropped from the source when
asked); a wrong-type key fails that id alone, named, and the rest of the batch moves; a store
that refuses a write leaves the id untouched in the source and nothing of it in the target.
Results move with their TTL; ARQ's shared ``arq:result:`` prefix keeps other queues' results.
In the Lua 5.4 lane (``SEEN_COMPAT_LUA54=1``) every script here runs as Dragonfly runs it, and
in the MONITOR lane every call is checked against its declared keys.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.scripts import ScriptRunner
from jobs.client import enqueue_jobs
from jobs.handle import JobHandle, JobStatus
from jobs.queue_move import QueueMoveError, QueueMover
from jobs.wire.layout import QueueLayout
from tests.conftest import TestServer
from worker.embedded import EmbeddedServer

NAME = "arq:queue"
ARQ = QueueLayout.arq(NAME)
SHARDED = QueueLayout.sharded(NAME, 4)
DIRECTIONS = [(ARQ, SHARDED), (SHARDED, ARQ)]
IDS = "source,target"


def direction_id(pair: tuple[QueueLayout, QueueLayout]) -> str:
    return f"{pair[0].kind}-to-{pair[1].kind}"


@pytest.fixture(params=DIRECTIONS, ids=direction_id)
def layouts(request: pytest.FixtureRequest) -> tuple[QueueLayout, QueueLayout]:
    pair: tuple[QueueLayout, QueueLayout] = request.param
    return pair


@pytest.fixture
async def store(server: TestServer, raw: Redis) -> AsyncIterator[Redis]:
    """A bytes client, as the command's (``raw`` has flushed the database)."""
    client = Redis.from_url(server.url)
    yield client
    await client.aclose()


def mover(client: Redis, source: QueueLayout, target: QueueLayout, **kw: object) -> QueueMover:
    return QueueMover(client, source, target, scripts=ScriptRunner(client), **kw)  # type: ignore[arg-type]


async def enqueue(client: Redis, layout: QueueLayout, ids: list[str], defer_ms: int = 0) -> None:
    due = wall_ms() + defer_ms if defer_ms else None
    done = await enqueue_jobs(
        client, [("noop", (i,), i) for i in ids], layout=layout, defer_until_ms=due
    )
    assert all(done)


async def source_keys(client: Redis, layout: QueueLayout) -> list[str]:
    """Every key of ``layout``'s queue (SCAN)."""
    if layout.kind == "arq":
        patterns = [NAME, "arq:job:*", "arq:retry:*", "arq:result:*", "arq:abort"]
    else:
        patterns = ["{arq:queue:*}:*"]
    found = []
    for pattern in patterns:
        found += [k.decode() async for k in client.scan_iter(match=pattern, count=500)]
    return sorted(found)


async def test_queued_and_deferred_jobs_move_with_their_scores_ttls_tries_and_marks(
    store: Redis, layouts: tuple[QueueLayout, QueueLayout]
) -> None:
    source, target = layouts
    due = [f"due-{i}" for i in range(300)]
    later = [f"later-{i}" for i in range(200)]
    await enqueue(store, source, due)
    await enqueue(store, source, later, defer_ms=60_000)
    tried = source.for_job("due-1")
    await store.set(tried.retry("due-1"), 3, ex=88_400)
    aborted = source.for_job("later-2")
    await store.zadd(aborted.abort, {"later-2": 1_700_000_000_000})
    scores = {j: await store.zscore(source.for_job(j).queue, j) for j in ("due-0", "later-0")}
    ttl_before = await store.pttl(source.for_job("later-0").job("later-0"))

    report = await mover(store, source, target, batch=64).run_pass()

    assert report.moved == 500 and report.empty, report.as_dict()
    assert report.failed.count == report.held.count == report.duplicates.count == 0
    assert await source_keys(store, source) == []
    for job_id, score in scores.items():
        assert await store.zscore(target.for_job(job_id).queue, job_id) == score
    ttl_after = await store.pttl(target.for_job("later-0").job("later-0"))
    assert ttl_before - 5_000 < ttl_after <= ttl_before  # the remaining PTTL, not a fresh one
    moved_try = target.for_job("due-1")
    assert await store.get(moved_try.retry("due-1")) == b"3"
    assert 88_000 < await store.ttl(moved_try.retry("due-1")) <= 88_400
    mark = await store.zscore(target.for_job("later-2").abort, "later-2")
    assert mark == 1_700_000_000_000
    sizes = [await store.zcard(s.queue) for s in target.shards]
    assert sum(sizes) == 500
    if target.kind == "sharded":
        assert all(sizes)  # spread over every shard, each id in its own
        for job_id in due[:50]:
            assert await store.zscore(target.for_job(job_id).queue, job_id) is not None
    # a producer's handle on the target layout finds them, deferred or queued
    assert await JobHandle(store, target, "later-3").status() is JobStatus.DEFERRED
    assert await JobHandle(store, target, "due-3").status() is JobStatus.QUEUED
    info = await JobHandle(store, target, "due-3").info()
    assert info is not None and info.args == ["due-3"]


async def test_a_held_job_stays_until_its_lease_is_gone(
    store: Redis, layouts: tuple[QueueLayout, QueueLayout]
) -> None:
    source, target = layouts
    await enqueue(store, source, ["a", "b", "c"])
    held = source.for_job("b")
    await store.set(held.in_progress("b"), b"worker-1:t-1", px=30_000)
    move = mover(store, source, target)

    report = await move.run_pass()
    assert report.moved == 2 and report.held.count == 1 and report.left == 1
    assert report.held.examples == [("b", "")]
    assert await store.zscore(held.queue, "b") is not None
    assert await store.exists(held.job("b"), held.in_progress("b")) == 2
    assert not await store.exists(target.for_job("b").job("b"))

    await store.delete(held.in_progress("b"))  # its run ended without finishing (handed back)
    again = await move.run_pass()
    assert again.moved == 1 and again.empty
    assert await store.zscore(target.for_job("b").queue, "b") is not None


async def test_a_finished_jobs_result_moves_with_its_ttl_and_never_overwrites(
    store: Redis, layouts: tuple[QueueLayout, QueueLayout]
) -> None:
    source, target = layouts
    record = json.dumps({"s": True, "r": 1, "q": NAME, "id": "x"}).encode()
    for job_id in ("r1", "r2", "forever"):
        ttl = None if job_id == "forever" else 60_000
        await store.set(source.for_job(job_id).result(job_id), record, px=ttl)
    await store.set(target.for_job("r2").result("r2"), b"the target's own")

    report = await mover(store, source, target).run_pass()

    assert report.results_moved == 2 and report.results_left == 1
    assert report.duplicates.count == 1
    (job_id, reason), *_ = report.duplicates.examples
    assert job_id == "r2" and target.for_job("r2").result("r2") in reason
    assert await store.get(target.for_job("r2").result("r2")) == b"the target's own"
    assert await store.get(source.for_job("r2").result("r2")) == record  # left in place
    assert 55_000 < await store.pttl(target.for_job("r1").result("r1")) <= 60_000
    assert await store.pttl(target.for_job("forever").result("forever")) == -1
    assert not await store.exists(source.for_job("r1").result("r1"))

    dropped = await mover(store, source, target, drop_duplicates=True).run_pass()
    assert dropped.dropped.count == 1 and dropped.empty
    assert await store.get(target.for_job("r2").result("r2")) == b"the target's own"
    assert not await store.exists(source.for_job("r2").result("r2"))


async def test_results_of_other_arq_queues_stay_under_arqs_shared_prefix(store: Redis) -> None:
    mine = json.dumps({"s": True, "q": NAME}).encode()
    other = json.dumps({"s": True, "q": "arq:other"}).encode()
    await store.set("arq:result:mine", mine)
    await store.set("arq:result:theirs", other)
    await store.set("arq:result:pickled", b"\x80\x04not json")

    report = await mover(store, ARQ, SHARDED).run_pass()

    assert report.results_moved == 1 and report.other_results == 2 and report.empty
    assert await store.get(SHARDED.for_job("mine").result("mine")) == mine
    assert await store.exists("arq:result:theirs", "arq:result:pickled") == 2


async def test_an_id_the_target_has_is_never_overwritten(
    store: Redis, layouts: tuple[QueueLayout, QueueLayout]
) -> None:
    source, target = layouts
    ids = ["queued", "leased", "recorded", "finished", "free"]
    await enqueue(store, source, ids)
    await store.zadd(source.for_job("queued").abort, {"queued": 5})
    await enqueue(store, target, ["queued"])
    await store.set(target.for_job("leased").in_progress("leased"), b"t", px=30_000)
    await store.set(target.for_job("recorded").job("recorded"), b"{}")
    await store.set(target.for_job("finished").result("finished"), b"{}")
    before = {j: await store.get(target.for_job(j).job(j)) for j in ids}

    report = await mover(store, source, target).run_pass()

    assert report.moved == 1 and report.duplicates.count == 4 and report.left == 4
    reasons = dict(report.duplicates.examples)
    assert target.for_job("queued").queue in reasons["queued"]
    assert target.for_job("leased").in_progress("leased") in reasons["leased"]
    assert target.for_job("finished").result("finished") in reasons["finished"]
    for job_id in ids[:4]:
        assert await store.get(target.for_job(job_id).job(job_id)) == before[job_id]
        assert await store.zscore(source.for_job(job_id).queue, job_id) is not None
    # asked to: ARQ's rule is one job per id, so the target's copy stands; the mark follows it
    dropped = await mover(store, source, target, drop_duplicates=True).run_pass()
    assert dropped.dropped.count == 4 and dropped.empty and dropped.moved == 0
    assert await source_keys(store, source) == []
    assert await store.zscore(target.for_job("queued").abort, "queued") == 5
    for job_id in ids[:4]:
        assert await store.get(target.for_job(job_id).job(job_id)) == before[job_id]


async def test_a_wrong_type_key_fails_that_id_alone_and_names_it(
    store: Redis, layouts: tuple[QueueLayout, QueueLayout]
) -> None:
    source, target = layouts
    ids = [f"j{i}" for i in range(12)]
    await enqueue(store, source, ids)

    def at(job_id: str) -> str:
        return source.for_job(job_id).job(job_id)

    command: Any = store.execute_command  # redis-py types these as sync-or-async
    await store.delete(at("j1"))
    await command("HSET", at("j1"), "not", "a record")
    await command("SADD", source.for_job("j2").retry("j2"), "x")
    await command("RPUSH", source.for_job("j3").in_progress("j3"), "x")
    await store.set(source.for_job("j4").in_progress("j4"), b"1")  # never expires
    await command("SADD", source.for_job("r").result("r"), "x")

    report = await mover(store, source, target).run_pass()

    # under ARQ's shared result prefix a key that is no result names no queue: not ours
    ours = source.kind == "sharded"
    assert report.moved == 8 and report.failed.count == 4 + ours, report.as_dict()
    reasons = dict(report.failed.examples)
    assert reasons["j1"] == f"{at('j1')} held a hash, not a job record"
    assert source.for_job("j2").retry("j2") in reasons["j2"] and "set" in reasons["j2"]
    assert "a list" in reasons["j3"]
    assert "a lease that never expires" in reasons["j4"]
    if ours:
        assert reasons["r"] == f"{source.for_job('r').result('r')} held a set, not a result record"
    else:
        assert report.other_results == 1
    assert report.left == 4 and report.results_left == ours
    for job_id in ("j1", "j2", "j3", "j4"):  # nothing of a failed id changed
        shard = source.for_job(job_id)
        assert await store.zscore(shard.queue, job_id) is not None
        assert await store.exists(shard.job(job_id)) == 1
        assert await store.exists(target.for_job(job_id).job(job_id)) == 0
        assert await store.zscore(target.for_job(job_id).queue, job_id) is None


async def test_a_source_queue_of_another_type_fails_its_call_and_names_the_key(
    store: Redis,
) -> None:
    await enqueue(store, SHARDED, [f"j{i}" for i in range(40)])
    broken = SHARDED.shards[2]
    stranded = await store.zcard(broken.queue)
    await store.delete(broken.queue)
    await store.set(broken.queue, b"oops")

    report = await mover(store, SHARDED, ARQ).run_pass()

    assert report.moved == 40 - stranded and report.failed.count == 1 and not report.empty
    (key, reason), *_ = report.failed.examples
    assert key == broken.queue and "WRONGTYPE" in reason
    await store.delete(broken.queue)
    await store.set(ARQ.shards[0].abort, b"not a set")
    await enqueue(store, SHARDED, ["late"])
    refused = await mover(store, SHARDED, ARQ).run_pass()
    assert refused.failed.count == 1 and refused.left == 1
    (job_id, reason), *_ = refused.failed.examples
    assert job_id == "late" and "arq:abort is a string, not a sorted set" in reason
    assert await store.zscore(SHARDED.for_job("late").queue, "late") is not None


async def test_a_full_store_leaves_every_id_in_the_source(
    private_server: EmbeddedServer,
) -> None:
    client = Redis.from_url(private_server.url)
    try:
        await enqueue(client, ARQ, [f"j{i}" for i in range(30)])
        await client.config_set("maxmemory-policy", "noeviction")
        await client.config_set("maxmemory", "2mb")
        fillers = 0
        while True:
            try:
                await client.set(f"filler:{fillers}", b"x" * 10_000)
            except Exception:
                break
            fillers += 1
            assert fillers < 10_000
        await client.config_set("maxmemory", "1mb")

        report = await mover(client, ARQ, SHARDED).run_pass()

        assert report.moved == 0 and report.failed.count == 30 and report.left == 30
        assert all("store refused a write" in r for _, r in report.failed.examples)
        assert await client.zcard(NAME) == 30
        assert await client.exists(*(f"arq:job:j{i}" for i in range(30))) == 30
        assert sum([await client.zcard(s.queue) for s in SHARDED.shards]) == 0
        assert not [k async for k in client.scan_iter(match="{arq:queue:*}:*")]

        await client.config_set("maxmemory", "0")
        again = await mover(client, ARQ, SHARDED).run_pass()
        assert again.moved == 30 and again.empty
    finally:
        await client.aclose()


async def test_a_shard_count_below_the_keys_is_refused(store: Redis) -> None:
    await enqueue(store, QueueLayout.sharded(NAME, 8), [f"j{i}" for i in range(40)])
    with pytest.raises(QueueMoveError, match=r"\{arq:queue:[4-7]\}:queue holds jobs"):
        await mover(store, QueueLayout.sharded(NAME, 4), ARQ).check_shards()
    await mover(store, QueueLayout.sharded(NAME, 8), ARQ).check_shards()
    with pytest.raises(QueueMoveError, match="between ARQ's layout and the sharded one"):
        mover(store, ARQ, ARQ)
    with pytest.raises(QueueMoveError, match="one queue"):
        mover(store, ARQ, QueueLayout.sharded("other", 2))


async def test_until_empty_stops_when_empty_when_stuck_and_at_its_deadline(
    store: Redis,
) -> None:
    await enqueue(store, ARQ, ["a", "b"])
    reports = await mover(store, ARQ, SHARDED).until_empty(10)
    assert len(reports) == 1 and reports[0].empty

    await enqueue(store, ARQ, ["a"])  # the target has "a": a duplicate stays, nothing changes
    reports = await mover(store, ARQ, SHARDED).until_empty(10, pause_s=0.01)
    assert len(reports) == 1 and reports[0].duplicates.count == 1 and not reports[0].empty

    await enqueue(store, ARQ, ["held"])
    await store.set("arq:in-progress:held", b"t", px=30_000)
    reports = await mover(store, ARQ, SHARDED).until_empty(0.3, pause_s=0.05)
    assert len(reports) >= 2 and all(r.held.count == 1 for r in reports)
    assert reports[-1].left == 2
