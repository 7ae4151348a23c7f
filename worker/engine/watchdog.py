"""One timer for every deadline of the engine: job timeouts and lease deadlines.

A timer per job (ARQ's ``asyncio.wait_for``, a lease timer) costs an allocation, a heap push
and a cancellation per job. The engine's deadlines are few and mostly far (a job timeout of
seconds, a lease of 15 s): one timer armed at the earliest of them is enough. ``arm(at)``
makes sure a check runs at or before ``at``; the check (the engine's) acts on what is due and
says when to look next. A job that ends before its deadline costs one comparison.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable


class Watchdog:
    """Calls ``check(now) -> next deadline or None`` at the earliest deadline it was given."""

    def __init__(self, check: Callable[[float], float | None]) -> None:
        self._check = check
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf

    def arm(self, at: float) -> None:
        """Check no later than loop time ``at``."""
        if at < self._at:
            if self._handle is not None:
                self._handle.cancel()
            self._at = at
            self._handle = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._at = math.inf
        following = self._check(self._loop.time())
        if following is not None:
            self.arm(following)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._at = math.inf
