"""The worker runtime's cost: ``SeenWorker`` against ARQ's plain ``Worker`` in the same run.

- drain: N no-op jobs enqueued up front, a burst worker runs them all; jobs per second. Ours
  carries everything of ``seen-worker run`` (hooks, leases, heartbeats, counters, the start_jobs
  fix); the baseline is ARQ's Worker with the same queue client settings, serializer,
  ``max_jobs`` and ``poll_delay``, and no hooks.
- pickup: one job at a time on an idle running worker, enqueued at a random point of its poll
  cycle; enqueue-to-start latency (ARQ's own ``et``/``st`` stamps, ms), bounded by
  ``poll_delay``.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

from arq.jobs import Job
from arq.worker import Worker, func

from bench.common import BenchEnv, BenchResult, percentile
from jobs import serializer
from worker.app import build_worker_settings, create_queue_pool
from worker.resilience import SeenWorker
from worker.settings import Settings, load_settings


async def noop(ctx: dict[str, Any]) -> None:
    return None


def _settings(env: BenchEnv, queue: str) -> Settings:
    return load_settings(
        None,
        cache={"addr": env.addr},
        queue={"name": queue},
        maintenance={
            "cleanup_every": 0,
            "stats_every": 0,
            "warmup_every": 0,
            "warmup_at_startup": False,
        },
    )


def _ours(settings: Settings, burst: bool) -> Worker:
    kwargs = build_worker_settings(settings)
    kwargs["functions"] = [*kwargs["functions"], func(noop, name="noop")]
    kwargs.update(handle_signals=False, burst=burst)
    return SeenWorker(**kwargs, redis_pool=create_queue_pool(settings))


def _plain(settings: Settings, burst: bool) -> Worker:
    w = settings.worker
    return Worker(
        functions=[func(noop, name="noop")],
        queue_name=settings.queue.name,
        redis_pool=create_queue_pool(settings),
        max_jobs=w.max_jobs,
        poll_delay=w.poll_delay,
        keep_result=w.keep_result,
        job_serializer=serializer.serialize,
        job_deserializer=serializer.deserialize,
        handle_signals=False,
        burst=burst,
    )


async def _drain(settings: Settings, make: Any, jobs: int) -> float:
    pool = create_queue_pool(settings)
    for offset in range(0, jobs, 100):
        await asyncio.gather(*(pool.enqueue_job("noop") for _ in range(min(100, jobs - offset))))
    await pool.aclose()
    worker: Worker = make(settings, True)
    start = time.perf_counter()
    await worker.async_run()
    elapsed = time.perf_counter() - start
    await worker.close()
    return jobs / elapsed


async def _pickup(settings: Settings, make: Any, samples: int) -> list[float]:
    worker: Worker = make(settings, False)
    task = asyncio.create_task(worker.async_run())
    pool = create_queue_pool(settings)
    latencies: list[float] = []
    try:
        await asyncio.sleep(0.3)
        for _ in range(samples):
            # A random pause, so enqueues do not lock onto the worker's poll phase.
            await asyncio.sleep(random.uniform(0, settings.worker.poll_delay))
            job: Job | None = await pool.enqueue_job("noop")
            assert job is not None
            await job.result(timeout=5, poll_delay=0.005)
            info = await job.result_info()
            assert info is not None
            latencies.append((info.start_time - info.enqueue_time).total_seconds() * 1000)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
        await pool.aclose()
    return latencies


async def run(env: BenchEnv) -> list[BenchResult]:
    jobs = env.scale(5000, 1000)
    samples = env.scale(200, 40)
    rates: dict[str, list[float]] = {"ours": [], "arq": []}
    for round_ in range(2):  # alternate, so neither side always runs on a warmer server
        for name, make in (("ours", _ours), ("arq", _plain)):
            settings = _settings(env, f"bench:q:{name}:{round_}")
            rates[name].append(await _drain(settings, make, jobs))
    ours_rate, arq_rate = max(rates["ours"]), max(rates["arq"])
    ours_lat = await _pickup(_settings(env, "bench:q:lat:ours"), _ours, samples)
    arq_lat = await _pickup(_settings(env, "bench:q:lat:arq"), _plain, samples)
    return [
        BenchResult(
            name="worker.drain_noop_jobs",
            metrics={"jobs_s": round(ours_rate), "arq_jobs_s": round(arq_rate), "jobs": jobs},
            baseline="arq Worker, same settings, no hooks",
            ratio=round(ours_rate / arq_rate, 3),
            ratio_meaning="ours/arq throughput (1.0 = no overhead)",
        ),
        BenchResult(
            name="worker.pickup_latency",
            metrics={
                "p50_ms": round(percentile(ours_lat, 50), 2),
                "p99_ms": round(percentile(ours_lat, 99), 2),
                "mean_ms": round(statistics.fmean(ours_lat), 2),
                "arq_p50_ms": round(percentile(arq_lat, 50), 2),
            },
            baseline="arq Worker p50",
            ratio=round(percentile(ours_lat, 50) / max(percentile(arq_lat, 50), 0.001), 3),
            ratio_meaning="ours/arq p50 enqueue-to-start (1.0 = same; bounded by poll_delay)",
            target="p99 about poll_delay (50 ms) + one round trip",
        ),
    ]
