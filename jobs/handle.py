"""``JobHandle``: a producer's handle to one job (status, info, result, abort), on either layout.

ARQ's ``arq.jobs.Job`` reads ARQ's keys only; this reads the keys of the job's shard
(``jobs.wire.layout``: ARQ's ``arq:*`` keys, or ``{<name>:<i>}:*`` of the sharded layout), and
the records through ``jobs.serializer`` (JSON, checked). The statuses and rules are ARQ's:

- ``complete``: a result record exists (kept ``keep_result`` seconds; none for functions that
  keep none);
- ``in_progress``: a worker holds the job's lease (``in-progress`` key);
- ``deferred`` / ``queued``: the id is in the queue with a due time in the future / reached;
- ``not_found``: none of these.

A result record stores the job's return value, or for a failure ``{"error": <type name>,
"message": <text>}`` (``jobs.serializer``): ``result()`` returns the value or raises
``JobFailedError`` (``JobAbortedError`` for a cancellation). ``abort()`` adds the id to the
shard's abort set, as ``Job.abort()`` does, and waits for the outcome. Every wait has a
deadline.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.errors import translate_errors
from cache.keys import validate_name
from cache.numbers import seconds_arg
from jobs.errors import JobAbortedError, JobFailedError, JobNotFoundError, JobTimeoutError
from jobs.serializer import deserialize
from jobs.wire.layout import QueueLayout

CANCELLED = "CancelledError"
"""The ``error`` of a job cancelled by an abort (or its timeout: ARQ cancels it too)."""


class JobStatus(enum.StrEnum):
    """ARQ's ``JobStatus`` values."""

    DEFERRED = "deferred"
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    NOT_FOUND = "not_found"


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job's record (and its result when finished), as ARQ's ``JobDef``/``JobResult``."""

    job_id: str
    function: str
    args: list[Any]
    kwargs: dict[str, Any]
    job_try: int | None
    enqueue_time: datetime
    score: int | None
    """Its due time (ms) while queued; None once it left the queue."""
    success: bool | None = None
    """None until it finished."""
    result: Any = None
    start_time: datetime | None = None
    finish_time: datetime | None = None

    @classmethod
    def of(cls, job_id: str, record: dict[str, Any], score: int | None) -> JobInfo:
        done = "s" in record
        return cls(
            job_id=job_id,
            function=record["f"],
            args=record["a"],
            kwargs=record["k"],
            job_try=record["t"],
            enqueue_time=_time(record["et"]),
            score=score,
            success=record["s"] if done else None,
            result=record["r"] if done else None,
            start_time=_time(record["st"]) if done else None,
            finish_time=_time(record["ft"]) if done else None,
        )


def outcome(job_id: str, record: dict[str, Any]) -> Any:
    """A finished job's return value; raises ``JobFailedError`` for a failure."""
    if record["s"]:
        return record["r"]
    value = record["r"]
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        error, detail = value["error"], str(value.get("message", ""))
    else:
        error, detail = "failed", str(value)
    kind = JobAbortedError if error == CANCELLED else JobFailedError
    raise kind(error, detail, job_id=job_id)


class JobHandle:
    """One job of a queue (``layout``) on the queue store's client ``redis``."""

    def __init__(self, redis: Redis, layout: QueueLayout, job_id: str) -> None:
        self.redis = redis
        self.layout = layout
        self.job_id = validate_name(job_id, "job id")
        self.shard = layout.for_job(job_id)

    def __repr__(self) -> str:
        return f"<JobHandle {self.job_id} ({self.layout.describe()})>"

    async def status(self) -> JobStatus:
        """Read without a transaction (a cluster client needs none, and a finish is one atomic
        script): the queue, then the lease, then the result, so a job that moves on while they
        are read is seen in a state it really had (the later reads win)."""
        shard, jid = self.shard, self.job_id
        with translate_errors(shard.job(jid), operation="job status"):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zscore(shard.queue, jid)
                pipe.exists(shard.in_progress(jid))
                pipe.exists(shard.result(jid))
                score, running, complete = await pipe.execute()
        if complete:
            return JobStatus.COMPLETE
        if running:
            return JobStatus.IN_PROGRESS
        if score is not None:
            return JobStatus.DEFERRED if score > wall_ms() else JobStatus.QUEUED
        return JobStatus.NOT_FOUND

    async def info(self) -> JobInfo | None:
        """The result record when the job finished, else its job record; None when neither."""
        shard, jid = self.shard, self.job_id
        with translate_errors(shard.job(jid), operation="job info"):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zscore(shard.queue, jid)
                pipe.get(shard.job(jid))
                pipe.get(shard.result(jid))
                score, record, result = await pipe.execute()
        raw = result or record
        if raw is None:
            return None
        return JobInfo.of(jid, deserialize(raw), None if score is None else int(score))

    async def result(self, wait: float = 30.0, *, poll_delay: float = 0.5) -> Any:
        """Wait for the job's result, at most ``wait`` seconds (``JobTimeoutError``; ARQ's
        ``Job.result(timeout)``, bounded: every wait has a deadline).

        ``JobFailedError``/``JobAbortedError`` when it failed; ``JobNotFoundError`` when it is
        neither queued nor finished with a kept result."""
        limit = seconds_arg(wait, "wait")
        delay = seconds_arg(poll_delay, "poll_delay")
        deadline = time.monotonic() + limit
        shard, jid = self.shard, self.job_id
        while True:
            with translate_errors(shard.result(jid), operation="job result"):
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.zscore(shard.queue, jid)
                    pipe.get(shard.result(jid))
                    score, raw = await pipe.execute()
            if raw is not None:
                return outcome(jid, deserialize(raw))
            if score is None:
                raise JobNotFoundError(
                    "no result and not queued (finished without keeping a result, expired, "
                    "or never enqueued)",
                    job_id=jid,
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobTimeoutError(f"no result within {limit:g} s", job_id=jid)
            await asyncio.sleep(min(delay, left))

    async def abort(self, wait: float = 5.0, *, poll_delay: float = 0.5) -> bool:
        """Ask the worker to cancel the job (a deferred one is made due so it is picked up and
        cancelled at once); True when it ended cancelled, False when it finished otherwise or
        left no result. ``JobTimeoutError`` when it did not end within ``wait`` seconds."""
        shard, jid = self.shard, self.job_id
        now = wall_ms()
        with translate_errors(shard.abort, operation="job abort"):
            score = await cast(Awaitable[float | None], self.redis.zscore(shard.queue, jid))
            if score is not None and score > now:
                await cast(Awaitable[int], self.redis.zadd(shard.queue, {jid: 1}, xx=True))
            await cast(Awaitable[int], self.redis.zadd(shard.abort, {jid: now}))
        try:
            await self.result(wait, poll_delay=poll_delay)
        except JobAbortedError:
            return True
        except (JobFailedError, JobNotFoundError):
            return False
        return False
