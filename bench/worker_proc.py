"""One benchmark worker: ``SeenWorker`` with a no-op job, in process or as a subprocess.

``python -m bench.worker_proc <addr> <queue>`` runs a burst worker (all of ``seen-worker run``:
hooks, leases, heartbeats, counters) until its queue is empty; ``bench_worker`` starts 1, 2
or 4 of them against one server for the scaling figure.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

from arq.worker import func
from redis.asyncio import Redis

from worker.app import SeenWorker
from worker.settings import Settings, load_settings

MAX_JOBS = 200
POLL_DELAY = 0.01


async def noop(ctx: dict[str, Any]) -> None:
    return None


def bench_settings(addr: str, queue: str) -> Settings:
    return load_settings(
        None,
        cache={"addr": addr},
        queue={"name": queue},
        worker={"max_jobs": MAX_JOBS, "poll_delay": POLL_DELAY},
        http={"enabled": False},
        maintenance={
            "cleanup_every": 0,
            "stats_every": 0,
            "warmup_every": 0,
            "warmup_at_startup": False,
        },
    )


def ours(settings: Settings, burst: bool) -> SeenWorker:
    return SeenWorker(settings, extra_functions=[func(noop, name="noop")], burst=burst, cron=False)


async def enqueue_raw(client: Redis, queue: str, jobs: int, due_ms: int | None = None) -> None:
    """Write ``jobs`` no-op jobs per docs/wire-format.md (record + queue entry), pipelined."""
    now = int(time.time() * 1000)
    record = json.dumps({"t": None, "f": "noop", "a": [], "k": {}, "et": now})
    for offset in range(0, jobs, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(min(1000, jobs - offset)):
                job_id = uuid.uuid4().hex
                pipe.set(f"arq:job:{job_id}", record, px=86_400_000)
                pipe.zadd(queue, {job_id: due_ms or now})
            await pipe.execute()


async def _main(addr: str, queue: str) -> None:
    worker = ours(bench_settings(addr, queue), burst=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2]))
