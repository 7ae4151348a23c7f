"""Jobs the tests' worker processes load through ``worker.job_modules = ["tests.support.jobs"]``:
a slow one (to abort while it runs), a failing one and an echo, declared as any team would."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq.worker import Retry
from redis.exceptions import RedisError

from cache.errors import CacheError
from jobs import JobContext, job


@job(timeout=30)
async def test_sleep(ctx: JobContext, seconds: float) -> str:
    """Sleeps ``seconds``; aborted tests cancel it."""
    await asyncio.sleep(seconds)
    return "slept"


@job(max_tries=1)
async def test_fail(ctx: JobContext, message: str) -> None:
    """Fails with ``ValueError(message)``."""
    raise ValueError(message)


@job(name="test_echo_job")
async def echo(ctx: JobContext, *args: Any) -> list[Any]:
    """Returns its arguments (its name is not its function's)."""
    return list(args)


@job(name="test_track", timeout=30)
async def track(ctx: JobContext, pause_ms: int = 20) -> int:
    """Records this run's start and end (ms) and worker in the cache store, under the job's
    id, then returns how many runs the job has had: the failover test checks that no job's
    runs ever overlapped."""
    manager = ctx["cache"]
    key = manager.keys.key("testruns", str(ctx.get("job_id")))
    start = time.time_ns() // 1_000_000
    await asyncio.sleep(pause_ms / 1000)
    end = time.time_ns() // 1_000_000
    entry = f"{start}:{end}:{ctx.get('worker_id')}"
    try:
        runs = await manager.client.rpush(key, entry)  # type: ignore[misc]
        await manager.client.expire(key, 3600)
    except (CacheError, RedisError) as exc:  # the store is away: run again, as ours do
        raise Retry(defer=0.2) from exc
    return int(runs)
