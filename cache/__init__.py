"""The SEEN cache layer: typed, Dragonfly-safe access to the store.

Nothing here knows about ARQ or the worker; ``jobs`` and ``worker`` build on it.
"""

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
