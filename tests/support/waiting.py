"""Polling with a deadline, and reading what workers leave in the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from redis.asyncio import Redis

from cache.keys import KeyBuilder
from worker.heartbeat import WorkerBeat, read_beats


async def fresh_beats(client: Redis, within: float = 1.5) -> list[WorkerBeat]:
    """Heartbeats younger than ``within`` seconds."""
    now = time.time() * 1000
    return [
        b for b in await read_beats(client, KeyBuilder()) if now - b.last_beat_ms <= within * 1000
    ]


async def items(client: Redis, key: str) -> list[str]:
    """A whole list, as text (redis-py's types cannot tell sync from async here)."""
    raw = await cast(Awaitable[list[Any]], client.lrange(key, 0, -1))
    return [x.decode() if isinstance(x, bytes) else str(x) for x in raw]


async def wait_until(
    check: Callable[[], Awaitable[bool]], within: float, what: str, interval: float = 0.05
) -> float:
    """Poll ``check`` until true; returns the seconds waited, fails the test after ``within``."""
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)
