"""Job leases with tokens: a worker runs a job only while it provably holds its lease.

Claiming a job writes ARQ's ``arq:in-progress:<id>`` key with a token unique to this run (plain
ARQ writes ``1``; ARQ itself only checks that the key exists, so both kinds interoperate).
The runtime's beats renew every held lease with the lease primitive's compare-and-renew
(``cache.coordination.Lease``), so a stale owner never extends someone else's lease.

Each lease has a local deadline: the time its last confirmed renewal was *sent* plus the lease,
less a safety margin. The server cannot expire the key before that moment, so a worker that
cancels its job at the deadline has stopped before any other worker can claim the job. When a
renewal is refused (the key expired or another run holds it) or the deadline passes without a
confirmed renewal (store paused, network cut), the lease is lost: the job is cancelled
(re-cancelled until it ends, bounded) and its finish is refused by the token check, so the new
owner's result stands alone. See docs/operations.md "Delivery guarantees".
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arq.constants import in_progress_key_prefix

from cache.cancellation import cancel_and_wait
from cache.coordination import Lease
from cache.scripts import ScriptRunner

log = logging.getLogger("seen.worker.leases")

SAFETY_FRACTION = 0.05
"""Share of the lease given up locally for clock rate differences and scheduling delay."""
SAFETY_MIN_S = 0.05
CANCEL_WITHIN_S = 5.0
"""How long a lost job is re-cancelled before it is abandoned with a log line."""


def in_progress_key(job_id: str) -> str:
    return in_progress_key_prefix + job_id


@dataclass(eq=False)
class JobLease:
    """One claimed run of one job."""

    job_id: str
    token: bytes
    valid_until: float
    """Loop time after which this worker must assume another may hold the job."""
    task: asyncio.Task[None] | None = None
    """The whole run (ARQ's ``run_job``); cancelled when the lease is lost before the body."""
    phase: str = "claimed"
    """claimed -> body (the job function runs) -> finishing (ARQ's bookkeeping)."""
    lost: bool = False
    reason: str = ""
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class JobLeases:
    """The leases one worker process holds, their renewal and their expiry watch."""

    def __init__(self, worker_id: str, lease_s: float) -> None:
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.held: dict[str, JobLease] = {}
        self.lost_total = 0
        self.body_of: Callable[[str], asyncio.Future[Any] | None] = lambda _job_id: None
        """The running job function of a job id (``SeenWorker`` points it at ARQ's tasks)."""
        self._cancelling: set[asyncio.Task[bool]] = set()

    @property
    def lease_ms(self) -> int:
        return max(1, round(self.lease_s * 1000))

    def new_token(self) -> bytes:
        return f"{self.worker_id}:{secrets.token_hex(8)}".encode()

    def _valid_for(self) -> float:
        return self.lease_s - max(self.lease_s * SAFETY_FRACTION, SAFETY_MIN_S)

    def granted(self, job_id: str, token: bytes, sent_at: float) -> JobLease:
        """Record a lease whose claim was sent at loop time ``sent_at``."""
        lease = JobLease(job_id, token, sent_at + self._valid_for())
        self.held[job_id] = lease
        self._arm(lease)
        return lease

    def attach(self, job_id: str, task: asyncio.Task[None]) -> None:
        lease = self.held.get(job_id)
        if lease is not None:
            lease.task = task

    def phase(self, job_id: str, phase: str) -> None:
        """The run entered ``phase`` ("body" or "finishing")."""
        lease = self.held.get(job_id)
        if lease is not None:
            lease.phase = phase

    def ended(self, job_id: str, lease: JobLease | None = None) -> None:
        """The run is over (finished, failed or cancelled): stop watching its lease. With
        ``lease``, only that run's: a run that ends late (its store call hung) must not drop
        the lease of a newer run of the same job on this worker."""
        held = self.held.get(job_id)
        if held is None or (lease is not None and held is not lease):
            return
        del self.held[job_id]
        if held.timer is not None:
            held.timer.cancel()

    def token(self, job_id: str) -> bytes | None:
        """The token of a lease this worker still holds; None when lost or never held."""
        lease = self.held.get(job_id)
        return None if lease is None or lease.lost else lease.token

    async def renew(self, scripts: ScriptRunner) -> None:
        """Renew every held lease in one round trip; refused renewals lose their lease."""
        leases = [lease for lease in self.held.values() if not lease.lost]
        if not leases:
            return
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        replies = await Lease(scripts).extend_many(
            [(in_progress_key(x.job_id), x.token) for x in leases], self.lease_ms
        )
        for lease, renewed in zip(leases, replies, strict=True):
            if lease.lost or self.held.get(lease.job_id) is not lease:
                continue  # lost or ended while the renewal was on its way
            if renewed:
                lease.valid_until = max(lease.valid_until, sent_at + self._valid_for())
                self._arm(lease)
            elif lease.phase == "finishing":
                # the finish may have deleted the key a moment ago; its own token check
                # decides, and there is no job function left to cancel
                log.debug("job %s: renewal refused while finishing", lease.job_id)
            else:
                self.lose(lease, "the lease expired or another run holds the job")

    def _arm(self, lease: JobLease) -> None:
        if lease.timer is not None:
            lease.timer.cancel()
        loop = asyncio.get_running_loop()
        lease.timer = loop.call_at(lease.valid_until, self._deadline, lease)

    def _deadline(self, lease: JobLease) -> None:
        if lease.lost or self.held.get(lease.job_id) is not lease:
            return
        if asyncio.get_running_loop().time() < lease.valid_until:
            self._arm(lease)  # renewed meanwhile
            return
        self.lose(lease, f"no renewal was confirmed within the {self.lease_s:g}s lease")

    def lose(self, lease: JobLease, reason: str) -> None:
        """Mark ``lease`` lost and cancel its job until it ends (bounded)."""
        if lease.lost:
            return
        lease.lost = True
        lease.reason = reason
        self.lost_total += 1
        if lease.timer is not None:
            lease.timer.cancel()
        log.error(
            "job %s: lease lost (%s); cancelling it here, another worker may run it",
            lease.job_id,
            reason,
        )
        # Before the body: the whole run (it must not start the body). During the body: the
        # job function only, so ARQ's bookkeeping still runs (its finish is refused by the
        # token). Finishing: nothing is left to stop.
        task: asyncio.Future[Any] | None = lease.task if lease.phase == "claimed" else None
        if lease.phase == "body":
            task = self.body_of(lease.job_id) or lease.task
        if task is not None and not task.done():
            what = f"job {lease.job_id} after its lease was lost"
            cancel = asyncio.ensure_future(
                cancel_and_wait([task], CANCEL_WITHIN_S, what, msg="job lease lost")
            )
            self._cancelling.add(cancel)
            cancel.add_done_callback(self._cancelling.discard)

    def close(self) -> None:
        """Stop every timer (the worker is stopping)."""
        for lease in self.held.values():
            if lease.timer is not None:
                lease.timer.cancel()
