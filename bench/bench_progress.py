"""The progress pipeline against plain ARQ, same run, same server (docs/progress.md, "numbers").
Every figure is the median of ``ROUNDS`` runs with its range; each round runs every path once.

Per path, one worker subprocess:
  A. saturation: a backlog is drained for a fixed window -> applied updates/s;
  B. offered load: 1,000 downloads x 10 updates/s -> applied/s, queue length, staleness
     (emit -> visible, sampled on 100 downloads every 20 ms) p50/p99.
Paths: (1) baseline, one plain ARQ job per update (ARQ defaults, then poll delay tuned; ratios
against the faster), (2) ``update_progress``, (3) ``update_progress_batch`` (one job per 100
updates in A, per 100 ms tick in B), (4) the coalescing ``ProgressPublisher``. Plus (5)
redis-benchmark EVALSHA of the apply script (the server's limit) and the 100k stale cleanup.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import progress_workload as w
from bench.common import BenchEnv, BenchResult, spreads
from bench.profile import PySpy, process_cpu_s, pyspy
from bench.progress_server import cleanup_figures, redis_benchmark_evalsha
from bench.store_stats import sample
from cache.download import now_ms
from cache.manager import CacheManager
from jobs.client import ProgressPublisher, enqueue_jobs, enqueue_update_batch

DOWNLOADS = 1000
TICK = 0.1  # 10 updates/s per download
BATCH = 100


@dataclass
class Plan:
    window: float  # seconds of a saturation measurement
    load: float  # seconds of offered load
    drain: float  # seconds allowed to catch up after the load
    backlog: int  # single-update jobs queued for a saturation run

    @classmethod
    def of(cls, env: BenchEnv) -> Plan:
        return cls(2.0, 3.0, 1.5, 12_000) if env.quick else cls(5.0, 10.0, 5.0, 40_000)


async def saturate_jobs(
    raw: Redis, records: list[tuple[str, bytes]], per_job: int, window: float
) -> dict[str, float]:
    """Drain a prepared backlog with the running worker; updates/s over ``window``."""
    await w.enqueue_records(raw, records)
    total = len(records)

    async def processed() -> int:
        return total - int(await raw.zcard("arq:queue"))

    rate, _ = await w.drain_rate(raw, window, processed=processed)
    return {"updates_s": round(rate * per_job)}


def backlog(plan: Plan, kind: str) -> tuple[list[tuple[str, bytes]], int]:
    """Job records for a saturation run; ids sort in emit order (ARQ's order at equal score)."""
    scale = 10 if kind == "batch" else 1  # batch jobs drain ~10x faster
    rounds = max(1, plan.backlog * scale // DOWNLOADS)
    out: list[tuple[str, bytes]] = []
    for seq in range(1, rounds + 1):
        updates = w.updates_for(DOWNLOADS, seq, now_ms())
        if kind == "batch":
            for i in range(0, DOWNLOADS, BATCH):
                payload = [u.model_dump(mode="json") for u in updates[i : i + BATCH]]
                out.append(
                    (
                        f"b{seq:06d}-{i:04d}",
                        w.record("update_progress_batch", [payload], use_pickle=False),
                    )
                )
        else:
            naive = kind == "naive"
            function = "naive_update_progress" if naive else "update_progress"
            for i, u in enumerate(updates):
                data = w.record(function, [u.model_dump(mode="json")], use_pickle=naive)
                out.append((f"u{seq:06d}-{i:04d}", data))
    return out, (BATCH if kind == "batch" else 1)


async def saturate_coalesced(manager: CacheManager, window: float) -> dict[str, float]:
    """Publish as fast as one producer can while the worker drains; publishes and applies /s."""
    publisher = ProgressPublisher(manager)
    before = (await manager.download.stats())["applied"]
    published = 0
    start = time.perf_counter()
    seq = 0
    while time.perf_counter() - start < window:
        seq += 1
        updates = w.updates_for(DOWNLOADS, seq, now_ms())
        for i in range(0, DOWNLOADS, 250):
            await publisher.publish_many(updates[i : i + 250])
        published += DOWNLOADS
    elapsed = time.perf_counter() - start
    applied = (await manager.download.stats())["applied"] - before
    return {"updates_s": round(published / elapsed), "applied_s": round(applied / elapsed)}


Sender = Callable[[int, int], Awaitable[None]]


async def offered_load(
    raw: Redis, plan: Plan, send: Sender, read: Callable[[list[str]], Awaitable[list[int]]]
) -> dict[str, float]:
    """1,000 downloads x 10 updates/s for ``plan.load`` s, then up to ``plan.drain`` s."""
    sampled = [f"dl-{d}" for d in range(0, DOWNLOADS, DOWNLOADS // 100)]
    staleness = w.Staleness(sampled)
    stop = asyncio.Event()
    sampler = asyncio.create_task(staleness.run(read, raw, stop))
    start = time.perf_counter()
    ticks = 0
    while time.perf_counter() - start < plan.load:
        ticks += 1
        emitted = time.perf_counter()
        for job in sampled:
            staleness.emit(job, ticks, emitted)
        await send(ticks, now_ms())
        await asyncio.sleep(max(0.0, start + ticks * TICK - time.perf_counter()))
    load_end = time.perf_counter()
    queue_at_end = int(await raw.zcard("arq:queue"))
    while time.perf_counter() - load_end < plan.drain:
        if min(await read(sampled)) >= ticks and not await raw.zcard("arq:queue"):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await sampler
    summary = staleness.summary(time.perf_counter())
    summary["emitted_s"] = round(ticks * DOWNLOADS / (load_end - start))
    summary["queue_at_load_end"] = queue_at_end
    return summary


def sender(kind: str, raw: Redis, manager: CacheManager) -> Sender:
    publisher = ProgressPublisher(manager)

    async def send(seq: int, emitted_ms: int) -> None:
        updates = w.updates_for(DOWNLOADS, seq, emitted_ms)
        if kind == "coalesced":
            await publisher.publish_many(updates)
        elif kind == "batch":
            await enqueue_update_batch(raw, updates)
        elif kind == "single":
            jobs = [
                ("update_progress", [u.model_dump(mode="json")], f"s{seq}-{u.job_id}")
                for u in updates
            ]
            await enqueue_jobs(raw, jobs)
        else:
            records = [
                (
                    f"n{seq}-{u.job_id}",
                    w.record("naive_update_progress", [u.model_dump(mode="json")], use_pickle=True),
                )
                for u in updates
            ]
            await w.enqueue_records(raw, records)

    return send


async def run_path(
    env: BenchEnv, plan: Plan, kind: str, raw: Redis, manager: CacheManager, poll: float | None
) -> dict[str, float]:
    """Saturation then offered load for one path, on one worker subprocess."""
    worker = "naive" if kind == "naive" else "ours"
    await raw.flushdb()
    proc = w.start_worker(worker, env.url, poll_delay=poll)
    try:
        await w.wait_ready(raw, worker, proc)
        if kind == "coalesced":
            figures = await saturate_coalesced(manager, plan.window)
        else:
            records, per_job = backlog(plan, kind)
            figures = await saturate_jobs(raw, records, per_job, plan.window)
        await raw.flushdb()
        await asyncio.sleep(0.2)

        async def read(jobs: list[str]) -> list[int]:
            if kind == "naive":
                return await w.read_naive(raw, jobs)
            return [p.seq if p else 0 for p in await manager.download.get_many(jobs)]

        figures.update(await offered_load(raw, plan, sender(kind, raw, manager), read))
    finally:
        w.stop_worker(proc)
        await raw.flushdb()
    return figures


async def profiled_saturation(env: BenchEnv, plan: Plan, raw: Redis) -> dict[str, Any]:
    """One more saturation run of plain ``update_progress`` jobs, measured from outside the
    worker process: its CPU (``/proc``) and the store's (INFO) per update over the window, the
    store's time by command, and a py-spy profile when py-spy is there (bench/profile.py)."""
    await raw.flushdb()
    proc = w.start_worker("ours", env.url)
    binary = pyspy(env.py_spy)
    out_dir = Path(tempfile.mkdtemp(prefix="seen-bench-progress-"))
    spy = PySpy(binary, out_dir / "saturation.txt") if binary else None
    try:
        await w.wait_ready(raw, "ours", proc)
        records, _ = backlog(plan, "single")
        if spy is not None:
            await spy.attach(proc.pid)
        await w.enqueue_records(raw, records)
        total = len(records)

        async def processed() -> int:
            return total - int(await raw.zcard("arq:queue"))

        done0, cpu0, store0 = await processed(), process_cpu_s(proc.pid), await sample(raw)
        rate, _ = await w.drain_rate(raw, plan.window, processed=processed)
        done = await processed() - done0
        cpu1, store1 = process_cpu_s(proc.pid), await sample(raw)
    finally:
        w.stop_worker(proc)
    try:
        profile = await spy.summary() if spy is not None else {"profiler": "none (no py-spy)"}
    finally:
        if spy is not None:
            await spy.close()
        shutil.rmtree(out_dir, ignore_errors=True)
        await raw.flushdb()
    return {
        "updates_s": round(rate),
        "worker_cpu_us_per_update": round((cpu1 - cpu0) * 1e6 / max(1, done), 1),
        "store": store0.breakdown(store1, max(1, done)),
        "profile": profile,
    }


PATHS = (
    ("baseline_arq_default", "naive", 0.5),
    ("baseline_arq_tuned", "naive", 0.01),
    ("update_progress", "single", None),
    ("update_progress_batch", "batch", None),
    ("coalesced_publisher", "coalesced", None),
)
ROUNDS = 3
UPDATE_PROGRESS_TARGET = 10_000
"""Plain ``update_progress`` jobs per second at the defaults (issue 19)."""

Runs = dict[str, list[dict[str, float]]]


async def run(env: BenchEnv) -> list[BenchResult]:
    plan = Plan.of(env)
    raw = Redis.from_url(env.url)
    runs: Runs = {name: [] for name, _, _ in PATHS}
    server: Runs = {"evalsha": [], "cleanup": []}
    try:
        async with await CacheManager.from_url(env.url, socket_timeout=10.0) as manager:
            for round_ in range(ROUNDS):  # interleaved: every path once per round
                for name, kind, poll in PATHS:
                    print(f"   round {round_ + 1}/{ROUNDS}: {name}", flush=True)
                    runs[name].append(await run_path(env, plan, kind, raw, manager, poll))
                evalsha = await redis_benchmark_evalsha(env, manager)
                if evalsha is not None:
                    server["evalsha"].append({"updates_s": round(evalsha)})
                await raw.flushdb()
                server["cleanup"].append(await cleanup_figures(raw, manager))
            profiled = await profiled_saturation(env, plan, raw)
    finally:
        await raw.aclose()
    return report(runs, server, profiled)


def _medians(runs: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, list[float]]]:
    spread = spreads(runs)
    return (
        {k: round(s.median, 2) for k, s in spread.items()},
        {k: s.range for k, s in spread.items()},
    )


def report(runs: Runs, server: Runs, profiled: dict[str, Any]) -> list[BenchResult]:
    medians = {name: _medians(r) for name, r in runs.items()}
    base_name = max(
        ("baseline_arq_default", "baseline_arq_tuned"), key=lambda n: medians[n][0]["updates_s"]
    )
    base = medians[base_name][0]["updates_s"] or 1
    targets = {
        "update_progress": f"updates_s >= {UPDATE_PROGRESS_TARGET:,} (plain jobs, defaults)",
        "update_progress_batch": "updates_s >= 10x the faster baseline",
        "coalesced_publisher": f"queue_max <= {DOWNLOADS} active downloads and stale_p99_ms < 1000",
    }
    results = []
    for name, (metrics, ranges) in medians.items():
        notes: dict[str, Any] = {}
        if name == "update_progress":
            notes["meets_target"] = metrics["updates_s"] >= UPDATE_PROGRESS_TARGET
            notes["settings"] = "seen-worker run at the defaults (max_jobs, poll_delay, layout)"
            notes["profiled_run"] = profiled
        if name == "update_progress_batch":
            notes["meets_target"] = metrics["updates_s"] >= 10 * base
        if name == "coalesced_publisher":
            notes["meets_target"] = (
                metrics["queue_max"] <= DOWNLOADS and metrics["stale_p99_ms"] < 1000
            )
            notes["updates_s"] = (
                "publishes absorbed per second by one producer; applied_s: state writes"
            )
        results.append(
            BenchResult(
                name=f"progress.{name}",
                metrics=metrics,
                ranges=ranges,
                runs=len(runs[name]),
                baseline=f"progress.{base_name}",
                ratio=round(metrics["updates_s"] / base, 2),
                ratio_meaning="median updates/s vs the faster plain-ARQ baseline (saturation)",
                target=targets.get(name, ""),
                notes=notes,
            )
        )
    if server["evalsha"]:
        evalsha, spans = _medians(server["evalsha"])
        batch = medians["update_progress_batch"][0]["updates_s"]
        results.append(
            BenchResult(
                name="progress.redis_benchmark_evalsha_apply",
                metrics=evalsha,
                ranges=spans,
                runs=len(server["evalsha"]),
                baseline="progress.update_progress_batch",
                ratio=round(batch / evalsha["updates_s"], 3),
                ratio_meaning="batch path / the server's EVALSHA limit (1.0 = server-bound)",
            )
        )
    cleanup, spans = _medians(server["cleanup"])
    results.append(
        BenchResult(
            name="progress.cleanup_stale_100k",
            metrics=cleanup,
            ranges=spans,
            runs=len(server["cleanup"]),
            baseline="one ZREMRANGEBYSCORE of 100k entries",
            ratio=round(cleanup["naive_cmd_us"] / max(1, cleanup["worst_cmd_us"]), 1),
            ratio_meaning="longest server block: naive / ours (>1 = ours blocks less)",
            target="no command blocks other clients for more than a few ms",
            notes={"meets_target": cleanup["worst_cmd_us"] < 5000},
        )
    )
    return results
