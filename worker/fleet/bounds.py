"""Bounds every fleet read keeps: a deadline, bounded SCAN walks, item caps.

A page or a scrape must never hang on a slow store nor load a huge keyspace into memory: each
read runs under ``deadline`` (``asyncio.timeout``, raising ``FleetTimeout``), and each key walk
is a SCAN (never KEYS) with a COUNT hint that stops after ``max_keys`` keys were looked at or
``max_items`` matched, saying whether it saw everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from cache.scanpage import scan_page


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


@asynccontextmanager
async def concurrently() -> AsyncIterator[asyncio.TaskGroup]:
    """An ``asyncio.TaskGroup`` whose first failure is raised as itself (a ``CacheError``, a
    ``FleetTimeout``), not wrapped in an ``ExceptionGroup``: callers catch the store's errors
    as from any other read. The other tasks are cancelled, as by the group."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


@dataclass(frozen=True)
class ScanResult:
    keys: list[str]
    complete: bool
    """The walk saw the whole keyspace (and every match fitted in ``max_items``)."""
    matched: int = 0
    """Keys matched (``count_keys``); at least this many when not ``complete``."""


class ScanWalk:
    """One bounded SCAN walk: batches of matching keys until the walk is over (``complete``)
    or about ``max_keys`` keys were looked at (SCAN ``COUNT`` is a hint, so the bound holds per
    round). Every primary of a cluster is walked (``cache.scanpage``)."""

    def __init__(self, client: Redis, pattern: str, count: int, max_keys: int) -> None:
        self.client = client
        self.pattern = pattern
        self.count = count
        self.max_keys = max_keys
        self.complete = False

    async def batches(self) -> AsyncGenerator[list[str], None]:
        cursor: str | None = None
        looked = 0
        while True:
            page = await scan_page(
                self.client, self.pattern, cursor, count=self.count, max_keys=self.count
            )
            looked += page.looked
            cursor = page.cursor
            self.complete = cursor is None
            yield page.keys
            if cursor is None or looked >= self.max_keys:
                return


async def scan_keys(
    client: Redis, pattern: str, *, count: int, max_keys: int, max_items: int
) -> ScanResult:
    """Distinct keys matching ``pattern``: at most ``max_items`` of them, looking at no more
    than about ``max_keys`` keys."""
    found: dict[str, None] = {}
    walk = ScanWalk(client, pattern, count, max_keys)
    async with aclosing(walk.batches()) as batches:
        async for batch in batches:
            found.update(dict.fromkeys(batch))
            if len(found) > max_items:
                return ScanResult(list(found)[:max_items], False)
    return ScanResult(list(found), walk.complete)


async def count_keys(client: Redis, pattern: str, *, count: int, max_keys: int) -> ScanResult:
    """How many keys match ``pattern`` (``result.matched``; ``keys`` stays empty), looking
    at no more than about ``max_keys`` keys. SCAN may return a key twice while the server
    rehashes, so the count is approximate in that rare case."""
    walk = ScanWalk(client, pattern, count, max_keys)
    matched = 0
    async for batch in walk.batches():
        matched += len(batch)
    return ScanResult([], walk.complete, matched)
