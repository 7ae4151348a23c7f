"""Pickup latency: one job at a time on an idle, running worker process; enqueue-to-start (ms)
from the job's own stamps (the result record's ``et`` and ``st`` for ours and ARQ, BullMQ's
``timestamp`` and ``processedOn``), all written on this machine's one clock.

Each job is enqueued after a random pause of up to one ``poll_delay``, so enqueues do not lock
onto the worker's poll phase: a polling worker's p50 is then about half its ``poll_delay``
plus a round trip, and its p99 about the whole of it. BullMQ's worker waits on a blocking pop
instead of polling.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid

import orjson
from redis.asyncio import Redis

from bench import bullmq
from bench.drains import BULLMQ_QUEUE, Layout, our_layout
from bench.procs import Child
from jobs.client import enqueue_jobs

RESULT_WITHIN_S = 5.0


async def python_worker(
    url: str, addr: str, kind: str, layout: Layout, samples: int, poll_delay: float
) -> list[float]:
    """Ours (``kind`` "ours") or ARQ's worker ("arq"), serving until stopped."""
    raw = Redis.from_url(url)
    cmd = ["-m", "bench.worker_proc", "--kind", kind, "--addr", addr, "--layout", layout]
    worker = await Child.start([sys.executable, *cmd, "--serve"], f"{kind} {layout} serve")
    latencies: list[float] = []
    try:
        await raw.flushdb()
        await worker.ready()
        where = our_layout(addr, layout)
        for _ in range(samples):
            await asyncio.sleep(random.uniform(0, poll_delay))
            job_id = uuid.uuid4().hex
            await enqueue_jobs(raw, [("noop", [], job_id)], layout=where)
            key = where.for_job(job_id).result(job_id)
            deadline = time.monotonic() + RESULT_WITHIN_S
            while (raw_result := await raw.get(key)) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind}: job {job_id} not done in {RESULT_WITHIN_S}s")
                await asyncio.sleep(0.002)
            record = orjson.loads(raw_result)
            latencies.append(float(record["st"] - record["et"]))
    finally:
        await worker.stop()
        await raw.aclose()
    return latencies


async def bullmq_worker(
    url: str, addr: str, samples: int, concurrency: int, max_pause_s: float
) -> list[float]:
    raw = Redis.from_url(url)
    try:
        await raw.flushdb()
    finally:
        await raw.aclose()
    return await bullmq.pickup(addr, BULLMQ_QUEUE, samples, concurrency, max_pause_s)
