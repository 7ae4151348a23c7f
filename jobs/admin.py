"""Operator actions on one job, on either queue layout: retry now, cancel, delete.

Each is race-safe against the workers: it acts in one step on the job's own shard and says
what it did or why it did not (``ActionResult``), never half of it.

- **retry now** (``job_retry.lua``): a queued job that waits (deferred, or waiting out a
  retry's backoff) is made due now; it runs at the next poll (while the queue is not paused).
  A running job is refused (it is running), a finished or unknown one too.
- **cancel**: ARQ's abort (``Job.abort()``): the id goes into its shard's abort set, and a
  deferred job is made due, so the worker that runs or takes it cancels it within one poll; it
  ends ``cancelled`` with a result saying so. A job that is neither queued nor running is
  refused. (While the queue is paused a waiting job is cancelled when a worker takes it.)
- **delete** (``job_delete.lua``): a queued job that no run holds leaves the queue with its
  record and try counter, in one script on its shard's keys; a running job is refused (cancel
  it), as is one no longer queued. A deleted job leaves no result.

The callers (``seen-worker jobs``, the dashboard) log who did what; the ``ActionResult`` is
what they show.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.errors import translate_errors
from cache.keys import validate_name
from cache.scripts import ScriptRunner
from jobs.wire.layout import QueueLayout

DELETE_SCRIPT = "job_delete"
RETRY_SCRIPT = "job_retry"


class Verdict(enum.StrEnum):
    DONE = "done"
    UNCHANGED = "unchanged"
    """Nothing needed doing (a retry of a job already due)."""
    REFUSED = "refused"
    """The job is not in a state this action applies to (the message says which)."""
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class ActionResult:
    """What an action did to a job, in words an operator reads."""

    action: str
    job_id: str
    verdict: Verdict
    message: str
    new_id: str | None = None
    """The id a requeued dead letter got, when that is not ``job_id``."""

    @property
    def ok(self) -> bool:
        return self.verdict in (Verdict.DONE, Verdict.UNCHANGED)

    def as_dict(self) -> dict[str, str | bool | None]:
        return {
            "action": self.action,
            "job_id": self.job_id,
            "verdict": self.verdict.value,
            "ok": self.ok,
            "message": self.message,
            "new_id": self.new_id,
        }


class JobAdmin:
    """The actions on the jobs of one queue (``layout``) through the queue store's client."""

    def __init__(self, client: Redis, layout: QueueLayout, scripts: ScriptRunner | None = None):
        self.client = client
        self.layout = layout
        self.scripts = scripts or ScriptRunner(client)
        self.single_hashtag = layout.kind == "sharded"

    async def retry_now(self, job_id: str) -> ActionResult:
        validate_name(job_id, "job id")
        shard = self.layout.for_job(job_id)
        code = int(
            await self.scripts.run(
                RETRY_SCRIPT,
                [shard.queue, shard.in_progress(job_id)],
                [job_id, wall_ms()],
                single_hashtag=self.single_hashtag,
            )
        )
        if code == 1:
            return ActionResult(
                "retry", job_id, Verdict.DONE, "made due now: runs at the next poll"
            )
        if code == 2:
            return ActionResult("retry", job_id, Verdict.UNCHANGED, "already due: nothing to do")
        if code == -1:
            return ActionResult(
                "retry", job_id, Verdict.REFUSED, "it is running (cancel it to stop it)"
            )
        return ActionResult(
            "retry", job_id, Verdict.NOT_FOUND, "not in the queue (finished, deleted or unknown)"
        )

    async def delete(self, job_id: str) -> ActionResult:
        validate_name(job_id, "job id")
        shard = self.layout.for_job(job_id)
        keys = [
            shard.queue,
            shard.in_progress(job_id),
            shard.job(job_id),
            shard.retry(job_id),
            shard.abort,
        ]
        code = int(
            await self.scripts.run(
                DELETE_SCRIPT, keys, [job_id], single_hashtag=self.single_hashtag
            )
        )
        if code == 1:
            return ActionResult("delete", job_id, Verdict.DONE, "deleted: it will not run")
        if code == -1:
            return ActionResult(
                "delete", job_id, Verdict.REFUSED, "it is running: cancel it instead"
            )
        return ActionResult(
            "delete", job_id, Verdict.NOT_FOUND, "not in the queue (finished, deleted or unknown)"
        )

    async def cancel(self, job_id: str) -> ActionResult:
        validate_name(job_id, "job id")
        shard = self.layout.for_job(job_id)
        now = wall_ms()
        with translate_errors(shard.abort, operation="cancel job"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.exists(shard.in_progress(job_id))
                pipe.zscore(shard.queue, job_id)
                running, score = await pipe.execute()
            if not running and score is None:
                return ActionResult(
                    "cancel",
                    job_id,
                    Verdict.NOT_FOUND,
                    "neither queued nor running (finished, deleted or unknown)",
                )
            if score is not None and float(score) > now:
                await cast(Awaitable[int], self.client.zadd(shard.queue, {job_id: 1}, xx=True))
            await cast(Awaitable[int], self.client.zadd(shard.abort, {job_id: now}))
        if running:
            why = "abort requested: the worker running it cancels it within one poll"
        else:
            why = "abort requested: it ends cancelled, without running, when a worker takes it"
        return ActionResult("cancel", job_id, Verdict.DONE, why)
