"""CatalogCache: dashboard, discover, search, watch later, continue watching, recommendations.

Every entry's key holds a generation: per user (``{u:<user>}``) for the per-user kinds, global
for discover and search. ``invalidate_user_catalog`` bumps the user's generation, one write,
so all of that user's entries become unreachable at once and expire by TTL (no SCAN, no KEYS);
``invalidate_shared_catalog`` does the same for every discover section and search.

A read is one round trip: the process remembers the last generation it saw for each user (a
hint, not a cache) and sends ``MGET generation entry@hint``. If the generation moved, the
hint is corrected and the entry at the real generation is read: exact, never stale, two trips
only right after an invalidation. ``get_or_compute`` adds single flight and early refresh
(``cache.catalog._fill``). See docs/catalog.md.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from cache.catalog._entry import CatalogKind, Scope, canonical_search
from cache.catalog._fill import Filler, LoaderFailed
from cache.catalog._singleflight import FillTimeoutError
from cache.catalog._stats import CatalogCounters
from cache.catalog._views import CatalogViews
from cache.clock import WallMs, wall_ms, wall_us
from cache.config import CacheConfig
from cache.counts import ReadCounts
from cache.errors import CacheConnectionError, SerializationError
from cache.keys import KeyBuilder
from cache.numbers import seconds_arg
from cache.scripts import ScriptRunner
from cache.service import TTL, CacheService, ttl_ms

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
Kind = CatalogKind | str
_OUTAGE_LOG_INTERVAL = 10.0
_TAKES = {k: "user_id" if k.scope is Scope.USER else "section_id" for k in CatalogKind}
# which of (user_id, section_id, query) identify an entry of each kind
_IDENTITY = {
    k: (k.scope is Scope.USER, k is CatalogKind.DISCOVER, k is CatalogKind.SEARCH)
    for k in CatalogKind
}

__all__ = ["CatalogCache", "CatalogKind", "FillTimeoutError"]


@dataclass(frozen=True, slots=True)
class _Ref:
    """A catalog entry's reference: its generation key and its key at a generation."""

    kind: CatalogKind
    gen_key: str
    entry_at: Callable[[int], str]
    ttl: int


class CatalogCache(CatalogViews):
    """The catalog views, O(1) invalidation, and stampede-safe ``get_or_compute``."""

    def __init__(
        self,
        service: CacheService,
        scripts: ScriptRunner,
        keys: KeyBuilder,
        config: CacheConfig,
        *,
        rng: random.Random | None = None,
        clock_ms: WallMs = wall_ms,
        reads: ReadCounts | None = None,
    ) -> None:
        """``rng`` and ``clock_ms`` are injectable so tests can fix early-refresh draws;
        ``reads`` counts reads by kind and result (the manager's, shared by its caches)."""
        self.service = service
        self.keys = keys
        self.config = config
        self.settings = config.catalog
        longest = max(config.ttl.catalog, config.ttl.search_results, config.ttl.recommendations)
        if self.settings.generation_ttl <= longest:
            raise ValueError(
                f"catalog.generation_ttl={self.settings.generation_ttl} must exceed the longest "
                f"catalog TTL ({longest}s), or an expired generation could revive old entries"
            )
        self._clock_ms = clock_ms
        self.reads = reads or ReadCounts()
        self._counters = CatalogCounters(
            service.client, keys.catalog_stats(), self.settings.stats_flush_interval
        )
        self._filler = Filler(service, scripts, keys, self.settings, self._counters, rng, clock_ms)
        self._scripts = scripts
        self._hints: dict[str, int] = {}
        self._quiet_until = 0.0

    # -- identity ------------------------------------------------------------------------
    def _ref(
        self,
        kind: Kind,
        user_id: str | None = None,
        section_id: str | None = None,
        query: str | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> _Ref:
        kind = kind if isinstance(kind, CatalogKind) else CatalogKind(kind)
        given = (user_id is not None, section_id is not None, query is not None)
        if given != _IDENTITY[kind] or (filters is not None and kind is not CatalogKind.SEARCH):
            takes = "query (+ filters)" if kind is CatalogKind.SEARCH else _TAKES[kind]
            raise ValueError(f"catalog kind {kind.value!r} takes {takes}")
        ttl = int(getattr(self.config.ttl, kind.ttl_setting))
        if kind.scope is Scope.USER:
            assert user_id is not None
            gen_key = self.keys.catalog_user_generation(user_id)
            return _Ref(kind, gen_key, partial(self.keys.catalog_user_entry, kind, user_id), ttl)
        gen_key = self.keys.catalog_global_generation()
        if kind is CatalogKind.DISCOVER:
            assert section_id is not None
            entry_at = partial(self.keys.catalog_shared_entry, kind, section_id)
        else:
            assert query is not None
            entry_at = partial(self.keys.catalog_search_entry, canonical_search(query, filters))
        entry_at(0)  # validates the id now rather than at first use
        return _Ref(kind, gen_key, entry_at, ttl)

    def _ttl_ms(self, ref: _Ref, ttl: TTL | None) -> int:
        ms = ttl_ms(ref.ttl if ttl is None else ttl)
        if ms > self.settings.generation_ttl * 1000:
            raise ValueError(
                f"ttl {ms / 1000:g}s exceeds catalog.generation_ttl={self.settings.generation_ttl}"
            )
        return ms

    # -- generations -----------------------------------------------------------------
    def _remember(self, gen_key: str, generation: int) -> None:
        capacity = self.settings.hint_capacity
        if not capacity:
            return
        if gen_key not in self._hints and len(self._hints) >= capacity:
            del self._hints[next(iter(self._hints))]  # oldest first; a hint, not a cache
        self._hints[gen_key] = generation

    @staticmethod
    def _parse_gen(raw: bytes | None, key: str) -> int:
        if raw is None:
            return 0
        try:
            return int(raw)
        except ValueError:
            raise SerializationError("catalog generation is not an integer", key=key) from None

    async def _read(self, ref: _Ref) -> tuple[str, bytes | None]:
        """The entry's current key and stored bytes: one round trip unless the hint is old."""
        hint = self._hints.get(ref.gen_key, 0)
        key = ref.entry_at(hint)
        gen_raw, raw = await self.service.mget_bytes([ref.gen_key, key])
        generation = self._parse_gen(gen_raw, ref.gen_key)
        if generation != hint:
            self._counters.add("generation_rereads")
            self._remember(ref.gen_key, generation)
            key = ref.entry_at(generation)
            raw = await self.service.get_bytes(key)
        return key, raw

    async def _read_counted(self, ref: _Ref) -> tuple[str, bytes | None]:
        """``_read``, a store failure counted as an ``error`` read of the entry's kind."""
        with self.reads.errors(ref.kind.value):
            return await self._read(ref)

    async def generation(self, user_id: str | None = None) -> int:
        """The current generation of ``user_id``'s entries, or of the shared ones."""
        gen_key = (
            self.keys.catalog_global_generation()
            if user_id is None
            else self.keys.catalog_user_generation(user_id)
        )
        generation = self._parse_gen(await self.service.get_bytes(gen_key), gen_key)
        self._remember(gen_key, generation)
        return generation

    async def _bump(self, gen_key: str) -> int:
        generation = int(
            await self._scripts.run(
                "catalog_bump",
                [gen_key],
                [wall_us(), self.settings.generation_ttl * 1000],
            )
        )
        self._remember(gen_key, generation)
        return generation

    async def invalidate_user_catalog(self, user_id: str) -> int:
        """Make every per-user entry of ``user_id`` unreachable, in one write; returns 1 (one
        generation bumped). Entries being filled meanwhile land in the old generation."""
        await self._bump(self.keys.catalog_user_generation(user_id))
        self._counters.add("invalidations")
        return 1

    async def invalidate_shared_catalog(self) -> int:
        """Bulk invalidation of every discover section and search result; returns 1."""
        await self._bump(self.keys.catalog_global_generation())
        self._counters.add("bulk_invalidations")
        return 1

    # -- generic get / set ---------------------------------------------------------------
    async def get(
        self,
        kind: Kind,
        *,
        user_id: str | None = None,
        section_id: str | None = None,
        query: str | None = None,
        filters: Mapping[str, Any] | None = None,
        model: type[BaseModel] | None = None,
    ) -> Any:
        """The cached value (as ``model`` when given), or None on a miss; an unreadable value
        counts as a miss. Store failures raise ``CacheError``."""
        ref = self._ref(kind, user_id, section_id, query, filters)
        key, raw = await self._read_counted(ref)
        found = self._filler.decode(raw, model, key)
        self._counters.add("misses" if found is None else "hits")
        self.reads.add(ref.kind.value, "miss" if found is None else "hit")
        await self._counters.maybe_flush()
        return None if found is None else found[0]

    async def set(
        self,
        kind: Kind,
        value: Any,
        *,
        user_id: str | None = None,
        section_id: str | None = None,
        query: str | None = None,
        filters: Mapping[str, Any] | None = None,
        ttl: TTL | None = None,
    ) -> None:
        """Store ``value`` (a model or plain JSON) under the current generation."""
        ref = self._ref(kind, user_id, section_id, query, filters)
        ms = self._ttl_ms(ref, ttl)
        generation = self._parse_gen(await self.service.get_bytes(ref.gen_key), ref.gen_key)
        self._remember(ref.gen_key, generation)
        await self._filler.store(ref.entry_at(generation), value, ms, 0)

    # -- get_or_compute ----------------------------------------------------------------
    @overload
    async def get_or_compute(
        self,
        kind: Kind,
        loader: Callable[[], Awaitable[M]],
        *,
        model: type[M],
        user_id: str | None = None,
        section_id: str | None = None,
        query: str | None = None,
        filters: Mapping[str, Any] | None = None,
        ttl: TTL | None = None,
        wait_timeout: float | None = None,
    ) -> M: ...
    @overload
    async def get_or_compute(
        self,
        kind: Kind,
        loader: Callable[[], Awaitable[Any]],
        *,
        model: None = None,
        user_id: str | None = None,
        section_id: str | None = None,
        query: str | None = None,
        filters: Mapping[str, Any] | None = None,
        ttl: TTL | None = None,
        wait_timeout: float | None = None,
    ) -> Any: ...
    async def get_or_compute(
        self,
        kind: Kind,
        loader: Callable[[], Awaitable[Any]],
        *,
        model: type[BaseModel] | None = None,
        user_id: str | None = None,
        section_id: str | None = None,
        query: str | None = None,
        filters: Mapping[str, Any] | None = None,
        ttl: TTL | None = None,
        wait_timeout: float | None = None,
    ) -> Any:
        """The cached value, or ``loader()``'s, computed once across the fleet.

        A loader error reaches the caller (and the callers sharing its flight); nothing is
        cached. Waiting for another caller's fill is bounded by ``wait_timeout``
        (``FillTimeoutError``). If the store is unreachable the loader is called directly.
        """
        ref = self._ref(kind, user_id, section_id, query, filters)
        ms = self._ttl_ms(ref, ttl)
        max_wait = self.settings.wait_timeout
        if wait_timeout is not None:
            max_wait = seconds_arg(wait_timeout, "wait_timeout", allow_zero=True)
        key = ref.entry_at(self._hints.get(ref.gen_key, 0))
        try:
            try:
                key, raw = await self._read_counted(ref)
                found = self._filler.decode(raw, model, key)
                if found is not None:
                    self._counters.add("hits")
                    value, entry = found
                    if self._filler.due(entry):
                        self.reads.add(ref.kind.value, "stale")
                        return await self._filler.refresh(key, value, loader, model, ms)
                    self.reads.add(ref.kind.value, "hit")
                    return value
                self._counters.add("misses")
                self.reads.add(ref.kind.value, "miss")
                return await self._filler.fill(key, loader, model, ms, max_wait)
            except CacheConnectionError as exc:
                return await self._degraded(key, loader, model, max_wait, exc)
        except LoaderFailed as failed:
            raise failed.error from None
        finally:
            await self._counters.maybe_flush()

    async def _degraded(
        self,
        key: str,
        loader: Callable[[], Awaitable[Any]],
        model: type[BaseModel] | None,
        max_wait: float,
        exc: CacheConnectionError,
    ) -> Any:
        """Store unreachable before the loader ran: serve the loader's value uncached (still
        one loader per key in this process)."""
        self._counters.add("store_errors")
        now = time.monotonic()
        if now >= self._quiet_until:  # one warning per interval, not one per request
            self._quiet_until = now + _OUTAGE_LOG_INTERVAL
            log.warning("catalog store unavailable, calling loaders directly: %s", exc)

        async def load() -> Any:
            value, _ = await self._filler.call_loader(loader, model)
            return value

        return await self._filler.flights.run(f"degraded:{key}", load, max_wait)

    # -- counters ------------------------------------------------------------------------
    async def stats(self) -> dict[str, int]:
        """This process's counters, plus ``fleet_*`` totals of every process."""
        return await self._counters.snapshot()

    def local_stats(self) -> dict[str, int]:
        """This process's counters only (no I/O)."""
        return dict(self._counters.local)
