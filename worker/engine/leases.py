"""Job leases with tokens: a worker runs a job only while it provably holds its lease.

The claim writes the job's lease key (ARQ's ``arq:in-progress:<id>``, or the shard's) with a
token unique to this run; plain ARQ writes ``1`` and only checks that the key exists, so both
interoperate. ``renew`` extends every held lease with the lease primitive's compare-and-renew
(``cache.coordination.Lease``), so a stale holder never extends someone else's lease.

Each lease has a local deadline: the time its last confirmed renewal (or its claim) was *sent*
plus the lease, less a safety margin. The server cannot expire the key before that moment, so a
worker that cancels its job at the deadline has stopped before any other worker can claim it.
When a renewal is refused (the key expired or another run holds it) or the deadline passes
without a confirmed renewal (store paused, network cut), the lease is lost: the engine cancels
the job, and its finish is refused by the token check, so the new holder's result stands
alone. With ``lease_replicas`` a claim or renewal counts only once that many replicas confirmed
it (``WAIT``): a failover then never brings back an older expiry than the one the worker goes
by. The deadlines are watched by the engine's one timer (``worker.engine.watchdog``), not one
timer per job. See docs/operations.md "Delivery guarantees".
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Iterator

from cache.coordination import Lease
from cache.scripts import Replicas, ScriptRunner
from worker.engine.job import Job, Phase

log = logging.getLogger("seen.worker.leases")

SAFETY_FRACTION = 0.05
"""Share of the lease given up locally for clock rate differences and scheduling delay."""
SAFETY_MIN_S = 0.05


class Leases:
    """The leases one worker process holds (its claimed jobs, by id) and their renewal."""

    def __init__(self, worker_id: str, lease_s: float, replicas: Replicas | None = None) -> None:
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.replicas = replicas
        """Replicas a renewal must reach to count (``EngineConfig.lease_replicas``)."""
        self.held: dict[str, Job] = {}
        self.lost_total = 0
        # a token is unique per claim: this process's id, a random run prefix, a counter
        self._prefix = f"{worker_id}:{secrets.token_hex(4)}-".encode()
        self._count = itertools.count(1)

    @property
    def lease_ms(self) -> int:
        return max(1, round(self.lease_s * 1000))

    @property
    def valid_for(self) -> float:
        """Seconds a lease confirmed at time t is assumed ours after t."""
        return self.lease_s - max(self.lease_s * SAFETY_FRACTION, SAFETY_MIN_S)

    def new_token(self) -> bytes:
        return self._prefix + str(next(self._count)).encode()

    def grant(self, job: Job, sent_at: float) -> None:
        """``job`` was claimed by a call sent at loop time ``sent_at``."""
        job.valid_until = sent_at + self.valid_for
        self.held[job.job_id] = job

    def release(self, job: Job) -> None:
        """The run of ``job`` is over: stop holding it (only that run's: a newer run of the same
        id on this worker keeps its own)."""
        if self.held.get(job.job_id) is job:
            del self.held[job.job_id]

    def __len__(self) -> int:
        return len(self.held)

    def __iter__(self) -> Iterator[Job]:
        return iter(self.held.values())

    def lose(self, job: Job, reason: str) -> bool:
        """Mark ``job``'s lease lost; False when it was already lost."""
        if job.lost is not None:
            return False
        job.lost = reason
        self.lost_total += 1
        log.error(
            "job %s: lease lost (%s); cancelling it here, another worker may run it",
            job.job_id,
            reason,
        )
        return True

    def expired(self, now: float) -> list[Job]:
        """Held leases whose local deadline has passed (not yet marked lost)."""
        return [j for j in self.held.values() if j.lost is None and j.valid_until <= now]

    def earliest(self) -> float | None:
        """The earliest local deadline of a lease still held."""
        deadlines = [j.valid_until for j in self.held.values() if j.lost is None]
        return min(deadlines) if deadlines else None

    async def renew(self, scripts: ScriptRunner, now: float) -> list[tuple[Job, str]]:
        """Renew every held lease in one round trip (one compare-and-renew per key: each call
        touches one key). Returns the leases whose renewal was refused, with why; a refused
        renewal of a job already finishing is not a loss (its finish may have deleted the key a
        moment ago, and its own token check decides)."""
        jobs = [j for j in self.held.values() if j.lost is None]
        if not jobs:
            return []
        leases = [(j.key, j.token) for j in jobs]
        if self.replicas is None:
            replies = [(r, True) for r in await Lease(scripts).extend_many(leases, self.lease_ms)]
        else:
            replies = await Lease(scripts).extend_many_confirmed(
                leases, self.lease_ms, self.replicas
            )
        refused: list[tuple[Job, str]] = []
        for job, (renewed, confirmed) in zip(jobs, replies, strict=True):
            if job.lost is not None or self.held.get(job.job_id) is not job:
                continue  # lost or ended while the renewal was on its way
            if renewed and confirmed:
                job.valid_until = max(job.valid_until, now + self.valid_for)
            elif renewed:
                # the primary extended it but no replica confirmed in time: a failover now
                # would bring back the older expiry, so the local deadline stays where the
                # last confirmed renewal put it (a later confirmed renewal moves it on)
                continue
            elif job.phase is not Phase.FINISHING:
                refused.append((job, "the lease expired or another run holds the job"))
        return refused
