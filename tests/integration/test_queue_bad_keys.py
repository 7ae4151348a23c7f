"""One job's bad keys never hold up the others (issue: ``SET arq:retry:<id> abc`` stalled every
job claimed with it, on every worker, for ever).

For each key the queue's scripts read, a wrong-type value and (for the try counter) values that
are not integers or would overflow, next to healthy ids: the healthy ids go through in the same
call, the bad one alone fails with a reason naming the key, which is repaired, so the next call
is clean. Then end to end: a worker runs 30 healthy jobs behind such a job at once and
dead-letters the bad one with the key named. Both key layouts.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from cache.manager import CacheManager
from cache.scripts import ScriptRunner
from jobs.client import enqueue_jobs
from jobs.deadletter import read_dead_letters
from jobs.wire.layout import QueueLayout, QueueShard
from tests.conftest import TestServer
from tests.support.layout import both_layouts
from tests.support.processes import run_burst_worker, worker_settings
from tests.support.queue import queue_client
from worker.engine.claim import ClaimRequest, claim
from worker.engine.finish import Finish, finish

LAYOUTS = both_layouts(3)
HEALTHY = [f"ok-{i}" for i in range(5)]
BAD = "bad-1"

Spoil = Callable[[Redis, QueueShard], Awaitable[str]]
"""Puts a bad value in one of BAD's keys; returns the key."""


async def _hash(raw: Redis, key: str) -> str:
    await raw.delete(key)
    await cast(Awaitable[int], raw.hset(key, "x", "1"))
    return key


async def _retry_text(raw: Redis, shard: QueueShard) -> str:
    await raw.set(shard.retry(BAD), "abc")
    return shard.retry(BAD)


async def _retry_float(raw: Redis, shard: QueueShard) -> str:
    await raw.set(shard.retry(BAD), "1.5")
    return shard.retry(BAD)


async def _retry_overflow(raw: Redis, shard: QueueShard) -> str:
    await raw.set(shard.retry(BAD), str(2**63 - 1))
    return shard.retry(BAD)


async def _retry_hash(raw: Redis, shard: QueueShard) -> str:
    return await _hash(raw, shard.retry(BAD))


async def _lease_hash(raw: Redis, shard: QueueShard) -> str:
    return await _hash(raw, shard.in_progress(BAD))


async def _lease_forever(raw: Redis, shard: QueueShard) -> str:
    await raw.set(shard.in_progress(BAD), "1")  # no expiry: it would hold the id for ever
    return shard.in_progress(BAD)


async def _record_hash(raw: Redis, shard: QueueShard) -> str:
    return await _hash(raw, shard.job(BAD))


SPOILERS: dict[str, Spoil] = {
    "retry-text": _retry_text,
    "retry-float": _retry_float,
    "retry-overflow": _retry_overflow,
    "retry-hash": _retry_hash,
    "lease-hash": _lease_hash,
    "lease-never-expires": _lease_forever,
    "record-hash": _record_hash,
}


async def _queue(raw: Redis, layout: QueueLayout) -> None:
    ids = [BAD, *HEALTHY]
    assert all(await enqueue_jobs(raw, [("ping", (), j) for j in ids], layout=layout))


def _requests(layout: QueueLayout, ids: list[str]) -> list[ClaimRequest]:
    by_shard: dict[int, list[str]] = {}
    for job_id in ids:
        by_shard.setdefault(layout.shard_index(job_id), []).append(job_id)
    return [
        ClaimRequest(layout.shards[i], group, [f"tok-{j}".encode() for j in group])
        for i, group in by_shard.items()
    ]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
@pytest.mark.parametrize("spoil", sorted(SPOILERS))
async def test_claim_fails_the_bad_id_alone_and_repairs_its_key(
    raw: Redis, server: TestServer, layout: QueueLayout, spoil: str
) -> None:
    await _queue(raw, layout)
    shard = layout.for_job(BAD)
    key = await SPOILERS[spoil](raw, shard)
    client = queue_client(server.addr, layout)
    try:
        result = await claim(
            ScriptRunner(client),
            _requests(layout, [BAD, *HEALTHY]),
            now_ms=10**13,
            lease_ms=10_000,
            honour_aborts=True,
            single_hashtag=layout.kind == "sharded",
        )
    finally:
        await client.aclose()
    assert not result.failed
    jobs = {j.job_id: j for j in result.claimed}
    assert set(jobs) == {BAD, *HEALTHY}  # every healthy id in the same call
    assert all(jobs[j].problem is None and jobs[j].job_try == 1 for j in HEALTHY)
    problem = jobs[BAD].problem
    assert problem is not None and key in problem, problem
    # repaired: the lease is ours with an expiry, the try counter an integer
    assert await raw.get(shard.in_progress(BAD)) == "tok-bad-1"
    assert 0 < await raw.pttl(shard.in_progress(BAD)) <= 10_000
    retry = await raw.get(shard.retry(BAD))
    assert retry is not None and int(retry) >= 1


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
async def test_a_bad_abort_set_is_removed_and_claims_go_on(
    raw: Redis, server: TestServer, layout: QueueLayout, caplog: pytest.LogCaptureFixture
) -> None:
    await _queue(raw, layout)
    for shard in layout.shards:
        await raw.set(shard.abort, "not a sorted set")
    client = queue_client(server.addr, layout)
    try:
        result = await claim(
            ScriptRunner(client),
            _requests(layout, [BAD, *HEALTHY]),
            now_ms=10**13,
            lease_ms=10_000,
            honour_aborts=True,
            single_hashtag=layout.kind == "sharded",
        )
    finally:
        await client.aclose()
    assert {j.job_id for j in result.claimed} == {BAD, *HEALTHY}
    assert not any([await raw.exists(s.abort) for s in layout.shards])
    assert "not a sorted set (removed)" in caplog.text


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
@pytest.mark.parametrize("which", ["lease", "result", "retry", "record"])
async def test_finish_with_a_bad_key_changes_nothing_else(
    raw: Redis, server: TestServer, layout: QueueLayout, which: str
) -> None:
    """Finish reads only the leases (one MGET: a non-string is just not ours) and overwrites or
    deletes the rest: a wrong-type key never stops the batch half way."""
    await _queue(raw, layout)
    client = queue_client(server.addr, layout)
    runner = ScriptRunner(client)
    sharded = layout.kind == "sharded"
    try:
        await claim(
            runner,
            _requests(layout, [BAD, *HEALTHY]),
            now_ms=10**13,
            lease_ms=10_000,
            honour_aborts=False,
            single_hashtag=sharded,
        )
        shard = layout.for_job(BAD)
        key = {
            "lease": shard.in_progress(BAD),
            "result": shard.result(BAD),
            "retry": shard.retry(BAD),
            "record": shard.job(BAD),
        }[which]
        await _hash(raw, key)
        finishes = [
            Finish(j, layout.for_job(j), f"tok-{j}".encode(), None, True, b"done", 60_000)
            for j in [BAD, *HEALTHY]
        ]
        done, refused = await finish(runner, finishes, single_hashtag=sharded)
    finally:
        await client.aclose()
    assert not refused
    status = {d.finish.job_id: d.done for d in done}
    assert all(status[j] for j in HEALTHY)
    assert status[BAD] == (which != "lease")  # a lease that is not ours: refused, untouched
    for job_id in HEALTHY:
        s = layout.for_job(job_id)
        assert await raw.get(s.result(job_id)) == "done"
        assert await raw.zscore(s.queue, job_id) is None


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
async def test_a_queue_that_is_not_a_sorted_set_fails_its_shard_alone(
    raw: Redis, server: TestServer, layout: QueueLayout
) -> None:
    await _queue(raw, layout)
    bad_shard = layout.for_job(BAD)
    await raw.delete(bad_shard.queue)
    await raw.set(bad_shard.queue, "garbage")
    client = queue_client(server.addr, layout)
    try:
        result = await claim(
            ScriptRunner(client),
            _requests(layout, [BAD, *HEALTHY]),
            now_ms=10**13,
            lease_ms=10_000,
            honour_aborts=False,
            single_hashtag=layout.kind == "sharded",
        )
        with pytest.raises(Exception, match="not a sorted set"):
            await enqueue_jobs(client, [("ping", (), BAD)], layout=layout)
    finally:
        await client.aclose()
    assert [s.index for s, _ in result.failed] == [bad_shard.index]
    others = {j for j in HEALTHY if layout.for_job(j) is not bad_shard}
    assert {j.job_id for j in result.claimed} == others
    assert await raw.get(bad_shard.queue) == "garbage"  # the refused call wrote nothing


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
@pytest.mark.parametrize("spoil", ["retry-text", "retry-overflow", "lease-hash", "record-hash"])
async def test_a_worker_runs_every_healthy_job_and_dead_letters_the_bad_one(
    raw: Redis, server: TestServer, manager: CacheManager, layout: QueueLayout, spoil: str
) -> None:
    """The audit's case: a bad key on the first due id, 30 healthy jobs behind it."""
    ids = [f"h-{i:02d}" for i in range(30)]
    bad = layout.for_job(BAD)
    now_ms = 1_700_000_000_000
    await enqueue_jobs(raw, [("ping", (), BAD)], layout=layout, defer_until_ms=now_ms)
    await enqueue_jobs(raw, [("ping", (), j) for j in ids], layout=layout)
    key = await SPOILERS[spoil](raw, bad)
    settings = worker_settings(
        server.addr, queue={"layout": layout.kind, "shards": max(1, layout.count)}
    )
    counts = await run_burst_worker(settings, max_tries=1)
    assert (counts.complete, counts.failed) == (30, 1)
    for job_id in ids:
        result = json.loads(await raw.get(layout.for_job(job_id).result(job_id)) or "null")
        assert result["s"] is True and result["r"] == "pong"
    failed: dict[str, Any] = json.loads(await raw.get(bad.result(BAD)) or "null")
    assert failed["s"] is False and key in failed["r"]["message"]
    letters = [d for d in await read_dead_letters(manager) if d.job_id == BAD]
    assert len(letters) == 1 and key in letters[0].reason
    assert not await raw.exists(bad.job(BAD), bad.retry(BAD), bad.in_progress(BAD))
    assert sum([await raw.zcard(s.queue) for s in layout.shards]) == 0
