"""Parses INFO into the figures operators look at.

Dragonfly and Redis/Valkey name most fields alike but not all, and some sections appear only
with ``INFO ALL``: every field is optional and parsed defensively.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel


class CacheStats(BaseModel):
    """A snapshot of the store's health figures."""

    server: str = "unknown"
    version: str = "unknown"
    uptime_seconds: int = 0
    used_memory: int = 0
    max_memory: int = 0
    memory_ratio: float | None = None
    keyspace_hits: int = 0
    keyspace_misses: int = 0
    hit_rate: float | None = None
    ops_per_sec: int = 0
    connected_clients: int = 0
    evicted_keys: int = 0
    expired_keys: int = 0
    keys: int = 0
    extra: dict[str, int] = {}


def _int(info: dict[str, Any], *names: str) -> int:
    for name in names:
        value = info.get(name)
        if value is None:
            continue
        try:
            return int(float(value))
        except (TypeError, ValueError):
            continue
    return 0


def _count_keys(info: dict[str, Any], keys_in_db: int | None) -> int:
    if keys_in_db is not None:
        return keys_in_db
    total = 0
    for name, value in info.items():
        if name.startswith("db") and isinstance(value, dict):
            total += int(value.get("keys", 0))
    return total


def parse_info(info: dict[str, Any], keys_in_db: int | None = None) -> CacheStats:
    """Build ``CacheStats`` from redis-py's parsed INFO dict."""
    hits = _int(info, "keyspace_hits")
    misses = _int(info, "keyspace_misses")
    used = _int(info, "used_memory")
    maximum = _int(info, "maxmemory")
    server = "dragonfly" if "dragonfly_version" in info else str(info.get("server_name", "redis"))
    version = str(
        info.get("dragonfly_version")
        or info.get("valkey_version")
        or info.get("redis_version")
        or "unknown"
    )
    return CacheStats(
        server=server,
        version=version,
        uptime_seconds=_int(info, "uptime_in_seconds"),
        used_memory=used,
        max_memory=maximum,
        memory_ratio=(used / maximum) if maximum else None,
        keyspace_hits=hits,
        keyspace_misses=misses,
        hit_rate=(hits / (hits + misses)) if hits + misses else None,
        ops_per_sec=_int(info, "instantaneous_ops_per_sec"),
        connected_clients=_int(info, "connected_clients"),
        evicted_keys=_int(info, "evicted_keys"),
        expired_keys=_int(info, "expired_keys"),
        keys=_count_keys(info, keys_in_db),
    )


NOT_SUMMED = frozenset({"uptime_in_seconds", "uptime_in_days", "hz", "configured_hz"})
"""Figures of one server that make no sense added up across a cluster's primaries."""


def merge_info(replies: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """INFO of every primary of a cluster as one store: counters and sizes summed (``dbN``
    key counts too), the rest (names, versions, uptime) from the first node that has them."""
    merged: dict[str, Any] = {}
    for reply in replies:
        for name, value in reply.items():
            have = merged.get(name)
            if name in NOT_SUMMED or name not in merged:
                merged.setdefault(name, dict(value) if isinstance(value, dict) else value)
            elif isinstance(value, int | float) and isinstance(have, int | float):
                merged[name] = have + value
            elif isinstance(value, dict) and isinstance(have, dict):
                for field, number in value.items():
                    if isinstance(number, int | float) and isinstance(have.get(field), int | float):
                        have[field] += number
    return merged
