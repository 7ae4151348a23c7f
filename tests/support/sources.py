"""Warmup sources that worker processes run by dotted path (``tests.support.sources:slow_source``):
slow, busy or timed runs for the stop, lease and hand-back tests."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
from typing import Any

from cache.manager import CacheManager

SLOW_EVENTS = "seen:test:slow:events"


async def slow_source(manager: CacheManager) -> int:
    """A warmup source that takes ``SEEN_TEST_SLOW_SECONDS`` and records start/done with pid."""
    seconds = float(os.environ.get("SEEN_TEST_SLOW_SECONDS", "1.5"))
    client: Any = manager.client
    await client.rpush(SLOW_EVENTS, f"start:{os.getpid()}")
    await asyncio.sleep(seconds)
    await client.rpush(SLOW_EVENTS, f"done:{os.getpid()}")
    return 1


async def busy_source(manager: CacheManager) -> int:
    """A warmup source that talks to the store non-stop for ``SEEN_TEST_BUSY_SECONDS``.

    Records ``busy:<pid>`` in ``SLOW_EVENTS`` when it starts (in the process's namespace-free
    test key, so any namespace sees it).
    """
    seconds = float(os.environ.get("SEEN_TEST_BUSY_SECONDS", "30"))
    client: Any = manager.client
    await client.rpush(SLOW_EVENTS, f"busy:{os.getpid()}")
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        await client.set("seen:test:busy", "x")
        await client.get("seen:test:busy")
    return 1


async def interval_source(manager: CacheManager) -> int:
    """A warmup source that records when it runs in the file ``SEEN_TEST_INTERVALS`` (local,
    so it works while the store is paused): ``<run> start <t>`` and ``<run> end|cancelled <t>``
    lines, wall-clock seconds. Runs ``SEEN_TEST_SLOW_SECONDS`` without touching the store."""
    path = Path(os.environ["SEEN_TEST_INTERVALS"])
    seconds = float(os.environ.get("SEEN_TEST_SLOW_SECONDS", "8"))
    run = f"{os.getpid()}-{secrets.token_hex(3)}"

    def note(what: str) -> None:
        with path.open("a", encoding="utf-8") as out:
            out.write(f"{run} {what} {time.time():.4f}\n")

    note("start")
    try:
        await asyncio.sleep(seconds)
    except BaseException:
        note("cancelled")
        raise
    note("end")
    return 1
