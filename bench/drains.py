"""One drain per queue: N no-op jobs enqueued before the worker starts, one worker process runs
them all; the same figures for every queue, from the probe inside the worker (``bench.probe``).

- ``jobs_s``: jobs / (last job's end - first job's start);
- ``worker_cpu_us_per_job``: the worker process's CPU (user + system, every thread) over that
  window / jobs: start-up and shutdown are outside it;
- ``store_cpu_us_per_job``, ``store_cmds_per_job``: INFO deltas over the window / jobs (commands
  count what scripts run; ``bench.store_stats``);
- ``store_bytes_per_job``: what the store holds after the drain per job (results kept
  ``keep_result``; BullMQ keeps every completed job by default, ``removeOnComplete`` unset).

``fleet`` runs 1, 2 or 4 of our worker processes on one queue: the queue is paused (its pause
key) until every process has started, and the window runs from the first job's start in any
process to the last job's end in any; its store figures are INFO deltas the harness takes from
the unpause to the last exit.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from redis.asyncio import Redis

from bench import bullmq
from bench.procs import Child, run_to_end
from bench.store_stats import StoreSample, sample
from cache.client import create_client
from jobs.client import JobSpec, enqueue_jobs
from jobs.wire.layout import QueueLayout
from worker.settings import load_settings

Layout = Literal["arq", "sharded"]
ENQUEUE_CHUNK = 1000
BULLMQ_QUEUE = "bench"


def our_layout(addr: str, layout: Layout) -> QueueLayout:
    """The queue our worker processes use: the settings' name and shard count."""
    return load_settings(None, cache={"addr": addr}, queue={"layout": layout}).queue.key_layout()


async def enqueue_noops(raw: Redis, layout: QueueLayout, jobs: int) -> None:
    """``jobs`` no-op jobs through the producer API (``enqueue_jobs``), in bulk."""
    for start in range(0, jobs, ENQUEUE_CHUNK):
        count = min(ENQUEUE_CHUNK, jobs - start)
        specs: list[JobSpec] = [("noop", [], uuid.uuid4().hex) for _ in range(count)]
        await enqueue_jobs(raw, specs, layout=layout)


def figures(report: dict[str, Any], jobs: int) -> dict[str, float]:
    """The drain's figures from a worker's probe report (module docstring)."""
    if int(report["jobs"]) != jobs:
        raise RuntimeError(f"the worker ran {report['jobs']} jobs, not {jobs}")
    seconds = float(report["last"]) - float(report["first"])
    out: dict[str, float] = {"jobs_s": round(jobs / seconds)}
    if report.get("cpu_s") is not None:
        out["worker_cpu_us_per_job"] = round(float(report["cpu_s"]) * 1e6 / jobs, 1)
    if report.get("store_before") and report.get("store_after"):
        before = StoreSample.from_dict(report["store_before"])
        out |= before.per_job(StoreSample.from_dict(report["store_after"]), jobs)
    return out


def store_breakdown(report: dict[str, Any], jobs: int) -> dict[str, Any]:
    """The store's time per job by command (``StoreSample.breakdown``), when sampled."""
    if not (report.get("store_before") and report.get("store_after")):
        return {}
    before = StoreSample.from_dict(report["store_before"])
    return before.breakdown(StoreSample.from_dict(report["store_after"]), jobs)


def batch_sizes(report: dict[str, Any]) -> dict[str, float]:
    """Ours: jobs per claim and per finish round trip (``Engine.trips``)."""
    trips = report.get("trips")
    if not trips:
        return {}
    return {
        "claimed_per_claim": round(trips["claimed"] / max(1, trips["claims"]), 1),
        "finished_per_finish": round(trips["finished"] / max(1, trips["finishes"]), 1),
        "reads": trips["reads"],
        "claims": trips["claims"],
        "finishes": trips["finishes"],
    }


async def _used_memory(raw: Redis) -> int:
    info = await raw.info("memory")
    return int(info["used_memory"])


async def _fresh(raw: Redis) -> int:
    await raw.flushdb()
    return await _used_memory(raw)


def _queue_client(url: str, addr: str, layout: Layout, overrides: Mapping[str, object]) -> Redis:
    """The harness's client of the queue's store: ``url``'s server, or the cluster that
    ``overrides`` name (a cluster client, as the workers have)."""
    if not overrides.get("queue.cluster"):
        standalone: Redis = Redis.from_url(url)
        return standalone
    queue = {k.removeprefix("queue."): v for k, v in overrides.items() if k.startswith("queue.")}
    settings = load_settings(None, cache={"addr": addr}, queue={"layout": layout, **queue})
    client: Redis = create_client(settings.queue_cache_settings())
    return client


def worker_cmd(
    kind: str, addr: str, layout: Layout, expect: int, overrides: Mapping[str, object] = {}
) -> list[str]:
    cmd = [sys.executable, "-m", "bench.worker_proc", "--kind", kind, "--addr", addr]
    for name, value in overrides.items():
        cmd += ["--set", f"{name}={json.dumps(value)}"]
    return [*cmd, "--layout", layout, "--expect", str(expect)]


async def python_worker(
    url: str, addr: str, kind: str, layout: Layout, jobs: int
) -> dict[str, Any]:
    """Ours (``kind`` "ours", either layout) or ARQ's worker ("arq")."""
    raw = Redis.from_url(url)
    try:
        empty = await _fresh(raw)
        where = our_layout(addr, layout)
        await enqueue_noops(raw, where, jobs)
        report = await run_to_end(worker_cmd(kind, addr, layout, jobs), f"{kind} {layout}")
        left = sum([await raw.zcard(s.queue) for s in where.shards])
        if left:
            raise RuntimeError(f"{kind} {layout}: {left} jobs left in the queue")
        out = figures(report, jobs)
        out["store_bytes_per_job"] = round((await _used_memory(raw) - empty) / jobs)
        return {
            "figures": out,
            "store": store_breakdown(report, jobs),
            "batches": batch_sizes(report),
            "settings": report["settings"],
        }
    finally:
        await raw.aclose()


async def bullmq_worker(url: str, addr: str, jobs: int, concurrency: int) -> dict[str, Any]:
    raw = Redis.from_url(url)
    try:
        empty = await _fresh(raw)
        report = await bullmq.drain(addr, BULLMQ_QUEUE, jobs, concurrency)
        out = figures(report, jobs)
        out["store_bytes_per_job"] = round((await _used_memory(raw) - empty) / jobs)
        return {"figures": out, "store": store_breakdown(report, jobs)}
    finally:
        await raw.aclose()


async def dramatiq_worker(url: str, jobs: int, threads: int) -> dict[str, Any]:
    raw = Redis.from_url(url)
    try:
        empty = await _fresh(raw)
        cmd = [sys.executable, "-m", "bench.dramatiq_drain", url, str(jobs), str(threads)]
        report = await run_to_end(cmd, f"dramatiq t={threads}")
        out = figures(report, jobs)
        out["store_bytes_per_job"] = round((await _used_memory(raw) - empty) / jobs)
        return {"figures": out, "store": store_breakdown(report, jobs)}
    finally:
        await raw.aclose()


async def fleet(
    url: str,
    addr: str,
    layout: Layout,
    processes: int,
    jobs: int,
    *,
    overrides: Mapping[str, object] = {},
    nodes: Sequence[str] = (),
) -> dict[str, Any]:
    """``processes`` of our workers on one queue, started paused (module docstring). ``url`` is
    the store's (the queue's unless ``overrides`` move it); ``overrides`` go to every worker's
    settings and, with ``queue.addr``/``queue.cluster``, say where the harness writes the jobs
    (a Redis Cluster: bench.cluster_section); with ``nodes`` (store URLs: a cluster's nodes) the
    store figures are INFO deltas per node and their sum."""
    raw = _queue_client(url, addr, layout, overrides)
    node_clients = [Redis.from_url(n) for n in nodes]
    children: list[Child] = []

    async def store() -> tuple[StoreSample, list[StoreSample]]:
        if not node_clients:
            return await sample(raw), []
        each = [await sample(c) for c in node_clients]
        return StoreSample.total(each), each

    try:
        await raw.flushdb()
        where = our_layout(addr, layout)
        await raw.set(where.paused_key, "bench")
        await enqueue_noops(raw, where, jobs)
        for n in range(processes):
            cmd = worker_cmd("ours", addr, layout, 0, overrides)
            children.append(await Child.start(cmd, f"ours {layout} #{n}"))
        await asyncio.gather(*(c.ready() for c in children))
        before, per_node = await store()
        await raw.delete(where.paused_key)
        reports = await asyncio.gather(*(c.report() for c in children))
        after, per_node_after = await store()
        ran = sum(int(r["jobs"]) for r in reports)
        if ran != jobs:
            raise RuntimeError(f"{processes} processes ran {ran} jobs, not {jobs}")
        first = min(float(r["first"]) for r in reports if r["jobs"])
        last = max(float(r["last"]) for r in reports if r["jobs"])
        out: dict[str, Any] = {
            "figures": {"jobs_s": round(jobs / (last - first)), **before.per_job(after, jobs)},
            "jobs_per_process": [int(r["jobs"]) for r in reports],
        }
        if nodes:
            out["per_node"] = {
                node: b.per_job(a, jobs)
                for node, b, a in zip(nodes, per_node, per_node_after, strict=True)
            }
        return out
    finally:
        for child in children:
            await child.stop()
        for client in node_clients:
            await client.aclose()
        await raw.aclose()
