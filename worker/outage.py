"""Store outages: which errors mean "the store is away", backoff, and logging once per outage.

A worker that loses its store must neither crash (python-arq/arq#435, #498) nor spin: it logs
the outage once, waits with capped exponential backoff plus jitter, tries again, and logs once
more when the store is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from redis import exceptions as redis_exc

from cache.backoff import Backoff
from cache.errors import (
    CacheConnectionError,
    CacheOutOfMemoryError,
    is_out_of_memory,
    store_error_kind,
)

log = logging.getLogger("seen.worker.outage")

_TRANSIENT_REPLIES = ("LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN")


def is_store_outage(exc: BaseException, _depth: int = 0) -> bool:
    """True for errors that mean the store is unreachable, restarting, failing over or full.

    redis-py reports a connection lost during WATCH as a ``WatchError`` ("A ConnectionError
    occurred on while watching ..."): that is an outage too, not a lost race.
    """
    if isinstance(exc, redis_exc.WatchError) and "ConnectionError" in str(exc):
        return True
    cause = exc.__cause__ or exc.__context__
    if cause is not None and _depth < 5 and is_store_outage(cause, _depth + 1):
        return True
    if isinstance(
        exc,
        redis_exc.ConnectionError
        | redis_exc.TimeoutError
        | CacheConnectionError
        | ConnectionError
        | TimeoutError
        | OSError,
    ):
        return True
    if is_out_of_memory(exc) or isinstance(exc, CacheOutOfMemoryError):
        return True  # a full store: writes fail until memory frees, like an outage
    if isinstance(exc, redis_exc.ResponseError):
        return str(exc).lstrip("-").upper().startswith(_TRANSIENT_REPLIES)
    return False


class OutageLog:
    """Tracks one store's outage: one warning when it starts, one line when it ends."""

    def __init__(self, what: str, backoff: Backoff) -> None:
        self.what = what
        self.backoff = backoff
        self.since: float | None = None
        self.failures = 0
        self.outages = 0
        self.errors: Counter[str] = Counter()
        """Every failure noted, by ``cache.errors.store_error_kind`` (for the metrics)."""

    @property
    def down(self) -> bool:
        return self.since is not None

    def note(self, exc: BaseException) -> None:
        """Record a failure; logs a warning only for the first one of an outage."""
        self.failures += 1
        self.errors[store_error_kind(exc)] += 1
        if self.since is None:
            self.since = time.monotonic()
            self.outages += 1
            log.warning(
                "%s unreachable (%s: %s); retrying with backoff up to %.1fs",
                self.what,
                type(exc).__name__,
                exc,
                self.backoff.cap,
            )
        else:
            log.debug("%s still unreachable: %s", self.what, exc)

    def failed(self, exc: BaseException) -> float:
        """Record a failure and return how long to wait before the next attempt."""
        self.note(exc)
        return self.backoff.next()

    def recovered(self) -> None:
        if self.since is not None:
            log.warning(
                "%s reachable again after %.1fs (%d failed attempts)",
                self.what,
                time.monotonic() - self.since,
                self.failures,
            )
            self.since = None
            self.failures = 0
            self.backoff.reset()


class StartupTimeout(RuntimeError):
    """A store did not answer within ``worker.startup_timeout``."""


async def wait_until_reachable(
    ping: Callable[[], Awaitable[Any]], outage: OutageLog, within: float
) -> None:
    """Call ``ping`` until it succeeds, backing off; ``StartupTimeout`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            await ping()
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            delay = outage.failed(exc)
            left = deadline - time.monotonic()
            if left <= 0:
                raise StartupTimeout(
                    f"{outage.what} did not answer within {within:.0f}s: {exc}"
                ) from exc
            await asyncio.sleep(min(delay, left))
        else:
            outage.recovered()
            return
