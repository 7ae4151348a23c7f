"""Real worker processes under faults: kill -9 mid-job, store restart, SIGTERM mid-job."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from jobs.handle import JobInfo
from tests.conftest import TestServer
from tests.support.processes import Fleet, queue_pool
from tests.support.queue import TestJob
from tests.support.sources import SLOW_EVENTS
from tests.support.waiting import fresh_beats, items, wait_until
from worker.embedded import EmbeddedServer
from worker.health import check
from worker.settings import load_settings

SLOW: dict[str, Any] = {"callables": ["tests.support.sources:slow_source"]}
LEASE = 2.0  # worker.job_lease in tests.support.processes.write_settings
SLOW_SECONDS = 1.5


async def _result(job: TestJob, within: float) -> JobInfo:
    async def done() -> bool:
        return await job.result_info() is not None

    await wait_until(done, within, f"result of job {job.job_id}", interval=0.1)
    info = await job.result_info()
    assert info is not None
    return info


async def test_killed_worker_job_completes_on_another_within_lease(
    tmp_path: Path, server: TestServer, raw: Redis
) -> None:
    # maintenance.timeout 30 s: ARQ alone would hold the job for 30 + 10 s (arq#402).
    with Fleet(tmp_path, server.addr, warmup=SLOW, maintenance={"timeout": 30.0}) as fleet:
        a, b = fleet.start(2, SEEN_TEST_SLOW_SECONDS=str(SLOW_SECONDS))

        async def both_up() -> bool:
            return len(await fresh_beats(raw)) == 2

        await wait_until(both_up, 30, "two worker heartbeats")
        pool = queue_pool(server.addr)
        try:
            job = await pool.enqueue_job("warmup_cache", _job_id="kill-me")
            assert job is not None

            async def started() -> bool:
                return len(await items(raw, SLOW_EVENTS)) >= 1

            await wait_until(started, 10, "the slow job to start")
            victim_pid = int((await items(raw, SLOW_EVENTS))[0].split(":")[1])
            victim, survivor = (a, b) if victim_pid == a.pid else (b, a)
            assert victim.pid == victim_pid
            assert victim.proc is not None
            victim.proc.kill()
            killed_at = time.monotonic()
            victim.wait(5)
            info = await _result(job, 20)
            elapsed = time.monotonic() - killed_at
        finally:
            await pool.aclose()
        assert survivor.running
    assert info.success, (info.result, fleet.logs())
    assert info.job_try == 2
    assert await items(raw, SLOW_EVENTS) == [
        f"start:{victim.pid}",
        f"start:{survivor.pid}",
        f"done:{survivor.pid}",
    ]
    # The documented bound: picked up within job_lease (+ poll delay) of the kill.
    assert elapsed <= LEASE + SLOW_SECONDS + 4.0, elapsed  # ARQ alone: 30 + 10 s


async def test_store_restart_worker_reconnects_and_keeps_queued_jobs(tmp_path: Path) -> None:
    with EmbeddedServer(persistence=True) as store, Fleet(tmp_path, store.addr) as fleet:
        (worker,) = fleet.start(1)
        raw = Redis.from_url(store.url, decode_responses=True)
        pool = queue_pool(store.addr)
        try:

            async def up() -> bool:
                return len(await fresh_beats(raw)) == 1

            await wait_until(up, 30, "the worker's heartbeat")
            before = await pool.enqueue_job("ping", _job_id="queued-before", _defer_by=2.5)
            assert before is not None
            # Down long enough that redis-py's own retries give up and the worker must cope.
            await asyncio.to_thread(store.terminate)
            await asyncio.sleep(1.5)
            await asyncio.to_thread(store.start)
            after = await pool.enqueue_job("ping", _job_id="enqueued-after")
            assert after is not None
            first = await _result(before, 20)
            second = await _result(after, 20)
            await wait_until(up, 10, "a heartbeat after the restart")
        finally:
            await pool.aclose()
            await raw.aclose()
        assert worker.running, worker.log()
        log = worker.log()
    assert first.success and first.result == "pong"
    assert second.success and second.result == "pong"
    assert log.count("queue store unreachable") == 1, log
    assert "queue store reachable again" in log


async def test_sigterm_finishes_the_running_job_and_leaves_no_trace(
    tmp_path: Path, server: TestServer, raw: Redis
) -> None:
    with Fleet(tmp_path, server.addr, warmup=SLOW) as fleet:
        (worker,) = fleet.start(1, SEEN_TEST_SLOW_SECONDS=str(SLOW_SECONDS))

        async def up() -> bool:
            return len(await fresh_beats(raw)) == 1

        await wait_until(up, 30, "the worker's heartbeat")
        (beat,) = await fresh_beats(raw)
        pool = queue_pool(server.addr)
        try:
            job = await pool.enqueue_job("warmup_cache", _job_id="finish-me")
            assert job is not None

            async def started() -> bool:
                return len(await items(raw, SLOW_EVENTS)) >= 1

            await wait_until(started, 10, "the slow job to start")
            worker.signal(signal.SIGTERM)

            async def stopping() -> bool:
                return any(b.state == "stopping" for b in await fresh_beats(raw))

            await wait_until(stopping, 3, "a 'stopping' heartbeat during the grace period")
            code = await asyncio.to_thread(worker.wait, 15)
            info = await job.result_info()
        finally:
            await pool.aclose()
        log = worker.log()
    assert code == 0, log
    assert info is not None and info.success and info.job_try == 1, log
    assert await items(raw, SLOW_EVENTS) == [f"start:{worker.pid}", f"done:{worker.pid}"]
    assert not await raw.exists(f"seen:worker:{beat.worker_id}")
    assert await raw.zscore("seen:workers", beat.worker_id) is None
    assert not await raw.exists("seen:lock:{maintenance:warmup_cache}")
    settings = load_settings(cache={"addr": server.addr})
    verdict = await check(settings, worker_id=beat.worker_id)
    assert not verdict.healthy
    assert verdict.reasons == [f"worker {beat.worker_id}: no heartbeat"]
