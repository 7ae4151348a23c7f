"""Cancel a command at every stage of its life, many times, and count how each one ended."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis


async def cancel_commands(
    client: Redis, trials: int, key: str = "seen:test:cancel"
) -> tuple[int, int]:
    """``trials`` SETs, each cancelled after 0-11 loop steps; returns (ended cancelled, returned
    normally although cancelled). A command already done when cancelled counts in neither."""
    cancelled = swallowed = 0
    for i in range(trials):
        task = asyncio.ensure_future(client.set(key, "v"))
        for _ in range(i % 12):  # land the cancellation at every stage of the command
            await asyncio.sleep(0)
        if task.cancel():
            try:
                await task
            except asyncio.CancelledError:
                cancelled += 1
            else:
                swallowed += 1
    return cancelled, swallowed
