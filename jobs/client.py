"""The producer side: enqueue progress jobs, and ``ProgressPublisher`` (coalescing).

``enqueue_job`` writes exactly what ``ArqRedis.enqueue_job`` writes (the JSON job record under
``arq:job:<id>`` with a one-day expiry, and the id in the queue's sorted set) in one MULTI/EXEC
round trip instead of ARQ's three. ``SET NX`` + ``ZADD NX`` keep ARQ's rule that an id is
refused while its job exists. It ignores ARQ's result key, which only matters when re-using a
job id after its job finished: our drain ids are never re-used that way on purpose (see
docs/progress.md, "repair").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from arq.constants import default_queue_name, expires_extra_ms, job_key_prefix
from arq.jobs import serialize_job
from pydantic import ValidationError
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.download import ProgressUpdate, PublishOutcome, new_drain_id
from cache.errors import CacheError, translate_errors
from cache.keys import validate_name
from cache.manager import CacheManager
from jobs.errors import InvalidPayloadError, PublishError
from jobs.serializer import serialize

UPDATE_FUNCTION = "update_progress"
BATCH_FUNCTION = "update_progress_batch"
DRAIN_FUNCTION = "apply_pending_progress"
REPAIR_FUNCTION = "repair_pending_progress"

JobSpec = tuple[str, Sequence[Any], str]
"""(function, args, job id) of one job to enqueue."""


drain_job_id = new_drain_id
"""A fresh id for a shard's drain job; kept as an alias of ``cache.download.new_drain_id``,
the factory ``manager.download`` uses for every drain it schedules."""


def job_record(function: str, args: Sequence[Any], enqueue_ms: int | None = None) -> bytes:
    """ARQ's job record as JSON: ``{"t","f","a","k","et"}`` (docs/wire-format.md)."""
    stamp = enqueue_ms if enqueue_ms is not None else wall_ms()
    record: bytes = serialize_job(function, tuple(args), {}, None, stamp, serializer=serialize)
    return record


async def enqueue_jobs(
    queue: Redis, jobs: Sequence[JobSpec], *, queue_name: str = default_queue_name
) -> list[bool]:
    """Enqueue several jobs in one transaction; per job, False when its id already exists."""
    if not jobs:
        return []
    validate_name(queue_name, "queue name")
    for _, _, job_id in jobs:
        validate_name(job_id, "job id")
    now = wall_ms()
    with translate_errors(queue_name, operation="enqueue"):
        async with queue.pipeline(transaction=True) as tx:
            for function, args, job_id in jobs:
                tx.set(
                    job_key_prefix + job_id,
                    job_record(function, args, now),
                    px=expires_extra_ms,
                    nx=True,
                )
                tx.zadd(queue_name, {job_id: now}, nx=True)
            replies = await tx.execute()
    return [bool(r) for r in replies[0::2]]


async def enqueue_job(
    queue: Redis,
    function: str,
    *args: Any,
    job_id: str | None = None,
    queue_name: str = default_queue_name,
) -> str | None:
    """Enqueue one job; returns its id, or None when a job with ``job_id`` already exists."""
    jid = job_id or uuid.uuid4().hex
    done = await enqueue_jobs(queue, [(function, args, jid)], queue_name=queue_name)
    return jid if done[0] else None


async def enqueue_update(
    queue: Redis, update: ProgressUpdate, *, queue_name: str = default_queue_name
) -> str | None:
    """One ``update_progress`` job (no coalescing: prefer ``ProgressPublisher``)."""
    return await enqueue_job(
        queue, UPDATE_FUNCTION, update.model_dump(mode="json"), queue_name=queue_name
    )


async def enqueue_update_batch(
    queue: Redis, updates: Sequence[ProgressUpdate], *, queue_name: str = default_queue_name
) -> str | None:
    """One ``update_progress_batch`` job carrying ``updates``."""
    payload = [u.model_dump(mode="json") for u in updates]
    return await enqueue_job(queue, BATCH_FUNCTION, payload, queue_name=queue_name)


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

    ``queue`` is the client of the store holding ARQ's queue (default: the cache's).
    """

    def __init__(
        self,
        cache: CacheManager,
        queue: Redis | None = None,
        *,
        queue_name: str = default_queue_name,
    ) -> None:
        self.cache = cache
        self.queue = queue if queue is not None else cache.client
        self.queue_name = queue_name
        self._drains_to_enqueue: dict[str, int] = {}
        self.enqueued = 0

    async def publish(self, update: ProgressUpdate | Mapping[str, Any]) -> PublishOutcome:
        """Publish one update (one round trip; two when a drain job must be enqueued)."""
        return (await self.publish_many([update]))[0]

    async def publish_many(
        self, updates: Sequence[ProgressUpdate | Mapping[str, Any]]
    ) -> list[PublishOutcome]:
        """Publish many updates: one pipelined round trip, plus one to enqueue drain jobs.

        An update that met a bad stored key (``PublishOutcome.CORRUPT``: the key was removed)
        is not stored: the others are, their drain jobs are enqueued, and then
        ``PublishError`` names the bad keys. Publishing the same updates again is safe and
        stores the rest (an update already pending or applied is ignored)."""
        valid = [as_update(u) for u in updates]
        try:
            results = await self.cache.download.publish_many(valid)
        except CacheError as exc:
            raise PublishError(f"could not store {len(valid)} progress update(s): {exc}") from exc
        for result in results:
            if result.drain_id is not None:
                self._drains_to_enqueue[result.drain_id] = result.shard
        await self._enqueue_owed()
        errors = [r.error for r in results if r.error is not None]
        if errors:
            raise PublishError(
                f"{len(errors)} of {len(results)} progress update(s) not stored (publish them "
                f"again): {'; '.join(str(e) for e in errors[:3])}"
                f"{'; ...' if len(errors) > 3 else ''}"
            ) from errors[0]
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
            await enqueue_jobs(self.queue, jobs, queue_name=self.queue_name)
        except CacheError as exc:
            raise PublishError(
                f"stored the update(s) but could not enqueue {len(jobs)} drain job(s) "
                f"(retried on the next publish): {exc}"
            ) from exc
        for jid in owed:
            self._drains_to_enqueue.pop(jid, None)
        self.enqueued += len(owed)
