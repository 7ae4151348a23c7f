"""The job engine: ``SeenWorker`` against plain ARQ and Dramatiq, same server, same run.

- drain: N no-op jobs enqueued up front (per docs/wire-format.md), a burst worker runs them
  all; jobs/s per process, and the store's commands and CPU per job (INFO deltas over the
  worker's run). Ours carries everything of ``seen-worker run`` (hooks, leases, heartbeats,
  counters, metrics); ARQ's Worker has the same queue client, serializer, ``max_jobs`` (200)
  and ``poll_delay`` (0.01 s) and no hooks; Dramatiq runs in its own process with its Redis
  broker, the best of 8 and 32 threads.
- profile: one in-process drain of ours under cProfile; the share of CPU per package and the
  top functions by own time go into the result's notes.
- pickup: one job at a time on an idle running worker, enqueued at a random point of its poll
  cycle; enqueue-to-start latency (ARQ's own ``et``/``st`` stamps, ms), bounded by
  ``poll_delay``.
- scaling: 1, 2 and 4 worker processes on one server; jobs are made due a moment after every
  worker is up, and the rate is jobs / (last finish - first start) from the result records.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

from arq.jobs import Job
from arq.worker import Worker, func
from redis.asyncio import Redis

from bench.common import BenchEnv, BenchResult, percentile
from bench.store_stats import sample
from bench.worker_proc import bench_settings, enqueue_raw, noop, ours
from jobs import serializer
from worker.app import create_queue_pool
from worker.settings import Settings


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


async def _drain(
    env: BenchEnv, queue: str, make: Any, jobs: int, profile: cProfile.Profile | None = None
) -> dict[str, float]:
    settings = bench_settings(env.addr, queue)
    raw = Redis.from_url(env.url)
    try:
        await raw.flushdb()
        await enqueue_raw(raw, queue, jobs)
        worker: Worker = make(settings, True)
        before = await sample(raw)
        start = time.perf_counter()
        if profile is not None:
            profile.enable()
        try:
            await worker.async_run()
        finally:
            if profile is not None:
                profile.disable()
        elapsed = time.perf_counter() - start
        after = await sample(raw)
        await worker.close()
        assert await raw.zcard(queue) == 0, "the drain left jobs behind"
        return {"jobs_s": round(jobs / elapsed), **before.per_job(after, jobs)}
    finally:
        await raw.aclose()


async def _dramatiq(env: BenchEnv, jobs: int) -> dict[str, float]:
    best: dict[str, float] = {}
    for threads in (8, 32):
        raw = Redis.from_url(env.url)
        await raw.flushdb()
        await raw.aclose()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.dramatiq_drain",
            env.url,
            str(jobs),
            str(threads),
            stdout=subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 600)
        figures = json.loads(out)
        if figures["jobs_s"] > best.get("jobs_s", 0):
            best = {**figures, "threads": threads}
    return best


def _profile_summary(profile: cProfile.Profile, top: int = 12) -> dict[str, Any]:
    stats = pstats.Stats(profile)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in entries.values()) or 1.0
    by_package: dict[str, float] = defaultdict(float)
    rows = []
    for (path, line, name), (_, calls, tt, _, _) in entries.items():
        parts = path.replace("\\", "/").split("/")
        package = next(
            (
                p
                for p in ("arq", "redis", "asyncio", "worker", "jobs", "cache", "json")
                if p in parts
            ),
            "builtins" if path == "~" else "other",
        )
        by_package[package] += tt
        rows.append((tt, f"{'/'.join(parts[-2:])}:{line}:{name}", calls))
    rows.sort(reverse=True)
    return {
        "cpu_share_by_package": {
            k: round(v / total, 3) for k, v in sorted(by_package.items(), key=lambda x: -x[1])
        },
        "top_own_time": [
            {"function": f, "share": round(tt / total, 3), "calls": calls}
            for tt, f, calls in rows[:top]
        ],
    }


async def _profiled_drain(env: BenchEnv, jobs: int) -> dict[str, Any]:
    profile = cProfile.Profile()
    figures = await _drain(env, "bench:q:profile", ours, jobs, profile)
    return {"jobs_s_under_profiler": figures["jobs_s"], **_profile_summary(profile)}


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


async def _scaling(env: BenchEnv, processes: int, jobs: int) -> float:
    queue = f"bench:q:scale:{processes}"
    raw = Redis.from_url(env.url)
    procs = []
    try:
        await raw.flushdb()
        # due once every process has started and polls (imports take about a second)
        await enqueue_raw(raw, queue, jobs, due_ms=int(time.time() * 1000) + 4000)
        for _ in range(processes):
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.worker_proc", env.addr, queue
                )
            )
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 600)
        starts, finishes = [], []
        async for key in raw.scan_iter("arq:result:*", count=1000):
            record = json.loads(await raw.get(key) or b"{}")
            starts.append(record["st"])
            finishes.append(record["ft"])
        assert len(starts) == jobs, f"{len(starts)} results for {jobs} jobs"
        return float(jobs / ((max(finishes) - min(starts)) / 1000))
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await raw.aclose()


async def run(env: BenchEnv) -> list[BenchResult]:
    jobs = env.scale(20_000, 3000)
    samples = env.scale(200, 40)
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "arq": []}
    for round_ in range(2):  # alternate, so neither side always runs on a warmer server
        for name, make in (("ours", ours), ("arq", _plain)):
            runs[name].append(await _drain(env, f"bench:q:{name}:{round_}", make, jobs))
    best = {name: max(r, key=lambda x: x["jobs_s"]) for name, r in runs.items()}
    ours_d, arq_d = best["ours"], best["arq"]
    dramatiq = await _dramatiq(env, jobs)
    profile = await _profiled_drain(env, env.scale(5000, 1000))
    lat_ours = await _pickup(bench_settings(env.addr, "bench:q:lat:ours"), ours, samples)
    lat_arq = await _pickup(bench_settings(env.addr, "bench:q:lat:arq"), _plain, samples)
    scale = {n: await _scaling(env, n, jobs) for n in (1, 2, 4)}
    await Redis.from_url(env.url).flushdb()
    return [
        BenchResult(
            name="worker.drain_noop_jobs",
            metrics={
                "jobs_s": ours_d["jobs_s"],
                "arq_jobs_s": arq_d["jobs_s"],
                "dramatiq_jobs_s": dramatiq["jobs_s"],
                "jobs": jobs,
            },
            baseline="arq Worker, same settings, no hooks (max_jobs 200, poll 0.01)",
            ratio=round(ours_d["jobs_s"] / arq_d["jobs_s"], 3),
            ratio_meaning="ours/arq jobs/s per process (>1 = faster)",
            target="ratio >= 3 and jobs_s >= dramatiq_jobs_s",
            notes={
                "vs_dramatiq": round(ours_d["jobs_s"] / dramatiq["jobs_s"], 3),
                "dramatiq_threads": dramatiq["threads"],
                "rounds": runs,
                "profile_of_ours": profile,
            },
        ),
        BenchResult(
            name="worker.store_cost_per_job",
            metrics={
                "cmds_per_job": ours_d["store_cmds_per_job"],
                "arq_cmds_per_job": arq_d["store_cmds_per_job"],
                "dramatiq_cmds_per_job": dramatiq["store_cmds_per_job"],
                "cpu_us_per_job": ours_d["store_cpu_us_per_job"],
                "arq_cpu_us_per_job": arq_d["store_cpu_us_per_job"],
                "dramatiq_cpu_us_per_job": dramatiq["store_cpu_us_per_job"],
            },
            baseline="arq Worker store CPU per job",
            ratio=round(
                ours_d["store_cpu_us_per_job"] / max(arq_d["store_cpu_us_per_job"], 0.1), 3
            ),
            ratio_meaning="ours/arq store CPU per job (<1 = cheaper); commands count script calls "
            "and the commands scripts run (INFO commandstats)",
            target="cmds_per_job <= 5 and ratio <= 0.33",
        ),
        BenchResult(
            name="worker.pickup_latency",
            metrics={
                "p50_ms": round(percentile(lat_ours, 50), 2),
                "p99_ms": round(percentile(lat_ours, 99), 2),
                "mean_ms": round(statistics.fmean(lat_ours), 2),
                "arq_p50_ms": round(percentile(lat_arq, 50), 2),
            },
            baseline="arq Worker p50 (poll 0.01)",
            ratio=round(percentile(lat_ours, 50) / max(percentile(lat_arq, 50), 0.001), 3),
            ratio_meaning="ours/arq p50 enqueue-to-start (<=1 = no worse)",
            target="ratio <= 1",
        ),
        BenchResult(
            name="worker.scaling_processes",
            metrics={f"jobs_s_{n}p": round(rate) for n, rate in scale.items()},
            baseline="1 worker process",
            ratio=round(scale[4] / scale[1], 3),
            ratio_meaning="4 processes / 1 process jobs/s on one server (2 cores here)",
        ),
    ]
