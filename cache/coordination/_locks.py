"""Distributed locks: a random token per lease, a fencing token, renewal, and ``LockLost``.

A lock is the key ``seen:lock:{<name>}`` holding the holder's random token, with a TTL (the
lease). Acquiring also increments ``seen:lock:{<name>}:fence`` in the same script, so every
acquisition gets a fencing token larger than all before it: a resource that remembers the
highest token it has seen can refuse a holder that was paused past its lease. Release and
extend are the lease primitive's compare-and-act scripts (``_lease``): a wrong or expired token
returns False and changes nothing.

``hold()`` renews the lease in the background every ``ttl * renew_fraction``. When the lease
is lost (renewal refused, or the store unreachable until the lease must have run out) the body
is cancelled and the ``async with`` raises ``LockLost``. Locks need a store without eviction
(no Dragonfly ``cache_mode``): see docs/coordination.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from types import TracebackType

from cache.backoff import Backoff
from cache.cancellation import cancel_and_wait
from cache.config import LockSettings
from cache.coordination._lease import Lease
from cache.errors import CacheError, CorruptKeyError
from cache.keys import KeyBuilder
from cache.numbers import seconds_arg
from cache.scripts import ScriptRunner
from cache.service import TTL, CacheService, ttl_ms

log = logging.getLogger(__name__)

_SAFETY_MS = 2
RECANCEL_EVERY_S = 0.25
"""``hold()``: how often a body still running after its lease was lost is cancelled again."""
RECANCEL_FOR_MIN_S = 5.0
"""Fixed part of the local safety margin (the other part is ``drift * ttl``)."""
LOCK_COUNTERS = ("acquired", "contended", "timeouts", "errors", "released", "renewed", "lost")
"""Process-local counters (``LockService.stats``): ``acquired``/``contended``/``errors`` per
acquire attempt (``contended``: someone else held it; ``errors``: the store failed),
``timeouts`` per blocking acquire that gave up, ``lost`` per held lease that ended while held."""


class LockError(CacheError):
    """Base of the lock errors."""


class LockTimeout(LockError, TimeoutError):
    """A blocking acquire reached its deadline while someone else held the lock."""


class LockLost(LockError):
    """The lease ended while held: expired, taken over, or the store restarted."""


@dataclass(eq=False)
class Lock:
    """One held lease. ``fence`` is this acquisition's fencing token (it only goes up)."""

    name: str
    key: str
    token: str
    fence: int
    ttl_ms: int
    _service: LockService = field(repr=False)
    _valid_until: float = field(repr=False)
    renewed_at: float = field(repr=False)
    """``time.monotonic()`` when the current lease was requested (acquire or last extend)."""
    lost: bool = False
    """True once the lease is no longer ours: lost, or released."""

    @property
    def valid_for(self) -> float:
        """Seconds the lease is surely still ours by the local clock (0.0 when lost).

        Counted from when the last successful acquire/extend was *sent*, minus a drift
        margin, so it never overstates what the server grants.
        """
        if self.lost:
            return 0.0
        return max(0.0, self._valid_until - time.monotonic())

    def check(self) -> None:
        """Raise ``LockLost`` unless the lease is still surely held (call before side effects)."""
        if self.valid_for <= 0:
            raise LockLost(f"lock {self.name!r} lease is no longer held", key=self.key)

    async def release(self) -> bool:
        """Give the lock up; False when the lease had already ended (nothing changed)."""
        released = await self._service.release(self.name, self.token)
        self.lost = True  # not ours any more either way
        return released

    async def extend(self, ttl: TTL | None = None) -> bool:
        """Restart the lease at ``ttl`` (default: the acquisition TTL); False when lost."""
        ms = self.ttl_ms if ttl is None else ttl_ms(ttl)
        sent = time.monotonic()
        ok = await self._service.extend_ms(self.name, self.token, ms)
        if ok:
            self.ttl_ms = ms
            self.renewed_at = sent
            self._valid_until = sent + self._service.validity(ms)
        else:
            self.lost = True
        return ok


class LockService:
    """The lock API (``manager.locks``); the compatibility calls ``acquire_lock``/``release_lock``
    live on ``manager.session``."""

    def __init__(
        self,
        scripts: ScriptRunner,
        service: CacheService,
        keys: KeyBuilder,
        default_ttl: float,
        settings: LockSettings | None = None,
    ) -> None:
        self.scripts = scripts
        self.service = service
        self.keys = keys
        self.default_ttl = default_ttl
        self.settings = settings or LockSettings()
        self.lease = Lease(scripts)
        self.rng = random.Random()
        self._counters = dict.fromkeys(LOCK_COUNTERS, 0)

    # -- single operations ------------------------------------------------------------
    def validity(self, ms: int) -> float:
        """Seconds of a fresh ``ms`` lease we may count on locally (drift-adjusted)."""
        return max(0.0, (ms * (1 - self.settings.drift) - _SAFETY_MS) / 1000)

    def _ms(self, ttl: TTL | None) -> int:
        return ttl_ms(self.default_ttl if ttl is None else ttl)

    async def _attempt(self, name: str, token: str, ms: int) -> tuple[Lock | None, int]:
        """One try: ``(lock, 0)`` when acquired, else ``(None, holder's ms left)``."""
        key, fence_key = self.keys.lock(name), self.keys.lock_fence(name)
        sent = time.monotonic()
        try:
            result = int(await self.scripts.run("lock_acquire", [key, fence_key], [token, ms]))
        except CacheError:
            self._counters["errors"] += 1
            raise
        if result <= 0:
            self._counters["contended"] += 1
            return None, -result
        self._counters["acquired"] += 1
        lock = Lock(name, key, token, result, ms, self, sent + self.validity(ms), sent)
        return lock, 0

    async def try_acquire(self, name: str, ttl: TTL | None = None) -> Lock | None:
        """Acquire without waiting; None when someone else holds the lock."""
        lock, _ = await self._attempt(name, secrets.token_hex(16), self._ms(ttl))
        return lock

    async def acquire(
        self, name: str, ttl: TTL | None = None, *, wait: float | None = None
    ) -> Lock:
        """Acquire, waiting up to ``wait`` seconds (default ``locks.acquire_timeout``; 0 = one try).

        Waits with exponential backoff and jitter, never sleeping past the holder's lease;
        raises ``LockTimeout`` at the deadline.
        """
        ms = self._ms(ttl)
        wait = seconds_arg(
            self.settings.acquire_timeout if wait is None else wait, "wait", allow_zero=True
        )
        token = secrets.token_hex(16)
        deadline = time.monotonic() + wait
        base = self.settings.retry_base
        backoff = Backoff(base, max(self.settings.retry_cap, base), rng=self.rng)
        while True:
            lock, holder_ms = await self._attempt(name, token, ms)
            if lock is not None:
                return lock
            left = deadline - time.monotonic()
            if left <= 0:
                self._counters["timeouts"] += 1
                raise LockTimeout(
                    f"lock {name!r} still held by another owner after {wait:g}s",
                    key=self.keys.lock(name),
                )
            await asyncio.sleep(min(backoff.next(), left, holder_ms / 1000 + 0.001))

    async def release(self, name: str, token: str) -> bool:
        """Release with the acquisition's token; False (nothing changed) for any other token."""
        key = self.keys.lock(name)
        if not isinstance(token, str) or not token:
            return False
        done = await self.lease.release(key, token)
        if done:
            self._counters["released"] += 1
        return done

    async def extend(self, name: str, token: str, ttl: TTL | None = None) -> bool:
        """Restart the lease at ``ttl``; False (nothing changed) when not held with ``token``."""
        return await self.extend_ms(name, token, self._ms(ttl))

    async def extend_ms(self, name: str, token: str, ms: int) -> bool:
        """``extend`` with the TTL in whole milliseconds."""
        key = self.keys.lock(name)
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 1:
            raise ValueError(f"ttl must be a positive number of milliseconds, got {ms!r}")
        if not isinstance(token, str) or not token:
            return False
        done = await self.lease.extend(key, token, ms)
        if done:
            self._counters["renewed"] += 1
        return done

    async def is_locked(self, name: str) -> bool:
        """Whether someone holds the lock right now."""
        return await self.service.exists(self.keys.lock(name)) == 1

    async def current_fence(self, name: str) -> int:
        """The highest fencing token handed out for ``name`` (0 if never locked)."""
        value = await self.service.get(self.keys.lock_fence(name))
        return int(value) if value else 0

    def hold(self, name: str, ttl: TTL | None = None, *, wait: float | None = None) -> Holding:
        """``async with locks.hold(name) as lock:`` acquire, renew in the background, release.

        If the lease is lost the body is cancelled and ``LockLost`` is raised from the block.
        A bad ``ttl`` or ``wait`` is refused here, before anything is acquired.
        """
        self._ms(ttl)
        if wait is not None:
            seconds_arg(wait, "wait", allow_zero=True)
        return Holding(self, name, ttl, wait)

    def note_lost(self) -> None:
        self._counters["lost"] += 1

    async def stats(self) -> dict[str, int]:
        """Process-local counters (``manager.stats().extra['locks.*']``)."""
        return self.counters()

    def counters(self) -> dict[str, int]:
        """``stats`` without I/O: the worker's metrics read it at scrape time."""
        return dict(self._counters)


class Holding:
    """The ``hold()`` context: one lease, one renewal task, cancellation when lost.

    Mirrors ``asyncio.timeout``: the renewer cancels the holder's task and the exit turns that
    cancellation (and only that one) into ``LockLost``. Unlike ``asyncio.timeout`` it cancels
    again every ``RECANCEL_EVERY_S`` while the body runs on (a body, or a library under it,
    that swallowed the first cancellation), for at most ``max(ttl, RECANCEL_FOR_MIN_S)``; then
    it gives up with one log line.
    """

    def __init__(
        self, service: LockService, name: str, ttl: TTL | None, wait: float | None
    ) -> None:
        self._service = service
        self._name = name
        self._ttl = ttl
        self._wait = wait
        self._lock: Lock | None = None
        self._task: asyncio.Task[object] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._cancelling = 0
        self._cancelled_by_us = False
        self._cancels = 0
        self._exiting = False
        self._reason = ""

    async def __aenter__(self) -> Lock:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("hold() must be used inside a task")
        self._lock = await self._service.acquire(self._name, self._ttl, wait=self._wait)
        self._task = task
        self._cancelling = task.cancelling()
        self._renewer = asyncio.create_task(self._renew(), name=f"lock-renew:{self._name}")
        return self._lock

    async def _renew(self) -> None:
        lock = self._lock
        assert lock is not None
        every = lock.ttl_ms / 1000 * self._service.settings.renew_fraction
        while True:
            await asyncio.sleep(max(0.0, lock.renewed_at + every - time.monotonic()))
            try:
                async with asyncio.timeout(lock.valid_for):
                    if await lock.extend():
                        continue
                reason = "the lease expired or was taken over"
            except TimeoutError:
                reason = "the store did not answer before the lease ran out"
            except CorruptKeyError as exc:  # no lease we can check: it will not come back
                reason = f"the lease key is unusable: {exc}"
            except CacheError as exc:
                if lock.valid_for > 0:
                    log.warning("lock %r: renewal failed, retrying: %s", lock.name, exc)
                    await asyncio.sleep(min(every / 4, lock.valid_for))
                    continue
                reason = f"the store was unreachable until the lease ran out: {exc}"
            except Exception as exc:  # a bug must not leave the holder believing it renews
                reason = f"renewal failed unexpectedly: {exc!r}"
            self._lost(reason)
            await self._keep_cancelling()
            return

    async def _keep_cancelling(self) -> None:
        """Cancel the holder again while its body runs on after the loss (bounded)."""
        assert self._lock is not None and self._task is not None
        give_up = time.monotonic() + max(self._lock.ttl_ms / 1000, RECANCEL_FOR_MIN_S)
        while not self._exiting and not self._task.done():
            if time.monotonic() >= give_up:
                log.error(
                    "lock %r: the body still runs %.1fs after its lease was lost; "
                    "no longer cancelling it",
                    self._lock.name,
                    max(self._lock.ttl_ms / 1000, RECANCEL_FOR_MIN_S),
                )
                return
            await asyncio.sleep(RECANCEL_EVERY_S)
            if not self._exiting and not self._task.done():
                self._cancel_holder()

    def _cancel_holder(self) -> None:
        assert self._lock is not None and self._task is not None
        self._cancelled_by_us = True
        self._cancels += 1
        self._task.cancel(f"lock {self._lock.name!r} lost")

    def _lost(self, reason: str) -> None:
        assert self._lock is not None and self._task is not None
        self._lock.lost = True
        self._reason = reason
        self._service.note_lost()
        log.error("lock %r lost while held: %s", self._lock.name, reason)
        if not self._task.done() and not self._exiting:
            self._cancel_holder()

    def _error(self) -> LockLost:
        assert self._lock is not None
        return LockLost(
            f"lock {self._lock.name!r} (fence {self._lock.fence}) lost while held: {self._reason}",
            key=self._lock.key,
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lock, task, renewer = self._lock, self._task, self._renewer
        assert lock is not None and task is not None and renewer is not None
        self._exiting = True  # from here on the renewer cancels nothing
        if self._cancelled_by_us:
            try:
                await cancel_and_wait([renewer], 1.0, f"lock {lock.name!r} renewer")
            except asyncio.CancelledError:
                exc_type = asyncio.CancelledError  # a re-cancel still pending when the body ended
            remaining = task.cancelling()
            for _ in range(self._cancels):
                remaining = task.uncancel()
            if remaining <= self._cancelling and exc_type in (asyncio.CancelledError, None):
                raise self._error() from exc
            if exc_type is asyncio.CancelledError and exc is None:
                raise asyncio.CancelledError  # an outside cancellation landed during the exit
            return  # the body's own error (or an outside cancellation) goes on
        await cancel_and_wait([renewer], 1.0, f"lock {lock.name!r} renewer")
        try:
            released = await lock.release()
        except CacheError as err:
            # The lease lapses by itself; only report it if it may already have lapsed.
            log.warning("lock %r: release failed, lease will expire: %s", lock.name, err)
            released = lock._valid_until > time.monotonic()
        if not released and exc_type is None:
            self._reason = "the lease had ended before release (event loop paused?)"
            self._service.note_lost()
            raise self._error()
