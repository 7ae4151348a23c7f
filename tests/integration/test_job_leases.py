"""Job leases with tokens (``worker.leases``): a taken-over job is cancelled here and its
stale finish is refused; the token is in the in-progress key; renewal is by holder only."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from tests.conftest import TestServer
from tests.integration.test_worker import fast_settings, make_worker
from tests.support.processes import queue_pool
from tests.support.waiting import wait_until


async def test_a_taken_over_job_is_cancelled_and_cannot_finish(
    server: TestServer, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(fast_settings(server.addr))
    pool = queue_pool(server.addr)
    task = asyncio.create_task(worker.async_run())
    key = "arq:in-progress:taken"
    try:
        job = await pool.enqueue_job("sleepy", 5.0, _job_id="taken")
        assert job is not None

        async def started() -> bool:
            return bool(await raw.exists(key))

        await wait_until(started, 5, "the job to start")
        token = await raw.get(key)
        assert token is not None and token.startswith(worker.runtime.worker_id + ":")
        await raw.set(key, "another-worker:run", px=10_000)  # someone else holds it now

        async def cancelled() -> bool:
            return worker.stale_finishes == 1 and not worker.tasks

        await wait_until(cancelled, 3, "the job to be cancelled and its finish refused")
        assert worker.runtime.leases.lost_total == 1
        assert await raw.get(key) == "another-worker:run"  # the stale owner deleted nothing
        assert await raw.zscore("arq:queue", "taken") is not None  # still queued for its owner
        assert not await raw.exists("arq:result:taken")
        assert "lease lost" in caplog.text and "no longer holds its lease" in caplog.text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
        await pool.aclose()


async def test_renewal_keeps_the_token_and_finish_clears_it(server: TestServer, raw: Redis) -> None:
    worker = make_worker(fast_settings(server.addr))
    pool = queue_pool(server.addr)
    task = asyncio.create_task(worker.async_run())
    key = "arq:in-progress:renewed"
    try:
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
        assert worker.stale_finishes == 0 and worker.runtime.leases.lost_total == 0
        assert not worker.runtime.leases.held
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
        await pool.aclose()


async def test_own_renewals_never_refuse_a_finish(server: TestServer, raw: Redis) -> None:
    """A renewal (PEXPIRE) landing between a finish's WATCH and EXEC aborts the transaction;
    the finish must look again, not give the job up as taken over."""
    settings = fast_settings(server.addr, worker={"heartbeat_interval": 0.01, "max_jobs": 20})
    worker = make_worker(settings)
    pool = queue_pool(server.addr)
    task = asyncio.create_task(worker.async_run())
    try:
        jobs = [await pool.enqueue_job("sleepy", 0.02, _job_id=f"busy-{i}") for i in range(300)]

        async def all_done() -> bool:
            return not await raw.zcard("arq:queue")

        await wait_until(all_done, 60, "every job to finish")
        assert worker.runtime.beats > 20  # renewals really ran alongside the finishes
        assert worker.stale_finishes == 0
        assert worker.runtime.leases.lost_total == 0
        results = [await j.result(timeout=5) for j in jobs if j is not None]
        assert results == ["slept"] * 300
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
        await pool.aclose()
