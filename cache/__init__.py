"""The SEEN cache layer: typed, Dragonfly-safe access to the store.

Nothing here knows about ARQ or the worker; ``jobs`` and ``worker`` build on it. This module
exports what the README documents ("Use it from a service"): ``CacheManager`` (its caches are
reached through it: ``manager.session``, ``.catalog``, ``.download``, ``.locks``, ...), its
configuration, the values a service passes and gets back, and the errors it catches. The rest
lives in the modules and subpackages that define it (``cache.catalog``, ``cache.download``,
``cache.coordination``, ``cache.errors``, ...); tests/unit/test_public_faces.py keeps this list
equal to the README's and each name imported somewhere.

The names are loaded on first use (PEP 562 ``__getattr__``), not when the package is imported:
importing a leaf module such as ``cache.config`` (``worker.settings`` does) must not load the
store client and every cache. ``from cache import CacheManager`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cache.catalog import CatalogKind, FillTimeoutError
    from cache.config import CacheConfig
    from cache.coordination import LockLost, LockTimeout
    from cache.download import DownloadProgress, ProgressUpdate
    from cache.errors import CacheConnectionError, CacheError
    from cache.manager import CacheManager
    from cache.session_cache import SessionData, UserProfile

_API = {
    "CacheConfig": "cache.config",
    "CacheConnectionError": "cache.errors",
    "CacheError": "cache.errors",
    "CacheManager": "cache.manager",
    "CatalogKind": "cache.catalog",
    "DownloadProgress": "cache.download",
    "FillTimeoutError": "cache.catalog",
    "LockLost": "cache.coordination",
    "LockTimeout": "cache.coordination",
    "ProgressUpdate": "cache.download",
    "SessionData": "cache.session_cache",
    "UserProfile": "cache.session_cache",
}
"""Public name -> the module that defines it."""

__all__ = [
    "CacheConfig",
    "CacheConnectionError",
    "CacheError",
    "CacheManager",
    "CatalogKind",
    "DownloadProgress",
    "FillTimeoutError",
    "LockLost",
    "LockTimeout",
    "ProgressUpdate",
    "SessionData",
    "UserProfile",
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
