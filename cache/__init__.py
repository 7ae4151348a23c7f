"""The SEEN cache layer: typed, Dragonfly-safe access to the store.

Nothing here knows about ARQ or the worker; ``jobs`` and ``worker`` build on it.

The names are loaded on first use (PEP 562 ``__getattr__``), not when the package is imported:
importing a leaf module such as ``cache.config`` (``worker.settings`` does) must not load the
store client and every cache. ``from cache import CacheManager`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cache.catalog_cache import CatalogCache
    from cache.catalog_entry import CatalogKind
    from cache.config import CacheConfig, CacheSettings, TTLSettings
    from cache.download_cache import DownloadCache
    from cache.download_models import DownloadProgress, DownloadStatus, ProgressUpdate
    from cache.errors import (
        CacheConnectionError,
        CacheError,
        CacheOutOfMemoryError,
        CacheResponseError,
        CacheTimeoutError,
        InvalidArgumentError,
        InvalidKeyError,
        SerializationError,
        ValueTooLargeError,
    )
    from cache.keys import KeyBuilder
    from cache.locks import Lock, LockError, LockLost, LockService, LockTimeout
    from cache.manager import CacheManager, HealthReport
    from cache.ratelimit import RateLimiter, RateLimitResult
    from cache.service import CacheService
    from cache.session_cache import ExpiredSessionError, SessionCache, SessionData, UserProfile
    from cache.singleflight import FillTimeoutError
    from cache.stats import CacheStats

_API = {
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
    "CatalogCache": "cache.catalog_cache",
    "CatalogKind": "cache.catalog_entry",
    "DownloadCache": "cache.download_cache",
    "DownloadProgress": "cache.download_models",
    "DownloadStatus": "cache.download_models",
    "ExpiredSessionError": "cache.session_cache",
    "FillTimeoutError": "cache.singleflight",
    "HealthReport": "cache.manager",
    "InvalidArgumentError": "cache.errors",
    "InvalidKeyError": "cache.errors",
    "KeyBuilder": "cache.keys",
    "Lock": "cache.locks",
    "LockError": "cache.locks",
    "LockLost": "cache.locks",
    "LockService": "cache.locks",
    "LockTimeout": "cache.locks",
    "ProgressUpdate": "cache.download_models",
    "RateLimitResult": "cache.ratelimit",
    "RateLimiter": "cache.ratelimit",
    "SerializationError": "cache.errors",
    "SessionCache": "cache.session_cache",
    "SessionData": "cache.session_cache",
    "TTLSettings": "cache.config",
    "UserProfile": "cache.session_cache",
    "ValueTooLargeError": "cache.errors",
}
"""Public name -> the module that defines it."""

__all__ = [
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
    "DownloadCache",
    "DownloadProgress",
    "DownloadStatus",
    "ExpiredSessionError",
    "FillTimeoutError",
    "HealthReport",
    "InvalidArgumentError",
    "InvalidKeyError",
    "KeyBuilder",
    "Lock",
    "LockError",
    "LockLost",
    "LockService",
    "LockTimeout",
    "ProgressUpdate",
    "RateLimitResult",
    "RateLimiter",
    "SerializationError",
    "SessionCache",
    "SessionData",
    "TTLSettings",
    "UserProfile",
    "ValueTooLargeError",
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
