"""Plain per-process counters of cache reads, for whoever reports them (the worker's metrics).

The cache layer never imports a metrics library: it counts in dicts, and a reader (the
worker's Prometheus collector) copies them at scrape time, so each read is counted once.
Labels come from fixed tuples: ``CACHE_KINDS`` (what was read, never an id) and
``READ_RESULTS``. A kind outside the tuple is a programming error, refused at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cache.errors import CacheError

CACHE_KINDS = (
    "dashboard",
    "discover",
    "search",
    "watch_later",
    "continue_watching",
    "recommendations",
    "session",
    "refresh_token",
    "profile",
    "download_list",
)
"""Every kind of cached value a ``CacheManager`` reads: the six catalog kinds (the values of
``cache.catalog.CatalogKind``, which imports this module), sessions (by id and by refresh
token), user profiles and users' download lists."""

READ_RESULTS = ("hit", "miss", "stale", "error")
"""``hit``: a usable value; ``miss``: nothing (or nothing usable); ``stale``: a value past its
freshness was found (a catalog entry due for early refresh, a session past ``expires_at``);
``error``: the store failed or the stored value could not be read."""


class ReadCounts:
    """Reads by (kind, result) in this process; every combination exists from the start."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {
            (kind, result): 0 for kind in CACHE_KINDS for result in READ_RESULTS
        }

    def add(self, kind: str, result: str) -> None:
        if (kind, result) not in self.counts:
            raise ValueError(f"unknown cache read {kind!r}/{result!r}")
        self.counts[kind, result] += 1

    @contextmanager
    def errors(self, kind: str) -> Iterator[None]:
        """Count a ``CacheError`` raised inside the block as an ``error`` read of ``kind``."""
        try:
            yield
        except CacheError:
            self.add(kind, "error")
            raise

    def snapshot(self) -> dict[tuple[str, str], int]:
        return dict(self.counts)
