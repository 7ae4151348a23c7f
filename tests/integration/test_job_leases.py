"""Job leases with tokens (``worker.leases``): a taken-over job is cancelled here and its
stale finish is refused; the token is in the in-progress key; renewal is by holder only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from tests.conftest import TestServer
from tests.integration.test_worker import fast_settings, make_worker, running
from tests.support.layout import lease_key, queue_length, queue_of, result_key
from tests.support.processes import queue_pool
from tests.support.waiting import wait_until
from worker.app import SeenWorker


async def test_a_taken_over_job_is_cancelled_and_cannot_finish(
    server: TestServer, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(fast_settings(server.addr))
    pool = queue_pool(server.addr)
    key = lease_key("taken")
    async with running(worker):
        job = await pool.enqueue_job("sleepy", 5.0, _job_id="taken")
        assert job is not None

        async def started() -> bool:
            return bool(await raw.exists(key))

        await wait_until(started, 5, "the job to start")
        token = await raw.get(key)
        assert token is not None and token.startswith(worker.worker_id + ":")
        await raw.set(key, "another-worker:run", px=10_000)  # someone else holds it now

        engine = worker.engine
        assert engine is not None

        async def cancelled() -> bool:
            return engine.counts.stale == 1 and not engine.leases.held

        await wait_until(cancelled, 3, "the job to be cancelled and its finish refused")
        assert engine.leases.lost_total == 1
        assert await raw.get(key) == "another-worker:run"  # the stale owner deleted nothing
        assert await raw.zscore(queue_of("taken"), "taken") is not None  # still queued
        assert not await raw.exists(result_key("taken"))
        assert "lease lost" in caplog.text and "no longer holds its lease" in caplog.text
    await pool.aclose()


async def test_renewal_keeps_the_token_and_finish_clears_it(server: TestServer, raw: Redis) -> None:
    worker = make_worker(fast_settings(server.addr))
    pool = queue_pool(server.addr)
    key = lease_key("renewed")
    async with running(worker):
        job = await pool.enqueue_job("sleepy", 1.5, _job_id="renewed")
        assert job is not None

        async def started() -> bool:
            return bool(await raw.exists(key))

        await wait_until(started, 5, "the job to start")
        token = await raw.get(key)
        await asyncio.sleep(1.0)  # > the 0.6 s lease: renewed by token
        assert await raw.get(key) == token and 0 < await raw.pttl(key) <= 600
        assert await job.result(timeout=5, poll_delay=0.05) == "slept"
        assert not await raw.exists(key)
        engine = worker.engine
        assert engine is not None
        assert engine.counts.stale == 0 and engine.leases.lost_total == 0
        await wait_until(_nothing_held(worker), 2, "the finish to be confirmed")
    await pool.aclose()


async def test_own_renewals_never_refuse_a_finish(server: TestServer, raw: Redis) -> None:
    """A renewal (PEXPIRE) landing between a finish's WATCH and EXEC aborts the transaction;
    the finish must look again, not give the job up as taken over."""
    settings = fast_settings(server.addr, worker={"heartbeat_interval": 0.01, "max_jobs": 20})
    worker = make_worker(settings)
    pool = queue_pool(server.addr)
    async with running(worker):
        jobs = [await pool.enqueue_job("sleepy", 0.02, _job_id=f"busy-{i}") for i in range(300)]

        async def all_done() -> bool:
            return not await queue_length(raw)

        await wait_until(all_done, 60, "every job to finish")
        engine = worker.engine
        assert engine is not None
        assert worker.runtime.beats > 20  # renewals really ran alongside the finishes
        assert engine.counts.stale == 0
        assert engine.leases.lost_total == 0
        results = [await j.result(timeout=5) for j in jobs if j is not None]
        assert results == ["slept"] * 300
    await pool.aclose()


def _nothing_held(worker: SeenWorker) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return worker.engine is not None and not worker.engine.leases.held

    return check
