"""One claimed job as the engine holds it, from its claim to its finish.

Made by the claim (``worker.engine.claim``) with what the run needs first; the engine then
records here where the job is (``phase``), until when this worker may assume it holds the job
(``valid_until``, its lease's local deadline), and whether and why its lease was lost or its
body cancelled. One object per job, mutated in place: the engine's per-job bookkeeping is this
object, not a set of parallel dictionaries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from jobs.wire.layout import QueueShard


class Phase(enum.IntEnum):
    CLAIMED = 0
    """Claimed, waiting for a runner."""
    BODY = 1
    """Its function runs."""
    FINISHING = 2
    """Its function ended; its finish is on its way."""


class Cancel(enum.Enum):
    """Why the engine cancelled a job's body."""

    TIMEOUT = "timeout"
    ABORT = "abort"
    LEASE = "lease lost"
    STOP = "worker stopping"


@dataclass(slots=True, eq=False)
class Job:
    job_id: str
    shard: QueueShard
    token: bytes
    """The token its lease holds: this run's, unique per claim."""
    score: int
    """Its score in the queue when claimed: the time it was due (ms)."""
    record: bytes | None
    """The job record; None when it was missing (the job fails as expired)."""
    job_try: int
    """Its try, counted by the claim."""
    aborted: bool
    """``Job.abort()`` asked for it before it started: it fails as cancelled without running."""
    problem: str | None
    """One of its keys was unusable (the claim names it and repaired it): the job fails alone."""
    valid_until: float = 0.0
    """Loop time after which this worker must assume another may hold the job."""
    phase: Phase = Phase.CLAIMED
    lost: str | None = None
    """Why its lease was lost (expired, taken over); None while held."""
    cancelled: Cancel | None = None
    """Why the engine cancelled its body, if it did."""
    function: str = "<unknown>"
    trace: Any = None
    """What the engine's tracing keeps for the job (``worker.engine.tracing``); None while
    tracing is off."""

    @property
    def key(self) -> str:
        """``RunLease.key`` (``jobs.context``): the job's lease key."""
        return self.shard.in_progress(self.job_id)
