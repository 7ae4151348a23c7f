"""The producer API on both queue layouts: ``enqueue`` writes the job's shard keys, and
``JobHandle`` follows a job (status, info, result, abort).

On ARQ's layout against a real ``seen-worker run`` process (loading the tests' job module through
``worker.job_modules``); on the sharded layout, whose worker is not written yet, the keys are
written by hand exactly as docs/wire-format.md says a sharded worker writes them, and read back
through the handle.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from cache.clock import wall_ms
from jobs import (
    JobAbortedError,
    JobFailedError,
    JobHandle,
    JobNotFoundError,
    JobStatus,
    JobTimeoutError,
    QueueLayout,
    enqueue,
    enqueue_jobs,
)
from jobs.client import job_record
from jobs.serializer import serialize
from tests.conftest import TestServer
from tests.support.layout import LAYOUT
from tests.support.processes import Fleet
from tests.support.waiting import wait_until

ARQ = QueueLayout.arq()
SHARDED = QueueLayout.sharded("jobs", 4)


@pytest.fixture
async def fleet(tmp_path: Path, server: TestServer) -> AsyncIterator[Fleet]:
    with Fleet(tmp_path, server.addr, worker={"job_modules": ["tests.support.jobs"]}) as running:
        running.start(1)
        yield running


# -- enqueue: the keys on both layouts ------------------------------------------------------
@pytest.mark.parametrize(
    "layout",
    [pytest.param(ARQ, marks=pytest.mark.arq_layout), SHARDED],
    ids=["arq", "sharded"],
)
async def test_enqueue_writes_the_record_and_queue_entry_of_the_jobs_shard(
    raw: Redis, layout: QueueLayout
) -> None:
    ids = [f"job-{i}" for i in range(12)]
    before = wall_ms()
    done = await enqueue_jobs(raw, [("ping", [i], jid) for i, jid in enumerate(ids)], layout=layout)
    assert done == [True] * len(ids)
    for i, jid in enumerate(ids):
        shard = layout.for_job(jid)
        record = json.loads(await raw.get(shard.job(jid)))
        assert record["f"] == "ping" and record["a"] == [i] and record["k"] == {}
        assert record["t"] is None and before <= record["et"] <= wall_ms()
        assert await raw.zscore(shard.queue, jid) == record["et"]
        assert 86_300_000 < await raw.pttl(shard.job(jid)) <= 86_400_000
        for other in layout.shards:
            if other is not shard:
                assert await raw.zscore(other.queue, jid) is None
    if layout.kind == "sharded":  # the ids spread over the shards, each key under its hashtag
        used = {layout.shard_index(j) for j in ids}
        assert len(used) > 1
        for shard in layout.shards:
            assert shard.hashtag is not None and shard.queue.startswith(shard.hashtag)
    again = await enqueue_jobs(raw, [("ping", [], ids[0]), ("ping", [], "fresh")], layout=layout)
    assert again == [False, True]  # an id is refused while its job exists


@pytest.mark.arq_layout
async def test_queue_name_alone_still_means_arqs_layout(raw: Redis) -> None:
    await enqueue_jobs(raw, [("ping", [], "legacy")], queue_name="other:queue")
    assert await raw.exists("arq:job:legacy")
    assert await raw.zscore("other:queue", "legacy") is not None


# -- the handle on ARQ's layout, against a real worker -------------------------------------
@pytest.mark.timeout(90)
async def test_handle_follows_jobs_through_a_real_worker(raw: Redis, fleet: Fleet) -> None:
    echo = await enqueue(raw, "test_echo_job", 1, "two", layout=LAYOUT)
    assert echo is not None
    assert await echo.result(30, poll_delay=0.05) == [1, "two"], fleet.logs()
    assert await echo.status() is JobStatus.COMPLETE
    info = await echo.info()
    assert info is not None and info.success is True and info.function == "test_echo_job"
    assert info.args == [1, "two"] and info.start_time is not None

    failing = await enqueue(raw, "test_fail", "out of cheese", layout=LAYOUT)
    assert failing is not None
    with pytest.raises(JobFailedError, match="ValueError: out of cheese") as failed:
        await failing.result(30, poll_delay=0.05)
    assert (failed.value.error, failed.value.job_id) == ("ValueError", failing.job_id)

    slow = await enqueue(raw, "test_sleep", 20, layout=LAYOUT)
    assert slow is not None

    async def running() -> bool:
        return await slow.status() is JobStatus.IN_PROGRESS

    await wait_until(running, 20, "the slow job to start")
    with pytest.raises(JobTimeoutError):
        await slow.result(0.3, poll_delay=0.05)
    assert await slow.abort(20, poll_delay=0.05) is True
    with pytest.raises(JobAbortedError):
        await slow.result(1)

    missing = JobHandle(raw, LAYOUT, "never-enqueued")
    assert await missing.status() is JobStatus.NOT_FOUND and await missing.info() is None
    with pytest.raises(JobNotFoundError):
        await missing.result(1)


# -- the handle on the sharded layout's keys, written as a sharded worker writes them -------
def result_record(job_id: str, success: bool, result: Any, queue: str) -> bytes:
    now = wall_ms()
    record = json.loads(job_record("report", [7], now - 50))
    record.update(s=success, r=result, st=now - 20, ft=now, q=queue, id=job_id)
    return serialize(record)


async def test_handle_reads_the_sharded_layouts_keys(raw: Redis) -> None:
    jid = "sharded-1"
    shard = SHARDED.for_job(jid)
    handle = JobHandle(raw, SHARDED, jid)
    assert handle.shard is shard and shard.index == SHARDED.shard_index(jid)
    assert await handle.status() is JobStatus.NOT_FOUND
    # deferred, then due: only the job's shard's keys count
    await raw.set(shard.job(jid), job_record("report", [7]))
    await raw.zadd(shard.queue, {jid: wall_ms() + 60_000})
    assert await handle.status() is JobStatus.DEFERRED
    elsewhere = SHARDED.shards[(shard.index + 1) % SHARDED.count]
    await raw.set(elsewhere.result(jid), result_record(jid, True, "not this one", SHARDED.name))
    assert await handle.status() is JobStatus.DEFERRED  # another shard's key is not the job's
    await raw.zadd(shard.queue, {jid: wall_ms() - 1})
    assert await handle.status() is JobStatus.QUEUED
    info = await handle.info()
    assert info is not None and (info.function, info.args, info.success) == ("report", [7], None)
    await raw.set(shard.in_progress(jid), "token")
    assert await handle.status() is JobStatus.IN_PROGRESS
    with pytest.raises(JobTimeoutError):
        await handle.result(0.2, poll_delay=0.05)
    # the worker finishes: result written, lease, record and queue entry gone
    await raw.set(shard.result(jid), result_record(jid, True, {"rows": 3}, SHARDED.name))
    await raw.delete(shard.in_progress(jid), shard.job(jid))
    await raw.zrem(shard.queue, jid)
    assert await handle.status() is JobStatus.COMPLETE
    assert await handle.result(1) == {"rows": 3}
    done = await handle.info()
    assert done is not None and done.success is True and done.score is None


async def test_abort_on_the_sharded_layout_uses_the_shards_abort_set(raw: Redis) -> None:
    jid = "sharded-abort"
    shard = SHARDED.for_job(jid)
    handle = JobHandle(raw, SHARDED, jid)
    await raw.set(shard.job(jid), job_record("report", [7]))
    await raw.zadd(shard.queue, {jid: wall_ms() + 600_000})  # deferred ten minutes

    async def worker_cancels() -> None:  # what a sharded worker does on seeing the abort
        async def asked() -> bool:
            return await raw.zscore(shard.abort, jid) is not None

        await wait_until(asked, 5, "the abort request")
        assert await raw.zscore(shard.queue, jid) == 1  # made due, so it is picked up now
        cancelled = {"error": "CancelledError", "message": ""}
        await raw.set(shard.result(jid), result_record(jid, False, cancelled, SHARDED.name))
        await raw.zrem(shard.queue, jid)

    cancelling = asyncio.create_task(worker_cancels())
    assert await handle.abort(5, poll_delay=0.05) is True
    await cancelling
    for other in SHARDED.shards:
        if other is not shard:
            assert await raw.zcard(other.abort) == 0
