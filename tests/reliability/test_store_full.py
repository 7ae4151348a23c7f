"""A full store (``maxmemory`` reached, ``noeviction``) against a real redis-server.

redis-py raises ``OutOfMemoryError`` without the ``OOM`` prefix the checks used to look for, so
a full store failed progress jobs for good, ended the poll loop and crashed shutdown. Now it is
an outage: the worker stays up and backs off, jobs wait in the queue (or retry), and every one
runs once memory is freed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, cast

import pytest
from arq.worker import Retry, func
from redis import exceptions as redis_exc
from redis._parsers.base import BaseParser
from redis.asyncio import Redis

from cache.download import DownloadStatus
from cache.errors import CacheOutOfMemoryError, is_out_of_memory, translate_errors
from cache.manager import CacheManager
from jobs.client import UPDATE_FUNCTION, enqueue_jobs
from jobs.context import JobContext, arq_job
from jobs.deadletter import read_dead_letters
from jobs.progress import update_progress
from tests.conftest import cache_config_for
from tests.integration.test_worker import fast_settings
from tests.support.layout import LAYOUT, queue_length, result_key
from tests.support.processes import Fleet
from tests.support.updates import upd
from tests.support.waiting import wait_until
from worker.app import SeenWorker
from worker.embedded import EmbeddedServer
from worker.outage import is_store_outage

FILLER = b"x" * 10_000


async def fill_until_full(client: Redis) -> int:
    """Filler keys under ``maxmemory 2mb`` until the store refuses one; then the limit goes
    under what is used, so a small free (a worker's DEL) does not open a window. Returns the
    number of filler keys."""
    await client.config_set("maxmemory-policy", "noeviction")
    await client.config_set("maxmemory", "2mb")
    count = 0
    while True:
        try:
            await client.set(f"filler:{count}", FILLER)
        except redis_exc.OutOfMemoryError:
            break
        count += 1
        assert count < 10_000, "the store never filled up"
    await client.config_set("maxmemory", "1mb")
    return count


async def free_memory(client: Redis, fillers: int) -> None:
    await client.config_set("maxmemory", "0")
    await client.delete(*(f"filler:{i}" for i in range(fillers)))


async def transaction(client: Redis) -> None:
    """A MULTI/EXEC like ARQ's: a read and a write."""
    async with client.pipeline(transaction=True) as tx:
        tx.get("k")
        tx.incr("n")
        await tx.execute()


@pytest.fixture
async def client(private_server: EmbeddedServer) -> AsyncIterator[Redis]:
    raw = Redis.from_url(private_server.url)
    yield raw
    await raw.aclose()


async def test_real_out_of_memory_replies_are_a_full_store(
    private_server: EmbeddedServer, client: Redis
) -> None:
    await fill_until_full(client)
    caught: list[BaseException] = []
    with pytest.raises(redis_exc.OutOfMemoryError) as plain:
        await client.set("k", "v")
    caught.append(plain.value)
    assert not str(plain.value).startswith("OOM")  # what fooled the old checks
    with pytest.raises(redis_exc.ResponseError) as in_tx:
        await transaction(client)
    caught.append(in_tx.value)
    with pytest.raises(redis_exc.ResponseError) as in_script:
        await cast(Awaitable[Any], client.eval("return redis.call('SET', KEYS[1], 'v')", 1, "k"))
    caught.append(in_script.value)
    for exc in caught:
        assert is_out_of_memory(exc), repr(exc)
        assert is_store_outage(exc), repr(exc)
        with pytest.raises(CacheOutOfMemoryError), translate_errors("k"):
            raise exc

    async with await CacheManager.connect(cache_config_for(private_server.url)) as manager:
        with pytest.raises(CacheOutOfMemoryError) as one:
            await manager.download.set_progress(upd("dl-1", 1))
        assert is_store_outage(one.value)
        with pytest.raises(CacheOutOfMemoryError):
            await manager.download.bulk_update_progress([upd("dl-2", 1), upd("dl-3", 1)])
        with pytest.raises(CacheOutOfMemoryError):
            await manager.service.set("k", "v")
        # a progress job hitting a full store is retried (with a delay), not failed for good
        ctx: JobContext = {"cache": manager, "job_id": "j-1", "job_try": 1}
        with pytest.raises(Retry) as retry:
            await update_progress(ctx, upd("dl-4", 1).model_dump(mode="json"))
        assert retry.value.defer_score and retry.value.defer_score > 0
        assert await read_dead_letters(manager) == []


def parse_error(line: str) -> redis_exc.ResponseError:
    """The exception redis-py's parser makes of an error reply line (without its ``-``)."""
    exc: redis_exc.ResponseError = BaseParser.parse_error(line)  # type: ignore[no-untyped-call]
    return exc


def test_dragonfly_and_redis_out_of_memory_replies_as_redis_py_parses_them() -> None:
    """The error objects redis-py's parser makes of each server's reply line."""
    dragonfly = parse_error("ERR Out of memory")
    redis = parse_error("OOM command not allowed when used memory > 'maxmemory'.")
    assert type(dragonfly) is redis_exc.ResponseError
    assert isinstance(redis, redis_exc.OutOfMemoryError)
    for exc in (dragonfly, redis):
        assert is_out_of_memory(exc) and is_store_outage(exc)
        with pytest.raises(CacheOutOfMemoryError), translate_errors("k"):
            raise exc
    other = parse_error("ERR wrong number of arguments")
    assert not is_out_of_memory(other) and not is_store_outage(other)


def job_ids() -> list[tuple[str, int]]:
    """(download, seq) of the 30 jobs: 10 downloads, three updates each."""
    return [(f"full-{d}", seq) for seq in (1, 2, 3) for d in range(10)]


async def results(client: Redis, ids: list[str]) -> list[Any]:
    raw = await client.mget([result_key(i) for i in ids])
    return [json.loads(r) if r else None for r in raw]


@pytest.mark.timeout(120)
async def test_worker_waits_out_a_full_store_and_then_runs_every_job_once(
    private_server: EmbeddedServer, client: Redis, tmp_path: Path
) -> None:
    specs = [
        (UPDATE_FUNCTION, [upd(d, s, done=s * 1000).model_dump(mode="json")], f"job-{d}-{s}")
        for d, s in job_ids()
    ]
    ids = [job_id for _, _, job_id in specs]
    assert all(await enqueue_jobs(client, specs, layout=LAYOUT))
    fillers = await fill_until_full(client)
    with Fleet(tmp_path, private_server.addr) as fleet:
        (worker,) = fleet.start(1)

        async def refused_twice() -> bool:
            """Polls and backoffs on the full store: the outage said, then said again after a
            backoff (a loaded machine took over 4 s to start the worker: no fixed wait)."""
            assert worker.running, fleet.logs()[-4000:]
            return worker.log().count("OutOfMemoryError") >= 2

        await wait_until(refused_twice, 45, "the worker to meet the full store")
        assert worker.running, fleet.logs()[-4000:]
        assert await queue_length(client) == 30  # nothing lost, nothing failed
        assert await results(client, ids) == [None] * 30

        await free_memory(client, fillers)

        async def all_done() -> bool:
            assert worker.running, fleet.logs()[-4000:]
            return await queue_length(client) == 0 and None not in await results(client, ids)

        await wait_until(all_done, 30, "every job to finish after memory was freed")
        finished = await results(client, ids)
        assert all(r["s"] is True for r in finished), finished
        assert {r["r"] for r in finished} <= {"applied", "stale"}  # never applied twice
        async with await CacheManager.connect(cache_config_for(private_server.url)) as manager:
            for download in {d for d, _ in job_ids()}:
                state = await manager.download.get_progress(download)
                assert state is not None and state.seq == 3 and state.bytes_done == 3000
                assert state.status is DownloadStatus.DOWNLOADING
            follower = manager.download.follower()
            await follower.start(from_beginning=True)
            events = await follower.read(block_ms=0)
            seen = [(e.progress.job_id, e.progress.seq) for e in events]
            assert len(seen) == len(set(seen)) == sum(r["r"] == "applied" for r in finished)
            assert await read_dead_letters(manager) == []
        assert worker.stop() == 0


async def test_stopping_on_a_full_store_exits_cleanly(
    private_server: EmbeddedServer, client: Redis, tmp_path: Path
) -> None:
    """Jobs ran, their counts are not pushed yet (slow beats), then the store fills up and the
    worker gets SIGTERM: it must still stop with exit code 0."""
    slow_beats = {"heartbeat_interval": 10.0, "heartbeat_ttl": 30.0, "job_lease": 20.0}
    with Fleet(tmp_path, private_server.addr, worker=slow_beats) as fleet:
        (worker,) = fleet.start(1)
        specs = [
            (UPDATE_FUNCTION, [upd(f"s-{i}", 1).model_dump(mode="json")], f"s-{i}")
            for i in range(5)
        ]
        await enqueue_jobs(client, specs, layout=LAYOUT)

        async def ran() -> bool:
            assert worker.running, fleet.logs()[-4000:]
            return None not in await results(client, [f"s-{i}" for i in range(5)])

        await wait_until(ran, 20, "the first jobs to run")
        await fill_until_full(client)
        assert worker.running
        worker.signal(15)
        code = await asyncio.to_thread(worker.wait, 15)
        assert code == 0, fleet.logs()[-4000:]
        assert "Traceback" not in worker.log(), worker.log()[-4000:]


@pytest.mark.timeout(90)
async def test_store_filling_up_under_a_running_worker_loses_no_job(
    private_server: EmbeddedServer, client: Redis, tmp_path: Path
) -> None:
    """The issue's case: jobs keep coming while the store fills up (writes fail some of the
    time, at the edge of ``maxmemory``). Enqueues the store refuses raise a clear
    ``CacheOutOfMemoryError``; every accepted job succeeds in the end, none is failed."""
    with Fleet(tmp_path, private_server.addr) as fleet:
        (worker,) = fleet.start(1)
        await asyncio.sleep(1.0)
        await client.config_set("maxmemory-policy", "noeviction")
        await client.config_set("maxmemory", "2mb")
        accepted: list[str] = []
        refused = fillers = 0
        until = asyncio.get_running_loop().time() + 4.0
        while asyncio.get_running_loop().time() < until:
            job_id = f"m-{len(accepted) + refused}"
            spec = (UPDATE_FUNCTION, [upd(job_id, 1).model_dump(mode="json")], job_id)
            try:
                await enqueue_jobs(client, [spec], layout=LAYOUT)
                accepted.append(job_id)
            except CacheOutOfMemoryError:
                refused += 1
            try:
                await client.set(f"filler:{fillers}", FILLER[:5000])
                fillers += 1
            except redis_exc.OutOfMemoryError:
                pass
            await asyncio.sleep(0.01)
        assert refused > 0 and accepted, (refused, len(accepted))  # it did fill up
        assert worker.running, fleet.logs()[-4000:]
        await free_memory(client, fillers)

        async def drained() -> bool:
            assert worker.running, fleet.logs()[-4000:]
            return await queue_length(client) == 0 and None not in await results(client, accepted)

        await wait_until(drained, 40, "every accepted job to finish")
        finished = await results(client, accepted)
        assert [r["r"] for r in finished if r["s"] is not True] == []
        async with await CacheManager.connect(cache_config_for(private_server.url)) as manager:
            states = await manager.download.get_many(accepted)
            assert all(s is not None and s.seq == 1 for s in states)
            assert await read_dead_letters(manager) == []
        assert worker.stop() == 0


@pytest.mark.timeout(90)
async def test_a_store_at_its_limit_does_not_use_up_tries(
    private_server: EmbeddedServer, client: Redis
) -> None:
    """The audit's case: the claim gets through, then the job's own write meets a full store.
    Each such run used a try (40 of 40 jobs ended at try 2), so a store hovering at its limit
    exhausted ``max_tries``. Now a run that failed only because the store refused writes gives
    its try back and runs again after the outage: with ``max_tries`` 1, every job completes,
    on its first try, and its write is applied once."""

    runs: dict[str, int] = {}
    full = asyncio.Event()

    async def writes(ctx: JobContext, key: str) -> int:
        runs[key] = runs.get(key, 0) + 1
        if not full.is_set():  # the store fills up between the claim and this job's write
            await client.config_set("maxmemory-policy", "noeviction")
            await client.config_set("maxmemory", "1")
            full.set()
        return int(await ctx["cache"].service.increment(key))

    jobs = [f"w-{i}" for i in range(10)]
    settings = fast_settings(private_server.addr, worker={"max_tries": 1, "max_jobs": 4})
    worker = SeenWorker(
        settings, extra_functions=[func(arq_job(writes), name="writes")], cron=False
    )
    task = asyncio.create_task(worker.run())
    try:
        await enqueue_jobs(client, [("writes", (f"k-{j}",), j) for j in jobs], layout=LAYOUT)
        await asyncio.wait_for(full.wait(), 10)
        await asyncio.sleep(1.0)  # polls, claims and finishes meet the full store meanwhile
        await client.config_set("maxmemory", "0")

        async def all_done() -> bool:
            return None not in await results(client, jobs)

        await wait_until(all_done, 30, "every job to finish after memory was freed")
    finally:
        worker.stop(0)
        await asyncio.wait_for(task, 15)
    finished = await results(client, jobs)
    assert [r["s"] for r in finished] == [True] * len(jobs), finished
    assert [r["t"] for r in finished] == [1] * len(jobs)  # every try given back
    assert [r["r"] for r in finished] == [1] * len(jobs)  # each write applied exactly once
    assert worker.engine is not None and worker.engine.counts.failed == 0
    assert worker.engine.counts.retried >= 1
