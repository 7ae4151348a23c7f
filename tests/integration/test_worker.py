"""``SeenWorker`` in-process: jobs, heartbeats, counters, leases, store errors, separate stores."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from arq.worker import Function, Worker, func, get_kwargs
from redis.asyncio import Redis

from cache.keys import KeyBuilder
from jobs.stats import job_counters
from tests.conftest import TestServer
from tests.support.layout import QUEUE_SECTION, lease_key
from tests.support.processes import arq_pool, queue_pool
from tests.support.waiting import wait_until
from worker.app import SeenWorker
from worker.embedded import EmbeddedServer
from worker.settings import Settings, load_settings

FAST: dict[str, Any] = {
    # an ephemeral port: a test worker never fights another process for the default one
    "http": {"addr": "127.0.0.1:0"},
    "worker": {
        "heartbeat_interval": 0.2,
        "heartbeat_ttl": 1.0,
        "job_lease": 0.6,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
        "shutdown_grace": 2.0,
    },
    "maintenance": {  # no schedules: their runs would mix with the jobs a test counts
        "cleanup_every": 0,
        "stats_every": 0,
        "warmup_every": 0,
        "repair_every": 0,
        "warmup_at_startup": False,
    },
}


def fast_settings(addr: str, **more: Any) -> Settings:
    sections: dict[str, Any] = {k: dict(v) for k, v in FAST.items()}
    for name, values in more.items():
        sections.setdefault(name, {}).update(values)
    sections["cache"] = {"addr": addr, "connect_timeout": 0.3, "retries": 1}
    sections["queue"] = {**QUEUE_SECTION, **sections.get("queue", {})}
    return load_settings(None, **sections)


async def sleepy(ctx: dict[str, Any], seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


async def broken(ctx: dict[str, Any]) -> None:
    raise ValueError("broken job")


EXTRA = [func(sleepy, name="sleepy", timeout=10), func(broken, name="broken", max_tries=1)]


def make_worker(
    settings: Settings, extra: Sequence[Function] = EXTRA, *, burst: bool = False
) -> SeenWorker:
    return SeenWorker(settings, extra_functions=extra, burst=burst, cron=False)


@contextlib.asynccontextmanager
async def running(worker: SeenWorker) -> AsyncIterator[asyncio.Task[None]]:
    """``worker`` running in the background until the block ends; then stopped (no grace) and
    waited for, bounded."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        worker.stop(0)
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 15)


async def test_burst_worker_runs_jobs_counts_and_cleans_up(server: TestServer, raw: Redis) -> None:
    settings = fast_settings(server.addr)
    pool = queue_pool(server.addr)
    try:
        ok = await pool.enqueue_job("ping")
        bad = await pool.enqueue_job("broken")
        assert ok is not None and bad is not None
        worker = make_worker(settings, burst=True)
        worker_id = worker.worker_id
        await worker.run()
        assert await ok.result(timeout=1) == "pong"
        info = await bad.result_info()
        assert info is not None and not info.success
    finally:
        await pool.aclose()
    assert not await raw.exists(f"seen:worker:{worker_id}")
    assert await raw.zcard("seen:workers") == 0
    counters = await job_counters(raw, KeyBuilder())
    assert (counters.done, counters.failed, counters.retried) == (1, 1, 0)
    # ARQ's shared health key is never written; ours is per worker.
    assert not await raw.exists("arq:queue:health-check")


async def test_running_job_lease_is_renewed(server: TestServer, raw: Redis) -> None:
    settings = fast_settings(server.addr)
    worker = make_worker(settings)
    pool = queue_pool(server.addr)
    async with running(worker):
        job = await pool.enqueue_job("sleepy", 1.5, _job_id="long")
        assert job is not None
        key = lease_key("long")

        async def started() -> bool:
            return bool(await raw.exists(key))

        await wait_until(started, 5, "the job to start")
        await asyncio.sleep(1.0)  # longer than the 0.6 s lease: only renewal keeps it
        assert 0 < await raw.pttl(key) <= 600
        assert await job.result(timeout=5, poll_delay=0.05) == "slept"
    await pool.aclose()


async def test_poll_loop_survives_the_store_going_away(private_server: EmbeddedServer) -> None:
    """ARQ alone raises out of its poll loop when the store goes away, and the worker exits;
    ours logs the outage once, backs off, and runs jobs again once the store is back."""
    worker = make_worker(fast_settings(private_server.addr, worker={"max_jobs": 1}))
    async with running(worker):
        outage = worker.runtime.outage
        await wait_until(lambda: _running(worker), 10, "the worker to start")
        private_server.kill()
        await wait_until(lambda: _down(worker, 2), 10, "the outage to be noticed")
        assert outage.outages == 1
        private_server.start()
        await wait_until(lambda: _up(worker), 15, "the store to be reachable again")
        pool = queue_pool(private_server.addr)
        try:
            # a claim that failed during the outage gave its slot back (max_jobs is 1)
            jobs = [await pool.enqueue_job("ping") for _ in range(3)]
            assert all(jobs)
            for job in jobs:
                assert job is not None and await job.result(timeout=10) == "pong"
        finally:
            await pool.aclose()
        assert worker.engine is not None and worker.engine.counts.complete == 3


async def _running(worker: SeenWorker) -> bool:
    return worker.runtime.state == "running"


async def _down(worker: SeenWorker, failures: int) -> bool:
    return worker.runtime.outage.down and worker.runtime.outage.failures >= failures


async def _up(worker: SeenWorker) -> bool:
    return not worker.runtime.outage.down


async def test_close_finishes_when_the_store_is_gone(private_server: EmbeddedServer) -> None:
    settings = fast_settings(private_server.addr)
    worker = make_worker(settings)
    task = asyncio.create_task(worker.run())
    raw = Redis.from_url(private_server.url)
    try:

        async def beating() -> bool:
            return bool(await raw.zcard("seen:workers"))

        await wait_until(beating, 5, "a heartbeat")
        private_server.kill()
        worker.stop()
        await asyncio.wait_for(task, 10)
        assert worker.manager is None and worker.queue is None
    finally:
        await raw.aclose()


async def test_queue_on_a_separate_store(
    server: TestServer, raw: Redis, private_server: EmbeddedServer
) -> None:
    """Jobs, heartbeats, counters and slot claims stay on the queue store."""
    settings = fast_settings(
        server.addr, queue={"addr": private_server.addr}, maintenance={"stats_every": 300}
    )
    queue_raw = Redis.from_url(private_server.url, decode_responses=True)
    pool = queue_pool(private_server.addr)
    try:
        job = await pool.enqueue_job("log_cache_stats", _job_id="log_cache_stats:1700000000123")
        assert job is not None
        worker = make_worker(settings, burst=True)
        await worker.run()
        assert await queue_raw.llen("seen:cronlog:log_cache_stats") == 1
        assert await queue_raw.exists("seen:jobs:stats", "seen:cronlog:log_cache_stats") == 2
        assert [k async for k in queue_raw.scan_iter("seen:cron:log_cache_stats:*")]
        cache_keys = [k async for k in raw.scan_iter("*")]
        queue_keys = ("arq:", "{arq:", "seen:worker", "seen:jobs")
        assert not [k for k in cache_keys if k.startswith(queue_keys)]
        assert not [k for k in cache_keys if k.startswith(("seen:cron", "seen:lock"))]
    finally:
        await pool.aclose()
        await queue_raw.aclose()


@pytest.mark.arq_layout
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_plain_arq_worker_runs_the_same_settings(
    server: TestServer, raw: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``arq worker.settings.WorkerSettings`` builds ARQ's own Worker from the same dict."""
    monkeypatch.setenv("SEEN_CACHE_ADDR", server.addr)
    monkeypatch.setenv("SEEN_MAINTENANCE_WARMUP_AT_STARTUP", "false")
    from arq.utils import import_string

    entry_point = import_string("worker.settings.WorkerSettings")  # as ARQ's CLI resolves it
    kwargs: dict[str, Any] = dict(get_kwargs(type(entry_point)()))
    assert {"functions", "cron_jobs", "on_startup", "redis_settings"} <= set(kwargs)
    kwargs.update(handle_signals=False, burst=True)
    pool = arq_pool(server.addr)  # ARQ's own worker: ARQ's layout
    try:
        job = await pool.enqueue_job("ping")
        assert job is not None
        worker = Worker(**kwargs)
        await worker.async_run()
        await worker.close()
        assert await job.result(timeout=1) == "pong"
    finally:
        await pool.aclose()
    assert await raw.zcard("seen:workers") == 0  # its heartbeat was removed on shutdown
