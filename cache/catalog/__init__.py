"""The catalog cache: the public API of ``manager.catalog``.

``CatalogCache`` holds the six catalog kinds (``CatalogKind``: dashboard, discover, search
results, watch later, continue watching, recommendations) with ``get_*``/``set_*`` pairs,
``get``/``set`` by kind, ``get_or_compute`` (single flight across the fleet, early refresh;
``FillTimeoutError`` when waiting for another caller's fill runs out) and invalidation by
generation (``invalidate_user_catalog``, ``invalidate_shared_catalog``).

Private modules behind it (import them only to test their internals): ``_entry`` (kinds,
search normalisation, stored form; pure), ``_views`` (the named pairs), ``_fill`` (one entry's
fill and refresh), ``_singleflight`` (flights, the fill lock, poll backoff numbers), ``_stats``
(counters), ``_cache`` (``CatalogCache``). A new kind is a ``CatalogKind`` member plus its
named pair in ``_views``. See docs/catalog.md.
"""

from cache.catalog._cache import CatalogCache
from cache.catalog._entry import CatalogKind, Scope, canonical_search, normalise_query
from cache.catalog._fill import Loader
from cache.catalog._singleflight import FillTimeoutError

__all__ = [
    "CatalogCache",
    "CatalogKind",
    "FillTimeoutError",
    "Loader",
    "Scope",
    "canonical_search",
    "normalise_query",
]
