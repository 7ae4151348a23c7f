"""Bounds every fleet read keeps: a deadline, bounded SCAN walks, item caps.

A page or a scrape must never hang on a slow store nor load a huge keyspace into memory: each
read runs under ``deadline`` (``asyncio.timeout``, raising ``FleetTimeout``), and each key walk
is a SCAN (never KEYS) with a COUNT hint that stops after ``max_keys`` keys were looked at or
``max_items`` matched, saying whether it saw everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from cache.codec import as_text
from cache.errors import translate_errors


class FleetTimeout(TimeoutError):
    """A fleet read did not finish within its deadline (the store is slow or unreachable)."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"fleet read {what!r} did not finish within {seconds:g}s")
        self.what = what
        self.seconds = seconds


@asynccontextmanager
async def deadline(what: str, seconds: float) -> AsyncIterator[None]:
    """Run the body for at most ``seconds``; ``FleetTimeout`` names ``what`` when it ran out."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        if isinstance(exc, FleetTimeout):
            raise
        raise FleetTimeout(what, seconds) from exc


@dataclass(frozen=True)
class ScanResult:
    keys: list[str]
    complete: bool
    """The walk saw the whole keyspace (and every match fitted in ``max_items``)."""
    matched: int = 0
    """Keys matched (``count_keys``); at least this many when not ``complete``."""


async def scan_keys(
    client: Redis, pattern: str, *, count: int, max_keys: int, max_items: int
) -> ScanResult:
    """Distinct keys matching ``pattern``: at most ``max_items`` of them, looking at no more
    than about ``max_keys`` keys (SCAN ``COUNT`` is a hint, so the bound is per round)."""
    found: dict[str, None] = {}
    cursor = 0
    looked = 0
    while True:
        with translate_errors(pattern, operation="SCAN"):
            cursor, batch = await client.scan(cursor, match=pattern, count=count)
        looked += count
        for raw in batch:
            found[as_text(raw)] = None
        if len(found) > max_items:
            return ScanResult(list(found)[:max_items], False)
        if cursor == 0:
            return ScanResult(list(found), True)
        if looked >= max_keys:
            return ScanResult(list(found), False)


async def count_keys(client: Redis, pattern: str, *, count: int, max_keys: int) -> ScanResult:
    """How many keys match ``pattern`` (``result.matched``; ``keys`` stays empty), looking
    at no more than about ``max_keys`` keys. SCAN may return a key twice while the server
    rehashes, so the count is approximate in that rare case."""
    matched = 0
    cursor = 0
    looked = 0
    while True:
        with translate_errors(pattern, operation="SCAN"):
            cursor, batch = await client.scan(cursor, match=pattern, count=count)
        looked += count
        matched += len(batch)
        if cursor == 0 or looked >= max_keys:
            return ScanResult([], cursor == 0, matched)
