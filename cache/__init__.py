"""The SEEN cache layer: typed, Dragonfly-safe access to the store.

Nothing here knows about ARQ or the worker; ``jobs`` and ``worker`` build on it.
"""

from cache.config import CacheConfig, CacheSettings, TTLSettings
from cache.errors import (
    CacheConnectionError,
    CacheError,
    CacheOutOfMemoryError,
    CacheResponseError,
    CacheTimeoutError,
    InvalidKeyError,
    SerializationError,
    ValueTooLargeError,
)
from cache.keys import KeyBuilder
from cache.manager import CacheManager
from cache.service import CacheService

__all__ = [
    "CacheConfig",
    "CacheConnectionError",
    "CacheError",
    "CacheManager",
    "CacheOutOfMemoryError",
    "CacheResponseError",
    "CacheService",
    "CacheSettings",
    "CacheTimeoutError",
    "InvalidKeyError",
    "KeyBuilder",
    "SerializationError",
    "TTLSettings",
    "ValueTooLargeError",
]
