"""A run guard so a manual and a scheduled run of one maintenance job never overlap.

A token lock on the queue store (never on an evicting cache instance): acquired with a script
that sets it when absent or already held by the same token, released by compare-and-delete.
The token is the ARQ job id, so the retry of a job whose worker died takes over its own stale
guard instead of waiting for it to expire. The TTL is the job's timeout plus a margin: ARQ
cancels the job at its timeout, so a live holder never outlives its guard. A run releases it
when it ends, also when it is cancelled (``jobs.slotrun``); a killed worker's guard expires.

Why not ``cache.coordination.LockService``: the guard lives on the *queue* store (jobs and their
guards must share the non-evicting instance) and must be re-entrant by job id, which a
random-token lock is not. It is the same lease primitive (``cache.coordination.Lease``,
re-entrant acquire) and shares the lock key space with the locks.
"""

from __future__ import annotations

from cache.coordination import Lease
from cache.keys import KeyBuilder
from cache.scripts import ScriptRunner

GUARD_MARGIN_S = 5.0


class RunGuard:
    """Holds ``seen:lock:{maintenance:<job>}`` for the duration of one run."""

    def __init__(self, scripts: ScriptRunner, keys: KeyBuilder) -> None:
        self.scripts = scripts
        self.keys = keys
        self.lease = Lease(scripts)

    async def acquire(self, job_name: str, token: str, ttl_s: float) -> bool:
        key = self.keys.maintenance_lock(job_name)
        ttl_ms = max(1, round((ttl_s + GUARD_MARGIN_S) * 1000))
        return await self.lease.acquire_reentrant(key, token, ttl_ms)

    async def release(self, job_name: str, token: str) -> bool:
        """Compare-and-delete: False when the guard is not held with ``token``."""
        key = self.keys.maintenance_lock(job_name)
        return await self.lease.release(key, token)
