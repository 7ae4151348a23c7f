"""``RateLimitedLog``: warnings that a flood of bad input cannot turn into a flood of lines.

Some warnings are caused by what others send or store: a row that cannot be read, a request
for a foreign ``Host``. Each deserves a line naming what was wrong, but a million bad rows (or
a script hammering a port) must not write a million lines. A ``RateLimitedLog`` writes at most
``burst`` lines per ``window_s`` seconds; the lines it holds back are counted and the next line
it writes says how many were suppressed. One instance per owner (a dashboard process, a fleet
reader, one CLI command); nothing global.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most ``burst`` warnings per ``window_s`` seconds through ``logger``."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = max(1, burst)
        self.window_s = window_s
        self.clock = clock
        self._window_start = clock()
        self._written = 0
        self.suppressed = 0
        """Lines held back since the last line written."""
        self.total_suppressed = 0

    def warning(self, message: str, *args: object) -> bool:
        """Log ``message % args`` unless this window's lines are used up; True when written."""
        now = self.clock()
        if now - self._window_start >= self.window_s:
            self._window_start, self._written = now, 0
        if self._written >= self.burst:
            self.suppressed += 1
            self.total_suppressed += 1
            return False
        self._written += 1
        if self.suppressed:
            message += " (%d similar line(s) suppressed before this one)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self.logger.warning(message, *args)
        return True
