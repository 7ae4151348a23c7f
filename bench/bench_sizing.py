"""Sizing a fleet (docs/sizing.md): what the store holds per active download and per queued
job, what one worker process and the dashboard cost, and how many connections each opens.

Every figure is the median of three runs with its range (``<name>_min``, ``<name>_max``):

- **store memory per active download**: ``used_memory`` (INFO) before and after applying one
  progress update to each of ``n`` new downloads (100k; 20k with QUICK) in a database of its own,
  less the event streams, which are capped (``download.events_maxlen`` per shard) and so do not
  grow with the number of downloads: they are reported apart, per entry and at their cap. The
  coalesced path's pending update (one per download between publish and drain) is measured the
  same way. Per million = per download x 10^6: an extrapolation from 100k, said so in the docs.
- **store memory per queued job**: ``n`` ``update_progress`` jobs written as docs/wire-format.md
  says (record with its 24 h expiry, queue entry), in ARQ's layout and in the sharded layout
  (longer key names: the hashtag), before any worker runs them.
- **one worker process** (``seen-worker run``, shipped settings, a free HTTP port): resident
  memory and CPU over 5 s idle after start-up, then while it drains ``jobs`` ``update_progress``
  jobs (20k) at full speed: peak resident memory, CPU and jobs/s; store connections it holds
  (CLIENT LIST count before it started and after) idle and at most under load.
- **the dashboard process** (``seen-worker dashboard``): memory, CPU and connections idle, and
  while ``/metrics`` is scraped once a second (a Prometheus at a 1 s interval).

The store is the benchmark's server (Redis or Valkey): Dragonfly's memory accounting differs
(docs/sizing.md says how to read yours). No baseline applies, so no ratio is given.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from redis.asyncio import Redis

from bench.common import BenchEnv, BenchResult
from bench.sizing_proc import MeasuredProcess, Usage, cpu_percent, spread
from cache.download import DownloadStatus, ProgressUpdate
from cache.keys import KeyBuilder
from cache.manager import CacheManager
from jobs.wire.layout import QueueLayout
from worker.heartbeat import read_beats
from worker.settings import load_settings

RUNS = 3
DB = 9
"""The database the store figures are measured in (flushed before each run)."""
JOB_TTL_MS = 86_400_000
IDLE_S = 5.0
MB = 1024 * 1024


def _update(n: int, seq: int = 1) -> ProgressUpdate:
    """A download as producers send it: UUID ids, two downloads per user."""
    return ProgressUpdate(
        job_id=str(uuid.UUID(int=n)),
        user_id=str(uuid.UUID(int=10**12 + n // 2)),
        status=DownloadStatus.DOWNLOADING,
        seq=seq,
        bytes_done=1_048_576 * seq,
        bytes_total=734_003_200,
        emitted_at_ms=int(time.time() * 1000),
    )


async def _used_memory(raw: Redis) -> int:
    return int((await raw.info("memory"))["used_memory"])


def _client(env: BenchEnv) -> Redis:
    """A client on the benchmark's own database ``DB`` (``from_url`` would take the URL's)."""
    host, _, port = env.addr.rpartition(":")
    return Redis(host=host, port=int(port), db=DB)


async def _flush(raw: Redis) -> None:
    """Empty the database now (SYNC: a lazy free would still count in ``used_memory``)."""
    await raw.execute_command("FLUSHDB", "SYNC")  # type: ignore[no-untyped-call]


async def _grown(raw: Redis, fill: Callable[[], Awaitable[None]]) -> int:
    """Bytes ``used_memory`` grew by while ``fill`` ran, on a flushed database."""
    await _flush(raw)
    before = await _used_memory(raw)
    await fill()
    return await _used_memory(raw) - before


async def _streams(raw: Redis, manager: CacheManager) -> tuple[int, int]:
    """Bytes and entries of the download event streams (MEMORY USAGE, every element)."""
    size = entries = 0
    for shard in manager.download.layout.shard_keys:
        size += int(await raw.memory_usage(shard.events, samples=0) or 0)
        entries += int(await raw.xlen(shard.events))
    return size, entries


async def store_per_download(env: BenchEnv, n: int) -> BenchResult:
    settings = load_settings(None, cache={"addr": env.addr, "db": DB})
    state: list[float] = []
    pending: list[float] = []
    per_event: list[float] = []
    raw = _client(env)
    try:
        async with await CacheManager.connect(settings) as manager:
            for _ in range(RUNS):

                async def apply() -> None:
                    for start in range(0, n, 1000):
                        batch = [_update(i) for i in range(start, min(n, start + 1000))]
                        await manager.download.bulk_update_progress(batch)

                async def publish() -> None:
                    for start in range(0, n, 1000):
                        batch = [_update(i) for i in range(start, min(n, start + 1000))]
                        await manager.download.publish_many(batch)

                grown = await _grown(raw, apply)
                streams, entries = await _streams(raw, manager)
                state.append((grown - streams) / n)
                per_event.append(streams / max(1, entries))
                pending.append(await _grown(raw, publish) / n)
            await _flush(raw)
    finally:
        await raw.aclose()
    cap = settings.download.events_maxlen * settings.download.shards
    figures = _named("state_bytes", spread(state, 0)) | _named("pending_bytes", spread(pending, 0))
    figures |= _named("event_bytes", spread(per_event, 0))
    figures["streams_at_cap_mb"] = round(figures["event_bytes"] * cap / MB, 1)
    per_million = (figures["state_bytes"] + figures["pending_bytes"]) * 1e6 / MB
    figures["per_million_mb"] = round(per_million, 0)
    return BenchResult(
        name="sizing.store_per_active_download",
        metrics=medians_first(figures),
        notes={
            "downloads": n,
            "runs": RUNS,
            "per_million": "extrapolated from the measured downloads (x 10^6 / n)",
            "streams": f"capped near download.events_maxlen x download.shards = {cap} entries",
            "server": "the benchmark's server; Dragonfly's accounting differs",
        },
    )


def _record(n: int) -> str:
    update = _update(n).model_dump(mode="json", exclude_none=True)
    now = int(time.time() * 1000)
    return json.dumps(
        {"t": 1, "f": "update_progress", "a": [update], "k": {}, "et": now},
        separators=(",", ":"),
    )


async def enqueue(raw: Redis, layout: QueueLayout, n: int, due_ms: int | None = None) -> None:
    """``n`` update_progress jobs as docs/wire-format.md writes them (record, queue entry)."""
    due = due_ms if due_ms is not None else int(time.time() * 1000)
    for start in range(0, n, 1000):
        async with raw.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + 1000)):
                job_id = uuid.uuid4().hex
                shard = layout.for_job(job_id)
                pipe.set(shard.job(job_id), _record(i), px=JOB_TTL_MS)
                pipe.zadd(shard.queue, {job_id: due})
            await pipe.execute()


async def store_per_job(env: BenchEnv, n: int, kind: str) -> BenchResult:
    layout = QueueLayout.of("sharded" if kind == "sharded" else "arq", "arq:queue", 8)
    per_job: list[float] = []
    raw = _client(env)
    try:
        for _ in range(RUNS):

            async def fill() -> None:
                await enqueue(raw, layout, n)

            per_job.append(await _grown(raw, fill) / n)
        await _flush(raw)
    finally:
        await raw.aclose()
    figures = _named("job_bytes", spread(per_job, 0))
    figures["per_million_mb"] = round(figures["job_bytes"] * 1e6 / MB, 0)
    figures["record_bytes"] = len(_record(0))
    return BenchResult(
        name=f"sizing.store_per_queued_job.{kind}",
        metrics=medians_first(figures),
        notes={
            "jobs": n,
            "runs": RUNS,
            "layout": layout.describe(),
            "per_million": "extrapolated from the measured jobs (x 10^6 / n)",
            "job": "update_progress with one update (docs/wire-format.md), 24 h record expiry",
        },
    )


def _named(name: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{name}{suffix}": value for suffix, value in values.items()}


def medians_first(metrics: dict[str, float]) -> dict[str, float]:
    """The medians, then the ranges (``_min``/``_max``): the README table shows the first four."""
    ranges = ("_min", "_max")
    return {k: v for k, v in metrics.items() if not k.endswith(ranges)} | metrics


async def _clients(raw: Redis) -> int:
    return len(await raw.client_list())


async def _wait_for_beat(raw: Redis, pid: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if any(b.pid == pid for b in await read_beats(raw, KeyBuilder())):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"worker {pid} wrote no heartbeat within {within}s")


async def _idle(proc: MeasuredProcess) -> tuple[Usage, float]:
    first = proc.usage()
    await asyncio.sleep(IDLE_S)  # a measurement window, not a wait for a condition
    last = proc.usage()
    return last, cpu_percent(first, last)


async def worker_run(env: BenchEnv, raw: Redis, jobs: int, log: Path) -> dict[str, float]:
    """One worker at the shipped settings: idle, then draining ``jobs`` jobs."""
    await _flush(raw)
    before = await _clients(raw)
    proc = MeasuredProcess(
        ["run"], {"SEEN_CACHE_ADDR": env.addr, "SEEN_HTTP_ADDR": "127.0.0.1:0"}, log
    )
    proc.start()
    try:
        await proc.wait_for_log(r"worker \S+ started", 60)
        await _wait_for_beat(raw, proc.pid, 30)
        idle, idle_cpu = await _idle(proc)
        idle_clients = await _clients(raw) - before
        await enqueue(raw, QueueLayout.arq("arq:queue"), jobs)
        first = proc.usage()
        peak_rss, peak_clients = first.rss_bytes, idle_clients
        deadline = time.monotonic() + 300
        while await raw.zcard("arq:queue") > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not drain {jobs} jobs in 300 s")
            await asyncio.sleep(0.1)
            now = proc.usage()
            peak_rss = max(peak_rss, now.rss_bytes)
            peak_clients = max(peak_clients, await _clients(raw) - before)
        last = proc.usage()
        dead = await raw.llen(KeyBuilder().dead_letter())  # type: ignore[misc]
        assert dead == 0, f"{dead} of the benchmark's jobs were dead-lettered"
    finally:
        proc.stop()
    return {
        "idle_rss_mb": idle.rss_bytes / MB,
        "idle_cpu_pct": idle_cpu,
        "idle_connections": idle_clients,
        "load_rss_mb": max(peak_rss, last.rss_bytes) / MB,
        "load_cpu_pct": cpu_percent(first, last),
        "load_connections": peak_clients,
        "load_jobs_s": jobs / max(1e-9, last.at - first.at),
    }


async def dashboard_run(env: BenchEnv, raw: Redis, scrapes: int, log: Path) -> dict[str, float]:
    """The dashboard process: idle, then ``/metrics`` scraped once a second."""
    before = await _clients(raw)
    proc = MeasuredProcess(
        ["dashboard", "--addr", "127.0.0.1:0"], {"SEEN_CACHE_ADDR": env.addr}, log
    )
    proc.start()
    try:
        url = (await proc.wait_for_log(r"dashboard on (http://\S+?)/?\s", 60)).group(1)
        idle, idle_cpu = await _idle(proc)
        idle_clients = await _clients(raw) - before
        first = proc.usage()
        peak_rss = first.rss_bytes
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for _ in range(scrapes):
                tick = time.monotonic()
                response = await client.get("/metrics")
                assert b"seen_fleet_up 1" in response.content, response.text[:300]
                peak_rss = max(peak_rss, proc.usage().rss_bytes)
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        last = proc.usage()
        load_clients = await _clients(raw) - before
    finally:
        proc.stop()
    return {
        "idle_rss_mb": idle.rss_bytes / MB,
        "idle_cpu_pct": idle_cpu,
        "idle_connections": idle_clients,
        "scrape_rss_mb": max(peak_rss, last.rss_bytes) / MB,
        "scrape_cpu_pct": cpu_percent(first, last),
        "scrape_connections": load_clients,
    }


def _runs_summary(runs: list[dict[str, float]]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for key in runs[0]:
        figures |= _named(key, spread([r[key] for r in runs]))
    return figures


async def processes(env: BenchEnv, jobs: int) -> list[BenchResult]:
    raw = Redis.from_url(env.url)
    workers: list[dict[str, float]] = []
    dashboards: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sizing-") as tmp:
            for run in range(RUNS):
                workers.append(await worker_run(env, raw, jobs, Path(tmp, f"worker-{run}.log")))
                log = Path(tmp, f"dashboard-{run}.log")
                dashboards.append(await dashboard_run(env, raw, env.scale(20, 5), log))
        await _flush(raw)
    finally:
        await raw.aclose()
    order = ["idle_rss_mb", "load_rss_mb", "load_cpu_pct", "load_connections"]
    worker = _runs_summary(workers)
    worker = {k: worker[k] for k in order} | medians_first(worker)
    return [
        BenchResult(
            name="sizing.worker_process",
            metrics=worker,
            notes={
                "runs": workers,
                "settings": "settings.toml as shipped (max_jobs 50, max_connections 64)",
                "load": f"{jobs} update_progress jobs enqueued at once, drained at full speed",
                "connections": "CLIENT LIST count with the worker running minus before it",
            },
        ),
        BenchResult(
            name="sizing.dashboard_process",
            metrics=medians_first(_runs_summary(dashboards)),
            notes={"runs": dashboards, "scrape": "GET /metrics once a second"},
        ),
    ]


async def run(env: BenchEnv) -> list[BenchResult]:
    n = env.scale(100_000, 20_000)
    results = [await store_per_download(env, n)]
    for kind in ("arq", "sharded"):
        results.append(await store_per_job(env, n, kind))
    results += await processes(env, env.scale(20_000, 5_000))
    return results
