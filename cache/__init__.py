"""The SEEN cache layer: typed, Dragonfly-safe access to the store.

Nothing here knows about ARQ or the worker; ``jobs`` and ``worker`` build on it. This module
re-exports what users need, including the argument and result types of the public calls.
Subpackages with their own API: ``cache.catalog``, ``cache.download``, ``cache.coordination``.

The names are loaded on first use (PEP 562 ``__getattr__``), not when the package is imported:
importing a leaf module such as ``cache.config`` (``worker.settings`` does) must not load the
store client and every cache. ``from cache import CacheManager`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cache.catalog import CatalogCache, CatalogKind, FillTimeoutError, Loader, canonical_search
    from cache.config import (
        CacheConfig,
        CacheSettings,
        CatalogSettings,
        DownloadSettings,
        LockSettings,
        TTLSettings,
    )
    from cache.coordination import (
        Holding,
        Lease,
        Lock,
        LockError,
        LockLost,
        LockService,
        LockTimeout,
        RateLimiter,
        RateLimitResult,
        Window,
    )
    from cache.download import (
        ApplyOutcome,
        ApplyResult,
        DownloadCache,
        DownloadProgress,
        DownloadStatus,
        DrainIdFactory,
        DrainReport,
        EventFollower,
        ProgressEvent,
        ProgressUpdate,
        PublishOutcome,
        PutResult,
    )
    from cache.errors import (
        CacheConnectionError,
        CacheError,
        CacheOutOfMemoryError,
        CacheResponseError,
        CacheTimeoutError,
        CorruptKeyError,
        InvalidArgumentError,
        InvalidKeyError,
        SerializationError,
        ValueTooLargeError,
    )
    from cache.keys import KeyBuilder
    from cache.manager import CacheManager, HealthReport, Invalidator, StatsSource
    from cache.service import TTL, TTL_MISSING, TTL_PERSISTENT, CacheService, Scalar
    from cache.session_cache import ExpiredSessionError, SessionCache, SessionData, UserProfile
    from cache.stats import CacheStats

_API = {
    "ApplyOutcome": "cache.download",
    "ApplyResult": "cache.download",
    "CacheConfig": "cache.config",
    "CacheConnectionError": "cache.errors",
    "CacheError": "cache.errors",
    "CacheManager": "cache.manager",
    "CacheOutOfMemoryError": "cache.errors",
    "CacheResponseError": "cache.errors",
    "CacheService": "cache.service",
    "CacheSettings": "cache.config",
    "CacheStats": "cache.stats",
    "CacheTimeoutError": "cache.errors",
    "CatalogCache": "cache.catalog",
    "CorruptKeyError": "cache.errors",
    "CatalogKind": "cache.catalog",
    "CatalogSettings": "cache.config",
    "DownloadCache": "cache.download",
    "DownloadProgress": "cache.download",
    "DownloadSettings": "cache.config",
    "DownloadStatus": "cache.download",
    "DrainIdFactory": "cache.download",
    "DrainReport": "cache.download",
    "EventFollower": "cache.download",
    "ExpiredSessionError": "cache.session_cache",
    "FillTimeoutError": "cache.catalog",
    "HealthReport": "cache.manager",
    "Holding": "cache.coordination",
    "InvalidArgumentError": "cache.errors",
    "InvalidKeyError": "cache.errors",
    "Invalidator": "cache.manager",
    "KeyBuilder": "cache.keys",
    "Lease": "cache.coordination",
    "Loader": "cache.catalog",
    "Lock": "cache.coordination",
    "LockError": "cache.coordination",
    "LockLost": "cache.coordination",
    "LockService": "cache.coordination",
    "LockSettings": "cache.config",
    "LockTimeout": "cache.coordination",
    "ProgressEvent": "cache.download",
    "ProgressUpdate": "cache.download",
    "PublishOutcome": "cache.download",
    "PutResult": "cache.download",
    "RateLimitResult": "cache.coordination",
    "RateLimiter": "cache.coordination",
    "Scalar": "cache.service",
    "SerializationError": "cache.errors",
    "SessionCache": "cache.session_cache",
    "SessionData": "cache.session_cache",
    "StatsSource": "cache.manager",
    "TTL": "cache.service",
    "TTLSettings": "cache.config",
    "TTL_MISSING": "cache.service",
    "TTL_PERSISTENT": "cache.service",
    "UserProfile": "cache.session_cache",
    "ValueTooLargeError": "cache.errors",
    "Window": "cache.coordination",
    "canonical_search": "cache.catalog",
}
"""Public name -> the module that defines it."""

__all__ = [
    "TTL",
    "TTL_MISSING",
    "TTL_PERSISTENT",
    "ApplyOutcome",
    "ApplyResult",
    "CacheConfig",
    "CacheConnectionError",
    "CacheError",
    "CacheManager",
    "CacheOutOfMemoryError",
    "CacheResponseError",
    "CacheService",
    "CacheSettings",
    "CacheStats",
    "CacheTimeoutError",
    "CatalogCache",
    "CatalogKind",
    "CatalogSettings",
    "CorruptKeyError",
    "DownloadCache",
    "DownloadProgress",
    "DownloadSettings",
    "DownloadStatus",
    "DrainIdFactory",
    "DrainReport",
    "EventFollower",
    "ExpiredSessionError",
    "FillTimeoutError",
    "HealthReport",
    "Holding",
    "InvalidArgumentError",
    "InvalidKeyError",
    "Invalidator",
    "KeyBuilder",
    "Lease",
    "Loader",
    "Lock",
    "LockError",
    "LockLost",
    "LockService",
    "LockSettings",
    "LockTimeout",
    "ProgressEvent",
    "ProgressUpdate",
    "PublishOutcome",
    "PutResult",
    "RateLimitResult",
    "RateLimiter",
    "Scalar",
    "SerializationError",
    "SessionCache",
    "SessionData",
    "StatsSource",
    "TTLSettings",
    "UserProfile",
    "ValueTooLargeError",
    "Window",
    "canonical_search",
]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'cache' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
