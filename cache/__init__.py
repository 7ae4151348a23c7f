"""The SEEN cache layer: typed, Dragonfly-safe access to the store.

Nothing here knows about ARQ or the worker; ``jobs`` and ``worker`` build on it. This module
re-exports what users need, including the argument and result types of the public calls.
Subpackages with their own API: ``cache.catalog``, ``cache.download``, ``cache.coordination``.
"""

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

__all__ = [
    "TTL",
    "TTL_MISSING",
    "TTL_PERSISTENT",
    "ApplyOutcome",
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
