"""Workload pieces of bench_progress: worker subprocesses, the naive baseline job, backlogs,
offered-load producers and the staleness sampler.

The baseline is one plain ARQ job per update "as a user would write it": ARQ's defaults
(pickle, ``max_jobs=10``, ``poll_delay=0.5``), a job that GETs the JSON state, compares the
seq and SETs it back with a TTL. ``python -m bench.progress_workload naive-worker`` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings
from arq.constants import (
    default_queue_name,
    expires_extra_ms,
    health_check_key_suffix,
    job_key_prefix,
)
from arq.jobs import serialize_job
from arq.worker import Worker
from redis.asyncio import Redis

from bench.common import percentile
from cache.download import ProgressUpdate
from jobs.client import enqueue
from worker.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
NAIVE_KEY = "naive:progress:"


async def naive_update_progress(ctx: dict[str, Any], update: dict[str, Any]) -> None:
    """The baseline job: read, compare, write (not atomic, one update per job)."""
    redis = ctx["redis"]
    key = NAIVE_KEY + update["job_id"]
    current = await redis.get(key)
    if current is not None and json.loads(current)["seq"] >= update["seq"]:
        return
    await redis.set(key, json.dumps(update), px=30_000)


def naive_worker_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="naive-worker")
    parser.add_argument("--addr", required=True)
    parser.add_argument("--poll-delay", type=float, default=0.5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    worker = Worker(
        functions=[naive_update_progress],
        redis_settings=RedisSettings.from_dsn(args.addr),
        poll_delay=args.poll_delay,
    )
    worker.run()


def start_worker(
    kind: str, url: str, *, poll_delay: float | None = None
) -> subprocess.Popen[bytes]:
    """A worker subprocess: "naive" (plain ARQ) or "ours" (``seen-worker run``)."""
    env = {**os.environ, "SEEN_CACHE_ADDR": url, "SEEN_LOG_LEVEL": "WARNING"}
    env["SEEN_HTTP_ADDR"] = "127.0.0.1:0"  # /metrics on any free port (a shared machine)
    if kind == "naive":
        cmd = [sys.executable, "-m", "bench.progress_workload", "naive-worker", "--addr", url]
        cmd += ["--poll-delay", str(poll_delay if poll_delay is not None else 0.5)]
    else:
        cmd = [sys.executable, "-m", "worker.cli", "run"]
        if poll_delay is not None:
            env["SEEN_WORKER_POLL_DELAY"] = str(poll_delay)
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


READY_WITHIN_S = 60.0


async def wait_ready(queue: Redis, kind: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the worker subprocess runs jobs, so no measurement includes its start-up:
    ours answers a ``ping`` job; plain ARQ has written its health-check key (its first poll)."""
    deadline = time.monotonic() + READY_WITHIN_S
    if kind == "naive":
        key = default_queue_name + health_check_key_suffix
        while not await queue.exists(key):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the naive worker did not start within {READY_WITHIN_S}s")
            await asyncio.sleep(0.05)
        return
    handle = await enqueue(queue, "ping")
    if handle is None or await handle.result(READY_WITHIN_S, poll_delay=0.05) != "pong":
        raise RuntimeError(f"the worker did not answer a ping within {READY_WITHIN_S}s")


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, 15)


def updates_for(downloads: int, seq: int, emitted_ms: int) -> list[ProgressUpdate]:
    return [
        ProgressUpdate(
            job_id=f"dl-{d}",
            user_id=f"u{d % 100}",
            status="downloading",
            seq=seq,
            bytes_done=seq * 65_536,
            bytes_total=10**10,
            emitted_at_ms=emitted_ms,
        )
        for d in range(downloads)
    ]


def record(function: str, args: Sequence[Any], *, use_pickle: bool) -> bytes:
    """The job record ARQ's enqueue_job writes (pickle for the baseline, JSON for ours)."""
    from jobs.serializer import serialize

    now = time.time_ns() // 1_000_000
    out: bytes = serialize_job(
        function, tuple(args), {}, None, now, serializer=pickle.dumps if use_pickle else serialize
    )
    return out


async def enqueue_records(queue: Redis, records: Sequence[tuple[str, bytes]]) -> None:
    """Write prepared records in pipelined chunks (setup speed; same keys as enqueue_job)."""
    now = time.time_ns() // 1_000_000
    for start in range(0, len(records), 2000):
        async with queue.pipeline(transaction=False) as pipe:
            for job_id, data in records[start : start + 2000]:
                pipe.set(job_key_prefix + job_id, data, px=expires_extra_ms)
                pipe.zadd(default_queue_name, {job_id: now})
            await pipe.execute()


async def drain_rate(
    queue: Redis, window: float, *, processed: Callable[[], Awaitable[int]]
) -> tuple[float, int]:
    """Work done per second over ``window`` seconds after the first unit is done (or until
    the backlog is gone). ``processed()`` counts work done so far. Returns (rate, units)."""
    start_count = await processed()
    deadline = time.monotonic() + 30
    while await processed() == start_count:
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not start within 30 s")
        await asyncio.sleep(0.01)
    t0, c0 = time.perf_counter(), await processed()
    for _ in range(int(window / 0.02)):
        if not await queue.zcard(default_queue_name):
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - t0
    done = await processed() - c0
    return done / elapsed, done


@dataclass
class Staleness:
    """Emit -> visible times of sampled downloads, measured on one clock (perf_counter).

    An update counts as visible at the first sample showing its download at that seq or later
    (sampling every ``interval`` s adds at most that much). Updates never seen are censored at
    the end of the run and counted apart.
    """

    sampled: list[str]
    interval: float = 0.02
    emitted: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    seen: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    queue_lengths: list[int] = field(default_factory=list)

    def emit(self, job_id: str, seq: int, when: float) -> None:
        if job_id in self.emitted:
            self.emitted[job_id].append((seq, when))

    def __post_init__(self) -> None:
        self.emitted = {j: [] for j in self.sampled}
        self.seen = {j: [] for j in self.sampled}

    async def run(
        self, read: Callable[[list[str]], Awaitable[list[int]]], queue: Redis, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            seqs = await read(self.sampled)
            now = time.perf_counter()
            for job, seq in zip(self.sampled, seqs, strict=True):
                self.seen[job].append((now, seq))
            self.queue_lengths.append(int(await queue.zcard(default_queue_name)))
            await asyncio.sleep(self.interval)

    def summary(self, end: float) -> dict[str, float]:
        delays: list[float] = []
        censored = 0
        for job, emits in self.emitted.items():
            samples = self.seen[job]
            i = 0
            for seq, when in sorted(emits):
                while i < len(samples) and (samples[i][1] < seq or samples[i][0] < when):
                    i += 1
                if i < len(samples):
                    delays.append(samples[i][0] - when)
                else:
                    delays.append(end - when)
                    censored += 1
        lengths = self.queue_lengths or [0]
        return {
            "stale_p50_ms": round(percentile(delays, 50) * 1000, 1),
            "stale_p99_ms": round(percentile(delays, 99) * 1000, 1),
            "never_visible": censored,
            "queue_max": max(lengths),
            "queue_mean": round(sum(lengths) / len(lengths), 1),
        }


async def read_naive(client: Redis, jobs: list[str]) -> list[int]:
    values = await client.mget([NAIVE_KEY + j for j in jobs])
    return [json.loads(v)["seq"] if v else 0 for v in values]


if __name__ == "__main__":
    if sys.argv[1:2] == ["naive-worker"]:
        naive_worker_main(sys.argv[2:])
    else:
        sys.exit("usage: python -m bench.progress_workload naive-worker --addr URL")
