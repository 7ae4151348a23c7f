"""How a job ended, in one word everywhere, and the engine's running totals.

One vocabulary for the worker's series, its heartbeat, the fleet-wide counters in the store and
the pages: ``complete`` (ARQ's ``j_complete``), ``failed``, ``retried``, ``cancelled`` (aborted
through ``Job.abort()``) and ``stale`` (the run lost its lease: another run owns the job and this
run's finish was refused).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    COMPLETE = "complete"
    FAILED = "failed"
    RETRIED = "retried"
    CANCELLED = "cancelled"
    STALE = "stale"


OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)


@dataclass(slots=True)
class JobCounts:
    """Jobs this worker process ended, by outcome (read by heartbeats and metrics)."""

    complete: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    stale: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in OUTCOMES}

    @property
    def ended(self) -> int:
        return self.complete + self.failed + self.retried + self.cancelled + self.stale
