"""The batch finish: every job that ends while a finish is on its way goes in the next one.

Each job's part is ARQ's ``finish_job``/``finish_failed_job`` (result record, lease deletion
or keep, try counter and record deletion, queue and abort-set removal, or a retry's score
increment), applied only while the lease key still holds the run's token: a job whose lease
was lost, and which another worker may now run, changes nothing. One script call (one round
trip, atomic per job) serves the whole batch; the queue removal is one ZREM for all of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.asyncio import Redis

from cache.microbatch import MicroBatcher
from cache.scripts import ScriptArg
from worker.engine.scripts import FINISH, run_queue_script


@dataclass(frozen=True, slots=True)
class Finish:
    """One job's finish, as ARQ would write it."""

    job_id: str
    token: bytes
    keep_lease_ms: int | None
    """None deletes the lease; n keeps it n ms more (cron jobs: ARQ's keep_cronjob_progress)."""
    over: bool
    """True settles the job (result, record, counter, queue); False leaves it queued (retry)."""
    result: bytes | None = None
    result_ttl_ms: int | None = None
    """None keeps the result forever."""
    incr_score: int | None = None
    """A retry's deferral added to the job's score (ms), when not over."""


class Finisher:
    """Finishes jobs in batches on one queue (``submit`` -> True, or False when refused)."""

    def __init__(self, client: Redis, queue: str) -> None:
        self.client = client
        self.queue = queue
        self.batcher: MicroBatcher[Finish, bool] = MicroBatcher(self._send)

    async def submit(self, finish: Finish) -> bool:
        return await self.batcher.submit(finish)

    async def _send(self, items: Sequence[Finish]) -> list[bool]:
        keys = [self.queue, abort_jobs_ss]
        args: list[ScriptArg] = []
        for f in items:
            job_id = f.job_id
            keys += (
                in_progress_key_prefix + job_id,
                result_key_prefix + job_id,
                retry_key_prefix + job_id,
                job_key_prefix + job_id,
            )
            last = (f.result_ttl_ms or 0) if f.over else (f.incr_score or 0)
            args += (
                job_id,
                f.token,
                -1 if f.keep_lease_ms is None else max(1, f.keep_lease_ms),
                1 if f.over else 0,
                f.result or b"",
                last,
            )
        reply = await run_queue_script(self.client, FINISH, keys, args)
        return [r == 1 for r in reply]
