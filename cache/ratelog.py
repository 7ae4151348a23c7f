"""``RateLimitedLog``: warnings that a flood of bad input cannot turn into a flood of lines.

Some warnings are caused by what others send or store: a row that cannot be read, a request
for a foreign ``Host``. Each deserves a line naming what was wrong, but a million bad rows (or
a script hammering a port) must not write a million lines. A ``RateLimitedLog`` writes at most
``burst`` lines per ``window_s`` seconds for each topic (a kind of row, say: a flood of one
kind cannot hide the first line about another); the lines it holds back are counted and the
next line of that topic says how many were suppressed. Topics are a small fixed set named by
the code, never by the input. One instance per owner (a dashboard process, a fleet reader, one
CLI command); nothing global.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Window:
    start: float
    written: int = 0
    suppressed: int = 0


class RateLimitedLog:
    """At most ``burst`` warnings per ``window_s`` seconds and topic, through ``logger``."""

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
        self._windows: dict[str, _Window] = {}
        self.total_suppressed = 0

    @property
    def suppressed(self) -> int:
        """Lines held back (every topic) since each topic's last line written."""
        return sum(w.suppressed for w in self._windows.values())

    def warning(self, message: str, *args: object, topic: str = "") -> bool:
        """Log ``message % args`` unless ``topic``'s lines of this window are used up; True
        when written."""
        return self.log(logging.WARNING, message, *args, topic=topic)

    def error(self, message: str, *args: object, topic: str = "") -> bool:
        """As ``warning``, at ERROR."""
        return self.log(logging.ERROR, message, *args, topic=topic)

    def log(self, level: int, message: str, *args: object, topic: str = "") -> bool:
        """Log ``message % args`` at ``level`` unless ``topic``'s lines of this window are used
        up; True when written."""
        now = self.clock()
        window = self._windows.get(topic)
        if window is None:
            window = self._windows[topic] = _Window(now)
        elif now - window.start >= self.window_s:
            window.start, window.written = now, 0
        if window.written >= self.burst:
            window.suppressed += 1
            self.total_suppressed += 1
            return False
        window.written += 1
        if window.suppressed:
            message += " (%d similar line(s) suppressed before this one)"
            args = (*args, window.suppressed)
            window.suppressed = 0
        self.logger.log(level, message, *args)
        return True
