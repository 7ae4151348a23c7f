"""``Unreadable``: the rows one read skipped because they could not be read, by kind.

One bad record must never blank a page or fail a command: a heartbeat under an id that breaks
the id rule, a progress hash with an unknown status, a history entry that is not JSON, a key of
the wrong type. A reader that meets one skips it, notes it here (kind, key, why) and goes on;
the caller shows the good rows plus the count ("2 unreadable entries"). Each skipped row is
logged with its key through a ``RateLimitedLog``, so a flood of bad rows writes a few lines, not
one per row (a limit per kind, so one kind's flood hides no other kind).

Kinds are short fixed names the readers use (``heartbeat``, ``download``, ``dead_letter``,
``lock``, ``lease``, ``cron_slot``, ``cron_history``, ``job_counter``); the fleet exporter
labels its series with them.
"""

from __future__ import annotations

import logging
from collections import Counter

from cache.ratelog import RateLimitedLog

log = logging.getLogger("seen.unreadable")

KEY_CHARS = 120
"""A key (or member) is named in a log line by at most this many characters."""


def shown(text: str, limit: int = KEY_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was when cut."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class Unreadable:
    """Rows skipped by one read (a page, a scrape, a command), counted by kind.

    ``log``: where each skip is reported (an owner's ``RateLimitedLog``); without one, a new
    one of this read's own (a command reads once, so its own limit suffices).
    """

    def __init__(self, log_to: RateLimitedLog | None = None) -> None:
        self.log = log_to or RateLimitedLog(log)
        self.counts: Counter[str] = Counter()

    def skip(self, kind: str, key: str, reason: str) -> None:
        """Count one row of ``kind`` at ``key`` that could not be read, and say why."""
        self.counts[kind] += 1
        self.log.warning(
            "skipped an unreadable %s at %s: %s", kind, shown(key), shown(reason, 300), topic=kind
        )

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def by_kind(self) -> dict[str, int]:
        """Kinds with at least one skipped row, in a stable order."""
        return {kind: n for kind, n in sorted(self.counts.items()) if n}

    def summary(self) -> dict[str, object]:
        """``{"total": n, "by_kind": {...}}``: what a JSON answer carries."""
        return {"total": self.total, "by_kind": self.by_kind()}

    def describe(self) -> str:
        """``"3 unreadable entries skipped (heartbeat 2, lock 1)"``; empty when none."""
        if not self.total:
            return ""
        noun = "entry" if self.total == 1 else "entries"
        kinds = ", ".join(f"{kind} {n}" for kind, n in self.by_kind().items())
        return f"{self.total} unreadable {noun} skipped ({kinds})"
