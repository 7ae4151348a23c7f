"""Catalog counters: per process, and fleet-wide in one store hash.

Each ``CatalogCache`` counts in process memory (a dict increment per event, nothing on the
wire). At most every ``catalog.stats_flush_interval`` seconds, piggybacked on a normal call,
the increments since the last flush are added to the ``seen:catalog:stats`` hash with HINCRBY
in one pipeline, so ``seen-worker stats`` in another process sees the whole fleet's figures.
A failed flush keeps its increments for the next one: counters are best effort and never fail
the cache operation that carried them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import cast

from redis.asyncio import Redis

from cache.errors import CacheError, translate_errors

log = logging.getLogger(__name__)

CATALOG_COUNTERS = (
    "hits",  # a read found a usable value
    "misses",  # a read found nothing (or an unreadable value)
    "refreshes",  # early (XFetch) refreshes started
    "refresh_errors",  # early refreshes whose loader failed (the cached value was served)
    "loader_calls",  # loader runs, whatever the reason
    "loader_errors",  # loader runs that raised
    "coalesced",  # callers that shared another in-process caller's computation
    "waits",  # callers that waited for another process's fill
    "takeovers",  # waiters that computed because the holder died or failed
    "wait_timeouts",  # waiters that gave up after wait_timeout
    "decode_errors",  # stored values that could not be decoded (treated as misses)
    "generation_rereads",  # reads whose remembered generation was outdated (one more trip)
    "store_errors",  # store failures get_or_compute survived by calling the loader
    "invalidations",  # per-user generation bumps
    "bulk_invalidations",  # global (discover/search) generation bumps
)


class CatalogCounters:
    """In-process counters with a periodic fleet-wide flush."""

    def __init__(self, client: Redis, stats_key: str, flush_interval: float) -> None:
        self.client = client
        self.stats_key = stats_key
        self.flush_interval = flush_interval
        self.local: dict[str, int] = dict.fromkeys(CATALOG_COUNTERS, 0)
        self._pending: dict[str, int] = dict.fromkeys(CATALOG_COUNTERS, 0)
        self._next_flush = time.monotonic() + flush_interval
        self._flushing = False

    def add(self, name: str, amount: int = 1) -> None:
        self.local[name] += amount
        self._pending[name] += amount

    async def maybe_flush(self) -> None:
        """Flush when the interval has passed; cheap (a clock read) otherwise."""
        if self.flush_interval and time.monotonic() >= self._next_flush:
            await self.flush()

    async def flush(self) -> bool:
        """Push pending increments to the fleet hash; False when nothing was written."""
        if self._flushing:
            return False
        pending = {name: n for name, n in self._pending.items() if n}
        self._next_flush = time.monotonic() + self.flush_interval
        if not pending:
            return False
        self._flushing = True
        for name in pending:
            self._pending[name] = 0
        try:
            with translate_errors(self.stats_key, operation="HINCRBY"):
                async with self.client.pipeline(transaction=False) as pipe:
                    for name, amount in pending.items():
                        pipe.hincrby(self.stats_key, name, amount)
                    await pipe.execute()
            return True
        except CacheError as exc:
            for name, amount in pending.items():
                self._pending[name] += amount
            log.debug("catalog stats flush failed, kept for later: %s", exc)
            return False
        finally:
            self._flushing = False

    async def fleet(self) -> dict[str, int]:
        """The fleet-wide totals (everything flushed so far, by every process)."""
        with translate_errors(self.stats_key, operation="HGETALL"):
            raw = await cast(Awaitable[dict[bytes, bytes]], self.client.hgetall(self.stats_key))
        out: dict[str, int] = {}
        for name, value in raw.items():
            try:
                out[name.decode()] = int(value)
            except ValueError:
                continue
        return out

    async def snapshot(self) -> dict[str, int]:
        """This process's counters plus ``fleet_<name>`` totals (after flushing ours)."""
        figures = dict(self.local)
        if not self.flush_interval:
            return figures
        await self.flush()
        try:
            fleet = await self.fleet()
        except CacheError as exc:
            log.debug("catalog fleet stats unavailable: %s", exc)
            return figures
        for name in CATALOG_COUNTERS:
            figures[f"fleet_{name}"] = fleet.get(name, 0)
        return figures
