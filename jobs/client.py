"""The producer side: enqueue jobs, and ``ProgressPublisher`` (coalescing progress).

``enqueue_jobs`` writes exactly what ``ArqRedis.enqueue_job`` writes (the JSON job record under
the job's key with a one-day expiry, and the id in its queue's sorted set) in one MULTI/EXEC
round trip per shard instead of ARQ's three: on ARQ's layout the keys ``arq:job:<id>`` and
the queue ``name``; on the sharded layout (``jobs.wire.layout``) the job's shard's
``{<name>:<i>}:job:<id>`` and ``{<name>:<i>}:queue``, which share the shard's hashtag, so each
transaction touches one. ``SET NX`` + ``ZADD NX`` keep ARQ's rule that an id is refused while
its job exists. It ignores ARQ's result key, which only matters when re-using a job id after
its job finished: our drain ids are never re-used that way on purpose (see docs/progress.md,
"repair").

Every function takes the queue's layout as ``layout=`` (``QueueLayout``; the worker's is
``Settings.queue.key_layout()``); ``queue_name=`` alone still means ARQ's layout with that
name. No ARQ is needed: the record is ARQ's, written here (a test checks it against ARQ's).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.download import ProgressUpdate, PublishOutcome, new_drain_id
from cache.errors import CacheError, translate_errors
from cache.keys import validate_name
from cache.manager import CacheManager
from jobs.errors import InvalidPayloadError, PublishError
from jobs.handle import JobHandle
from jobs.serializer import serialize
from jobs.wire.layout import DEFAULT_QUEUE_NAME, JOB_EXPIRY_EXTRA_MS, QueueLayout

UPDATE_FUNCTION = "update_progress"
BATCH_FUNCTION = "update_progress_batch"
DRAIN_FUNCTION = "apply_pending_progress"
REPAIR_FUNCTION = "repair_pending_progress"
"""The names producers enqueue; the jobs are declared with them (``jobs.progress``)."""

JobSpec = tuple[str, Sequence[Any], str]
"""(function, args, job id) of one job to enqueue."""


drain_job_id = new_drain_id
"""A fresh id for a shard's drain job; kept as an alias of ``cache.download.new_drain_id``,
the factory ``manager.download`` uses for every drain it schedules."""


def queue_layout(layout: QueueLayout | None, queue_name: str = DEFAULT_QUEUE_NAME) -> QueueLayout:
    """``layout``, else ARQ's layout named ``queue_name`` (the compatible default)."""
    return layout if layout is not None else QueueLayout.arq(queue_name)


def job_record(
    function: str,
    args: Sequence[Any],
    enqueue_ms: int | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> bytes:
    """ARQ's job record as JSON: ``{"t","f","a","k","et"}`` (docs/wire-format.md)."""
    stamp = enqueue_ms if enqueue_ms is not None else wall_ms()
    record = {"t": None, "f": function, "a": list(args), "k": dict(kwargs or {}), "et": stamp}
    return serialize(record)


async def _enqueue_on_shard(
    queue: Redis, layout: QueueLayout, index: int, jobs: Sequence[JobSpec], now: int
) -> list[bool]:
    shard = layout.shards[index]
    with translate_errors(shard.queue, operation="enqueue"):
        async with queue.pipeline(transaction=True) as tx:
            for function, args, job_id in jobs:
                tx.set(
                    shard.job(job_id),
                    job_record(function, args, now),
                    px=JOB_EXPIRY_EXTRA_MS,
                    nx=True,
                )
                tx.zadd(shard.queue, {job_id: now}, nx=True)
            replies = await tx.execute()
    return [bool(r) for r in replies[0::2]]


async def enqueue_jobs(
    queue: Redis,
    jobs: Sequence[JobSpec],
    *,
    queue_name: str = DEFAULT_QUEUE_NAME,
    layout: QueueLayout | None = None,
) -> list[bool]:
    """Enqueue several jobs, one transaction per shard they fall in (ARQ's layout: one);
    per job, False when its id already exists."""
    if not jobs:
        return []
    where = queue_layout(layout, queue_name)
    for _, _, job_id in jobs:
        validate_name(job_id, "job id")
    by_shard: dict[int, list[int]] = {}
    for position, (_, _, job_id) in enumerate(jobs):
        by_shard.setdefault(where.shard_index(job_id), []).append(position)
    now = wall_ms()
    shards = list(by_shard.items())
    replies = await asyncio.gather(
        *(
            _enqueue_on_shard(queue, where, index, [jobs[p] for p in positions], now)
            for index, positions in shards
        )
    )
    done = [False] * len(jobs)
    for (_, positions), shard_replies in zip(shards, replies, strict=True):
        for position, reply in zip(positions, shard_replies, strict=True):
            done[position] = reply
    return done


async def enqueue_job(
    queue: Redis,
    function: str,
    *args: Any,
    job_id: str | None = None,
    queue_name: str = DEFAULT_QUEUE_NAME,
    layout: QueueLayout | None = None,
) -> str | None:
    """Enqueue one job; returns its id, or None when a job with ``job_id`` already exists.
    ``JobHandle(queue, layout, id)`` then follows it (status, result, abort)."""
    jid = job_id or uuid.uuid4().hex
    done = await enqueue_jobs(queue, [(function, args, jid)], queue_name=queue_name, layout=layout)
    return jid if done[0] else None


async def enqueue(
    queue: Redis,
    function: str,
    *args: Any,
    layout: QueueLayout | None = None,
    job_id: str | None = None,
) -> JobHandle | None:
    """Enqueue one job and return its handle (None when ``job_id`` already exists)."""
    where = queue_layout(layout)
    jid = await enqueue_job(queue, function, *args, job_id=job_id, layout=where)
    return None if jid is None else JobHandle(queue, where, jid)


async def enqueue_update(
    queue: Redis,
    update: ProgressUpdate,
    *,
    queue_name: str = DEFAULT_QUEUE_NAME,
    layout: QueueLayout | None = None,
) -> str | None:
    """One ``update_progress`` job (no coalescing: prefer ``ProgressPublisher``)."""
    payload = update.model_dump(mode="json")
    return await enqueue_job(queue, UPDATE_FUNCTION, payload, queue_name=queue_name, layout=layout)


async def enqueue_update_batch(
    queue: Redis,
    updates: Sequence[ProgressUpdate],
    *,
    queue_name: str = DEFAULT_QUEUE_NAME,
    layout: QueueLayout | None = None,
) -> str | None:
    """One ``update_progress_batch`` job carrying ``updates``."""
    payload = [u.model_dump(mode="json") for u in updates]
    return await enqueue_job(queue, BATCH_FUNCTION, payload, queue_name=queue_name, layout=layout)


def as_update(value: ProgressUpdate | Mapping[str, Any]) -> ProgressUpdate:
    """Validate a producer's update; raises ``InvalidPayloadError`` with the reason."""
    if isinstance(value, ProgressUpdate):
        return value
    try:
        return ProgressUpdate.model_validate(value)
    except ValidationError as exc:
        raise InvalidPayloadError(f"invalid progress update: {describe(exc)}") from exc


def describe(exc: ValidationError, limit: int = 5) -> str:
    """A one-line summary of a validation error: ``field: message; ...``."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "payload"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class ProgressPublisher:
    """Publishes progress with coalescing: at most one pending apply job per download.

    ``publish`` stores the update in its download's pending update (a newer seq replaces an older
    one, never the reverse) and enqueues a drain job only when its shard has none scheduled.
    Every drain applies every pending update of its shard, so after producers stop and the queue
    drains, each download holds its highest-seq update (docs/progress.md).

    ``queue`` is the client of the store holding the job queue (default: the cache's);
    ``layout`` its key layout (default: ARQ's, named ``queue_name``).
    """

    def __init__(
        self,
        cache: CacheManager,
        queue: Redis | None = None,
        *,
        queue_name: str = DEFAULT_QUEUE_NAME,
        layout: QueueLayout | None = None,
    ) -> None:
        self.cache = cache
        self.queue = queue if queue is not None else cache.client
        self.layout = queue_layout(layout, queue_name)
        self.queue_name = self.layout.name
        self._drains_to_enqueue: dict[str, int] = {}
        self.enqueued = 0

    async def publish(self, update: ProgressUpdate | Mapping[str, Any]) -> PublishOutcome:
        """Publish one update (one round trip; two when a drain job must be enqueued)."""
        return (await self.publish_many([update]))[0]

    async def publish_many(
        self, updates: Sequence[ProgressUpdate | Mapping[str, Any]]
    ) -> list[PublishOutcome]:
        """Publish many updates: one pipelined round trip, plus one to enqueue drain jobs."""
        valid = [as_update(u) for u in updates]
        try:
            results = await self.cache.download.publish_many(valid)
        except CacheError as exc:
            raise PublishError(f"could not store {len(valid)} progress update(s): {exc}") from exc
        for result in results:
            if result.drain_id is not None:
                self._drains_to_enqueue[result.drain_id] = result.shard
        await self._enqueue_owed()
        return [r.outcome for r in results]

    async def repair(self, *, lease_ms: int | None = None) -> int:
        """Make sure every shard with pending updates has a drain job; returns how many were
        enqueued. Run it periodically (``repair_pending_progress``) and after a crash."""
        self._drains_to_enqueue.update(await self.cache.download.schedule_drains(lease_ms=lease_ms))
        owed = len(self._drains_to_enqueue)
        await self._enqueue_owed()
        return owed

    async def _enqueue_owed(self) -> None:
        """Enqueue the drain jobs this publisher was handed; kept for the next call on failure."""
        if not self._drains_to_enqueue:
            return
        owed = dict(self._drains_to_enqueue)
        jobs: list[JobSpec] = [(DRAIN_FUNCTION, [shard], jid) for jid, shard in owed.items()]
        try:
            await enqueue_jobs(self.queue, jobs, layout=self.layout)
        except CacheError as exc:
            raise PublishError(
                f"stored the update(s) but could not enqueue {len(jobs)} drain job(s) "
                f"(retried on the next publish): {exc}"
            ) from exc
        for jid in owed:
            self._drains_to_enqueue.pop(jid, None)
        self.enqueued += len(owed)
