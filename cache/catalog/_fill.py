"""How ``get_or_compute`` fills and refreshes one catalog entry without a stampede.

Miss: callers in one process share one flight (``LocalFlights``); each process's leader tries
the fleet lock (``FillLock``). The holder re-reads the entry (another holder may have just
finished), runs the loader while renewing its lease, stores the value with the loader's time
and releases. The others poll the entry and the lock with backoff: a value ends the wait; a
lock that is gone without a value (holder died or its loader failed) lets one waiter take over;
``wait_timeout`` bounds the wait (``FillTimeoutError``).

Early refresh (XFetch): a reader for whom ``xfetch_due`` fires tries the same lock; only the
one that gets it reloads, everyone else keeps returning the still-valid value. If that reload
fails, the reader is served the cached value and ``refresh_errors`` counts it.

Loader errors travel as ``LoaderFailed`` inside this module so that the caller can tell them
from store errors; ``CatalogCache`` re-raises the loader's own exception.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from cache.backoff import Backoff
from cache.catalog._entry import StoredEntry, decode, pack, unpack, xfetch_due
from cache.catalog._singleflight import FillLock, FillTimeoutError, LocalFlights, poll_backoff
from cache.catalog._stats import CatalogCounters
from cache.clock import WallMs, wall_ms
from cache.config import CatalogSettings
from cache.errors import CacheError, SerializationError, ValueTooLargeError, translate_errors
from cache.keys import KeyBuilder
from cache.scripts import ScriptRunner
from cache.service import CacheService

log = logging.getLogger(__name__)
Loader = Callable[[], Awaitable[Any]]
Found = tuple[Any, StoredEntry]
"""A decoded value and the entry it came from; ``None`` stands for a miss."""


class LoaderFailed(Exception):
    """Carries the loader's own exception through the single-flight machinery."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Filler:
    """Fills, refreshes, stores and decodes catalog entries."""

    def __init__(
        self,
        service: CacheService,
        scripts: ScriptRunner,
        keys: KeyBuilder,
        settings: CatalogSettings,
        counters: CatalogCounters,
        rng: random.Random | None = None,
        clock_ms: WallMs = wall_ms,
    ) -> None:
        self.service = service
        self.scripts = scripts
        self.keys = keys
        self.settings = settings
        self.counters = counters
        self.rng = rng or random.Random()
        self.clock_ms = clock_ms
        self.flights = LocalFlights()

    # -- stored form -----------------------------------------------------------------
    def decode(self, raw: bytes | None, model: type[Any] | None, key: str) -> Found | None:
        """The value in ``raw``, or None when missing or unreadable (counted, logged)."""
        if raw is None:
            return None
        try:
            entry = unpack(raw)
            return decode(entry, model), entry
        except SerializationError as exc:
            self.counters.add("decode_errors")
            log.warning("unreadable catalog entry %s treated as a miss: %s", key, exc)
            return None

    async def store(self, key: str, value: Any, ttl_ms: int, delta_ms: int) -> None:
        """Write ``value`` (compressed above the threshold) with its expiry and loader time."""
        payload = self.service.encode_json(key, value)
        stored = pack(payload, self.clock_ms() + ttl_ms, delta_ms)
        with translate_errors(key, operation="SET"):
            await self.service.client.set(key, stored, px=ttl_ms)

    def due(self, entry: StoredEntry) -> bool:
        """Whether this reader should refresh ``entry`` early (XFetch)."""
        beta = self.settings.xfetch_beta
        return xfetch_due(self.clock_ms(), entry.expiry_ms, entry.delta_ms, beta, self.rng)

    # -- loading ---------------------------------------------------------------------
    async def call_loader(self, loader: Loader, model: type[Any] | None) -> tuple[Any, int]:
        """Run the loader once; returns its value (as ``model``) and its time in ms."""
        self.counters.add("loader_calls")
        start = time.perf_counter()
        try:
            value = await loader()
        except Exception as exc:
            self.counters.add("loader_errors")
            raise LoaderFailed(exc) from exc
        delta_ms = round((time.perf_counter() - start) * 1000)
        if model is not None and not isinstance(value, model):
            try:
                value = model.model_validate(value)
            except ValidationError as exc:
                self.counters.add("loader_errors")
                raise LoaderFailed(
                    SerializationError(f"loader returned a value that is not {model}: {exc}")
                ) from exc
        return value, delta_ms

    async def _load(
        self, key: str, lock: FillLock, loader: Loader, model: type[Any] | None, ttl_ms: int
    ) -> Any:
        async with lock.renewing():
            value, delta_ms = await self.call_loader(loader, model)
        try:
            await self.store(key, value, ttl_ms, delta_ms)
        except SerializationError as exc:  # the loader's value is not JSON: a caller bug
            raise LoaderFailed(exc) from exc
        except ValueTooLargeError as exc:
            log.error("catalog value not cached: %s", exc)
        except CacheError as exc:  # the value is good; only caching it failed
            self.counters.add("store_errors")
            log.warning("catalog value computed but not stored: %s", exc)
        return value

    # -- miss ----------------------------------------------------------------------------
    async def fill(
        self, key: str, loader: Loader, model: type[Any] | None, ttl_ms: int, max_wait: float
    ) -> Any:
        """The value of ``key``, computed by exactly one caller in the fleet."""
        deadline = time.monotonic() + max_wait
        return await self.flights.run(
            key,
            lambda: self._fill_fleet(key, loader, model, ttl_ms, deadline),
            max_wait,
            on_join=lambda: self.counters.add("coalesced"),
        )

    async def _fill_fleet(
        self, key: str, loader: Loader, model: type[Any] | None, ttl_ms: int, deadline: float
    ) -> Any:
        lock_key = self.keys.catalog_fill_lock(key)
        backoff = poll_backoff(self.settings.poll_initial, self.settings.poll_max, self.rng)
        waited = False
        while True:
            lock = FillLock(self.service, self.scripts, lock_key, self.settings.fill_lock_ttl)
            if await lock.acquire():
                try:
                    # Another holder may have stored the value between our read and our lock.
                    found = self.decode(await self.service.get_bytes(key), model, key)
                    if found is not None:
                        return found[0]
                    if waited:
                        self.counters.add("takeovers")
                    return await self._load(key, lock, loader, model, ttl_ms)
                finally:
                    await lock.release()
            if not waited:
                self.counters.add("waits")
                waited = True
            found = await self._wait(key, lock_key, model, deadline, backoff)
            if found is not None:
                return found[0]

    async def _wait(
        self,
        key: str,
        lock_key: str,
        model: type[Any] | None,
        deadline: float,
        backoff: Backoff,
    ) -> Found | None:
        """Poll until the value appears (returned) or the lock is free (None: take over)."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.counters.add("wait_timeouts")
                raise FillTimeoutError("another caller is still filling this entry", key=key)
            await asyncio.sleep(min(backoff.next(), remaining))
            raw, holder = await self.service.mget_bytes([key, lock_key])
            found = self.decode(raw, model, key)
            if found is not None:
                return found
            if holder is None:
                return None

    # -- early refresh -----------------------------------------------------------------
    async def refresh(
        self, key: str, current: Any, loader: Loader, model: type[Any] | None, ttl_ms: int
    ) -> Any:
        """Reload ``key`` before it expires if no one else is; else return ``current``."""
        if self.flights.busy(key):
            return current
        lock_key = self.keys.catalog_fill_lock(key)
        lock = FillLock(self.service, self.scripts, lock_key, self.settings.fill_lock_ttl)
        try:
            if not await lock.acquire():
                return current
        except CacheError as exc:  # store trouble: the cached value is still good
            log.warning("early refresh of %s skipped: %s", key, exc)
            return current
        self.counters.add("refreshes")
        try:
            return await self.flights.run(
                key,
                lambda: self._load(key, lock, loader, model, ttl_ms),
                self.settings.wait_timeout,
            )
        except (LoaderFailed, FillTimeoutError) as exc:
            self.counters.add("refresh_errors")
            log.warning("early refresh of %s failed, serving the cached value: %s", key, exc)
            return current
        finally:
            await lock.release()
