"""``ping``: an end-to-end probe job. Enqueue it and await the result to prove a worker is
consuming the queue and can reach the store."""

from __future__ import annotations

from typing import Any

from cache.manager import CacheManager


async def ping(ctx: dict[str, Any]) -> str:
    """Round-trips to the cache; returns "pong"."""
    manager: CacheManager = ctx["cache"]
    await manager.ping()
    return "pong"
