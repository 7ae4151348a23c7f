"""Single-flight machinery: one computation per key, in a process and across the fleet.

- ``LocalFlights``: concurrent callers in one process share one computation (an asyncio
  future), so a process sends one lock attempt and at most one poller per key to the store.
- ``FillLock``: the fleet-wide lease (SET NX PX with a random token). Its holder renews it
  while loading, so a slow loader keeps it and a dead holder loses it after one lease; release
  and renewal are the lease primitive's (``cache.coordination.Lease``): they compare the
  token, so a holder whose lease passed on cannot free the next holder's lock.
- ``poll_backoff``: the waiters' poll delays (``cache.backoff``), growing x1.5 per step with
  +-25% jitter up to a cap (no hard polling).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from cache.backoff import Backoff, Jitter
from cache.cancellation import cancel_and_wait
from cache.coordination._lease import Lease
from cache.errors import CacheError
from cache.numbers import seconds_arg
from cache.scripts import ScriptRunner
from cache.service import CacheService

log = logging.getLogger(__name__)
T = TypeVar("T")


class FillTimeoutError(CacheError):
    """Waited ``wait_timeout`` for another caller's fill, which is alive but not done."""


class LocalFlights:
    """In-process single flight keyed by string."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[Any]] = {}

    def busy(self, key: str) -> bool:
        return key in self._running

    async def run(
        self,
        key: str,
        compute: Callable[[], Awaitable[T]],
        max_wait: float,
        on_join: Callable[[], None] | None = None,
    ) -> T:
        """``compute()`` once for all concurrent callers of ``key``; they share its result or
        exception. A joiner waits at most ``max_wait`` (``FillTimeoutError``); if the leader is
        cancelled, a joiner becomes the next leader instead of failing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds_arg(max_wait, "max_wait", allow_zero=True)
        while (flight := self._running.get(key)) is not None:
            if on_join is not None:
                on_join()
            try:
                async with asyncio.timeout_at(deadline):
                    result: T = await asyncio.shield(flight)
                    return result
            except TimeoutError:
                raise FillTimeoutError(
                    f"waited {max_wait:g}s for a fill running in this process", key=key
                ) from None
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if flight.cancelled() and task is not None and not task.cancelling():
                    continue  # the leader was cancelled, not us: take over
                raise
        flight = loop.create_future()
        self._running[key] = flight
        try:
            value = await compute()
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: no "never retrieved" warning without joiners
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            if self._running.get(key) is flight:
                del self._running[key]


def poll_backoff(initial: float, cap: float, rng: random.Random | None = None) -> Backoff:
    """Poll delays: ``initial``, then x1.5 per step up to ``cap``, each +-25% jitter."""
    return Backoff(initial, max(cap, initial), factor=1.5, jitter=Jitter.SPREAD, rng=rng)


class FillLock:
    """A fleet-wide, renewable fill lease on one key."""

    def __init__(self, service: CacheService, scripts: ScriptRunner, key: str, lease: float):
        self.service = service
        self.scripts = scripts
        self.key = key
        self.lease_ms = max(1, round(lease * 1000))
        self.token = secrets.token_hex(16)
        self.lease = Lease(scripts)

    async def acquire(self) -> bool:
        """True when this caller now holds the lease."""
        return await self.lease.acquire(self.key, self.token, self.lease_ms)

    async def release(self) -> None:
        """Free the lock if still ours; store errors are logged (the lease expires anyway)."""
        try:
            await self.lease.release(self.key, self.token)
        except CacheError as exc:
            log.warning("could not release fill lock, it will expire: %s", exc)

    async def _renew_forever(self) -> None:
        interval = self.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                kept = await self.lease.extend(self.key, self.token, self.lease_ms)
            except CacheError as exc:
                log.warning("fill lock renewal failed: %s", exc)
                continue
            if not kept:
                log.warning("fill lock %s lost its lease while loading", self.key)
                return

    @contextlib.asynccontextmanager
    async def renewing(self) -> AsyncIterator[None]:
        """Keep the lease alive for the duration of the block."""
        task = asyncio.create_task(self._renew_forever(), name=f"renew {self.key}")
        try:
            yield
        finally:
            await cancel_and_wait([task], 1.0, f"fill lock renewal of {self.key}")
