"""The producer side: enqueue jobs, and ``ProgressPublisher`` (coalescing progress).

``enqueue_jobs`` writes exactly what ``ArqRedis.enqueue_job`` writes (the JSON job record under
the job's key with a one-day expiry plus any deferral, and the id in its queue's sorted set,
scored by the time it may start) with one script call per queue shard (``queue_enqueue.lua``),
all in one round trip, instead of ARQ's three round trips per job. It keeps ARQ's rule that an
id is refused while a job or a result with that id exists (de-duplication by id). The keys come
from the queue's layout (``jobs.wire.layout``): ARQ's own (``arq:job:<id>`` and the queue
``name``), or the job's shard's ``{<name>:<i>}:job:<id>`` and ``{<name>:<i>}:queue``, so each
shard's call touches one hashtag: one slot on a Redis Cluster, one thread on Dragonfly.
Called inside an OpenTelemetry span, the records carry that span's W3C trace context (``tc``,
``jobs.wire.trace``), so a worker that traces continues the caller's trace.

Every function takes the queue's layout as ``layout=`` (``QueueLayout``; the worker's is
``Settings.queue.key_layout()``); ``queue_name=`` alone still means ARQ's layout with that
name. No ARQ is needed: the record is ARQ's, written here (a test checks it against ARQ's).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.download import ProgressUpdate, PublishOutcome, new_drain_id
from cache.errors import CacheError
from cache.keys import validate_name
from cache.manager import CacheManager
from cache.scripts import ScriptArg, ScriptCall, ScriptRunner
from jobs.errors import InvalidPayloadError, PublishError
from jobs.handle import JobHandle
from jobs.serializer import serialize_canonical
from jobs.wire.layout import DEFAULT_QUEUE_NAME, JOB_EXPIRY_EXTRA_MS, QueueLayout, QueueShard
from jobs.wire.trace import TRACE_FIELD, current_trace_context

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
    trace: Mapping[str, str] | None = None,
) -> bytes:
    """ARQ's job record as JSON: ``{"t","f","a","k","et"}``, plus ``"tc"`` last when ``trace``
    (a checked W3C trace context, ``jobs.wire.trace``) is given (docs/wire-format.md)."""
    stamp = enqueue_ms if enqueue_ms is not None else wall_ms()
    record: dict[str, Any] = {
        "t": None,
        "f": function,
        "a": list(args),
        "k": dict(kwargs or {}),
        "et": stamp,
    }
    if trace:
        record[TRACE_FIELD] = dict(trace)
    return serialize_canonical(record)


async def enqueue_jobs(
    queue: Redis,
    jobs: Sequence[JobSpec],
    *,
    queue_name: str = DEFAULT_QUEUE_NAME,
    layout: QueueLayout | None = None,
    defer_until_ms: int | None = None,
    scripts: ScriptRunner | None = None,
) -> list[bool]:
    """Enqueue several jobs in one round trip; per job, False when its id is taken (a job or a
    result with that id exists). ``layout`` says where the queue's keys are (default: ARQ's
    layout on ``queue_name``); ``defer_until_ms`` is when they may start (default: now);
    ``scripts`` is the caller's runner on ``queue`` (default: a new one)."""
    if not jobs:
        return []
    where = queue_layout(layout, queue_name)
    for _, _, job_id in jobs:
        validate_name(job_id, "job id")
    now = wall_ms()
    trace = current_trace_context()  # the caller's span, when OpenTelemetry is in use
    score = now if defer_until_ms is None else max(int(defer_until_ms), 1)
    ttl = max(0, score - now) + JOB_EXPIRY_EXTRA_MS
    groups: dict[int, tuple[QueueShard, list[int]]] = {}
    for position, (_, _, job_id) in enumerate(jobs):
        shard = where.for_job(job_id)
        groups.setdefault(shard.index, (shard, []))[1].append(position)
    calls: list[ScriptCall] = []
    for shard, positions in groups.values():
        keys = [shard.queue]
        args: list[ScriptArg] = []
        for position in positions:
            function, fargs, job_id = jobs[position]
            keys += (shard.job(job_id), shard.result(job_id))
            args += (job_id, job_record(function, fargs, now, trace=trace), score, ttl)
        calls.append((keys, args))
    runner = scripts if scripts is not None else ScriptRunner(queue)
    replies = await runner.run_many("queue_enqueue", calls, single_hashtag=where.kind == "sharded")
    done = [False] * len(jobs)
    for (_, positions), reply in zip(groups.values(), replies, strict=True):
        for position, status in zip(positions, reply, strict=True):
            done[position] = status == 1
    return done


async def enqueue_job(
    queue: Redis,
    function: str,
    *args: Any,
    job_id: str | None = None,
    queue_name: str = DEFAULT_QUEUE_NAME,
    layout: QueueLayout | None = None,
    defer_until_ms: int | None = None,
) -> str | None:
    """Enqueue one job; returns its id, or None when its id is taken.
    ``JobHandle(queue, layout, id)`` then follows it (status, result, abort)."""
    jid = job_id or uuid.uuid4().hex
    done = await enqueue_jobs(
        queue,
        [(function, args, jid)],
        queue_name=queue_name,
        layout=layout,
        defer_until_ms=defer_until_ms,
    )
    return jid if done[0] else None


async def enqueue(
    queue: Redis,
    function: str,
    *args: Any,
    layout: QueueLayout | None = None,
    job_id: str | None = None,
    defer_until_ms: int | None = None,
) -> JobHandle | None:
    """Enqueue one job and return its handle (None when ``job_id`` is taken)."""
    where = queue_layout(layout)
    jid = await enqueue_job(
        queue, function, *args, job_id=job_id, layout=where, defer_until_ms=defer_until_ms
    )
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
            await enqueue_jobs(self.queue, jobs, layout=self.layout)
        except CacheError as exc:
            raise PublishError(
                f"stored the update(s) but could not enqueue {len(jobs)} drain job(s) "
                f"(retried on the next publish): {exc}"
            ) from exc
        for jid in owed:
            self._drains_to_enqueue.pop(jid, None)
        self.enqueued += len(owed)
