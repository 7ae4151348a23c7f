"""The one wall clock: every read of the time of day in cache/, jobs/ and worker/ goes here.

Wall time is what other processes see (the download indexes' scores, ARQ's enqueue stamps,
heartbeats, dead letters, session indexes); durations use ``time.monotonic()`` or the event
loop's clock instead and are not read here. A component whose behaviour depends on the wall
time takes a ``WallMs`` callable (default ``wall_ms``) or a ``now`` argument, so tests can fix
it: ``CatalogCache(clock_ms=...)``, ``DownloadCache.apply(now=...)``, ``queue_stats(now_ms=...)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

WallMs = Callable[[], int]
"""An injectable wall clock in whole milliseconds since the epoch."""


def wall_ms() -> int:
    """Milliseconds since the epoch (integer: no float rounding)."""
    return time.time_ns() // 1_000_000


def wall_ns() -> int:
    """Nanoseconds since the epoch (OpenTelemetry's span times)."""
    return time.time_ns()


def wall_us() -> int:
    """Microseconds since the epoch."""
    return time.time_ns() // 1000


def wall_s() -> float:
    """Seconds since the epoch, as ``time.time()``."""
    return time.time()


def utc_now() -> datetime:
    """The time of day as an aware UTC ``datetime``."""
    return datetime.now(UTC)
