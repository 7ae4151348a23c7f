"""``ping``: an end-to-end probe job. Enqueue it and await the result to prove a worker is
consuming the queue and can reach the store."""

from __future__ import annotations

from jobs.context import JobContext
from jobs.registry import job


@job(timeout=5, max_tries=1)
async def ping(ctx: JobContext) -> str:
    """Round-trips to the cache; returns "pong"."""
    await ctx["cache"].ping()
    return "pong"
