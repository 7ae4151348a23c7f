"""The cache store's figures for the overview: memory, hit rate, evictions (from INFO).

INFO is the cache manager's (``CacheManager.info``: a cluster's primaries added up) and is
parsed defensively (``cache.stats.parse_info``: a missing or odd field is 0 or None),
and a store that refuses INFO (some managed offerings rename or disable it) gives a view with
``ok=False`` and the reason instead of failing the page. An unreachable store is not hidden:
its error propagates, as for every other read.
"""

from __future__ import annotations

from typing import Any

from cache.errors import CacheResponseError
from cache.manager import CacheManager
from cache.stats import parse_info
from worker.fleet.models import StoreView


async def read_store(manager: CacheManager) -> StoreView:
    try:
        info: dict[str, Any] = await manager.info()
    except CacheResponseError as exc:
        return StoreView(ok=False, error=str(exc))
    stats = parse_info(info if isinstance(info, dict) else {})
    return StoreView(
        ok=True,
        server=stats.server,
        version=stats.version,
        used_memory=stats.used_memory,
        max_memory=stats.max_memory,
        memory_ratio=None if stats.memory_ratio is None else round(stats.memory_ratio, 4),
        hit_rate=None if stats.hit_rate is None else round(stats.hit_rate, 4),
        keyspace_hits=stats.keyspace_hits,
        keyspace_misses=stats.keyspace_misses,
        evicted_keys=stats.evicted_keys,
        ops_per_sec=stats.ops_per_sec,
        connected_clients=stats.connected_clients,
    )
