"""The dashboard under load: 10,000 active downloads, 100 open SSE clients, one dashboard.

- The dashboard runs as its own process (``seen-worker dashboard``); the clients ("browsers",
  ``bench.dashboard_clients``) in another; the updates are applied here through the same
  script a worker runs (``bulk_update_progress``), at ``RATE`` updates/s spread over every
  active download, so every update is one stream entry the dashboard must fan out.
- event latency: XADD (the entry id's ms) to receipt by a client, over every event every
  client got; p50 / p99 in ms.
- CPU of the dashboard process over the measured window, from ``/proc/<pid>/stat``
  (utime + stime), as a share of one core.
- baseline, same run: the same clients *polling* the JSON snapshot (``/api/downloads``) every
  2 s, as the dashboards of peer queue systems do; the ratio is the dashboard CPU of polling
  over that of SSE (> 1: SSE is cheaper), and polling's staleness is 1 s on average by design.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import httpx

from bench.common import BenchEnv, BenchResult, percentile
from cache.download import DownloadStatus, ProgressUpdate
from cache.manager import CacheManager
from worker.processes import stop_process
from worker.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
TICK_S = 0.05
POLL_EVERY_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_dashboard(env: BenchEnv, port: int, clients: int) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ,
        "SEEN_CACHE_ADDR": env.addr,
        "SEEN_DASHBOARD_MAX_SSE_CLIENTS": str(clients + 10),
        "SEEN_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "dashboard", "--addr", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_clients(url: str, clients: int) -> subprocess.Popen[bytes]:
    """The "browsers": ``bench.dashboard_clients`` in a process of their own."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.dashboard_clients", url, "--clients", str(clients)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


async def wait_up(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url + "livez")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"dashboard at {url} did not come up in {within}s")


def update(job: str, seq: int) -> ProgressUpdate:
    """One download's update; its owner is fixed by its id (a new owner would be refused)."""
    return ProgressUpdate(
        job_id=job,
        user_id=f"u{zlib.crc32(job.encode()) % 97}",
        status=DownloadStatus.DOWNLOADING,
        seq=seq,
        bytes_done=seq * 1_000_000,
        bytes_total=10**12,
    )


async def seed(manager: CacheManager, jobs: list[str]) -> None:
    for i in range(0, len(jobs), 500):
        await manager.download.bulk_update_progress([update(j, 1) for j in jobs[i : i + 500]])


async def produce(manager: CacheManager, jobs: list[str], rate: int, seconds: float) -> int:
    """``rate`` updates/s round-robin over ``jobs`` for ``seconds``; returns how many."""
    per_tick = max(1, round(rate * TICK_S))
    seqs = dict.fromkeys(jobs, 1)
    sent = 0
    cursor = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        tick = time.monotonic()
        batch = []
        for _ in range(per_tick):
            job = jobs[cursor % len(jobs)]
            cursor += 1
            seqs[job] += 1
            batch.append(update(job, seqs[job]))
        await manager.download.bulk_update_progress(batch)
        sent += len(batch)
        await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - tick)))
    return sent


async def sse_run(
    env: BenchEnv, manager: CacheManager, jobs: list[str], clients: int, rate: int, seconds: float
) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    dash = start_dashboard(env, port, clients)
    readers: subprocess.Popen[bytes] | None = None
    try:
        await wait_up(url)
        readers = start_clients(url, clients)
        assert readers.stdout is not None and readers.stdin is not None
        ready = json.loads(await asyncio.to_thread(readers.stdout.readline))
        cpu0, wall0 = cpu_seconds(dash.pid), time.monotonic()
        sent = await produce(manager, jobs, rate, seconds)
        await asyncio.sleep(1.0)  # let the last events arrive (latency is measured per event)
        cpu = (cpu_seconds(dash.pid) - cpu0) / (time.monotonic() - wall0)
        readers.stdin.close()
        result = json.loads(await asyncio.to_thread(readers.stdout.readline))
    finally:
        if readers is not None:
            stop_process(readers, 10)
        stop_process(dash, 10)
    samples: list[float] = []
    for ms, count in result["latency_ms"].items():
        samples += [float(ms)] * count
    return {
        "sent": sent,
        "connect_s": ready["ready"],
        "cpu": cpu,
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "max": max(samples) if samples else 0.0,
        "events": result["events"],
        "resyncs": result["resyncs"],
        "errors": result["errors"],
    }


async def poll_run(env: BenchEnv, clients: int, seconds: float) -> dict[str, Any]:
    """Baseline: every client GETs /api/downloads every ``POLL_EVERY_S``; dashboard CPU."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    dash = start_dashboard(env, port, clients)
    try:
        await wait_up(url)
        stop = time.monotonic() + seconds
        cpu0, wall0 = cpu_seconds(dash.pid), time.monotonic()
        requests = failed = 0

        async def poller(offset: float) -> None:
            nonlocal requests, failed
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                await asyncio.sleep(offset)
                while time.monotonic() < stop:
                    response = await client.get("api/downloads")
                    requests += 1
                    failed += response.status_code != 200  # e.g. 503: store pool exhausted
                    await asyncio.sleep(POLL_EVERY_S)

        await asyncio.gather(*(poller(POLL_EVERY_S * i / clients) for i in range(clients)))
        cpu = (cpu_seconds(dash.pid) - cpu0) / (time.monotonic() - wall0)
    finally:
        stop_process(dash, 10)
    return {"cpu": cpu, "requests": requests, "failed": failed}


async def run(env: BenchEnv) -> list[BenchResult]:
    downloads = env.scale(10_000, 2_000)
    clients = env.scale(100, 20)
    rate = env.scale(2_000, 1_000)
    seconds = float(env.scale(20, 5))
    settings = load_settings(None, cache={"addr": env.addr})
    async with await CacheManager.connect(settings) as manager:
        await manager.client.flushdb()
        jobs = [f"bench-dl-{n}" for n in range(downloads)]
        await seed(manager, jobs)
        sse = await sse_run(env, manager, jobs, clients, rate, seconds)
        poll = await poll_run(env, clients, seconds)
        await manager.client.flushdb()
    per_client = sse["events"]
    complete = sum(n >= sse["sent"] for n in per_client)
    return [
        BenchResult(
            name=f"dashboard SSE: {downloads:,} downloads, {clients} clients, {rate:,} ev/s",
            metrics={
                "latency_p50_ms": sse["p50"],
                "latency_p99_ms": sse["p99"],
                "latency_max_ms": sse["max"],
                "dashboard_cpu_pct": round(100 * sse["cpu"], 1),
                "events_per_client": min(per_client) if per_client else 0,
                "clients_complete": complete,
                "resyncs": sse["resyncs"],
                "connect_s": sse["connect_s"],
            },
            baseline=f"polling /api/downloads every {POLL_EVERY_S:g} s",
            ratio=round(poll["cpu"] / sse["cpu"], 2) if sse["cpu"] > 0 else None,
            ratio_meaning="dashboard CPU of polling / of SSE (>1: SSE is cheaper)",
            notes={
                "updates_sent": sse["sent"],
                "poll_cpu_pct": round(100 * poll["cpu"], 1),
                "poll_requests": poll["requests"],
                "poll_failed": poll["failed"],
                "errors": sse["errors"],
                "seconds": seconds,
            },
        )
    ]
