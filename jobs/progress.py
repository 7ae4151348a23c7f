"""ARQ jobs of the progress pipeline.

- ``update_progress(update)``: apply one update (JSON object, docs/wire-format.md); the updates
  of ``update_progress`` jobs running at the same moment are applied together in one round
  trip (``progress_applier``), so a producer that only knows section 3 gets the batch speed.
- ``update_progress_batch(updates)``: apply a list of updates in one round trip.
- ``apply_pending_progress(shard)``: the coalescing drain job ``ProgressPublisher`` enqueues.
- ``repair_pending_progress()``: reschedule drains lost to a producer crash (run every
  ``maintenance.repair_every`` seconds on every worker: it is idempotent, so it claims no slot).

Each is declared once, here, with ``@job``/``@periodic`` (``jobs.registry``); the names are the
producer's constants (``jobs.client``), so the producer needs no worker code to name them.

Payloads are validated with pydantic. An invalid one fails its job at once (no ARQ retries:
ARQ only retries ``Retry`` and cancelled jobs), is logged with the reason and is pushed to the
dead-letter list; a batch still applies its valid updates. An update that meets a bad stored
key (``CorruptKeyError``: the apply script removed the key) is dead-lettered the same way with
the reason naming the key and fails its job with ``StoredStateError``; the others of its batch
are applied. A store that cannot be reached raises ``arq.worker.Retry`` with backoff: applying
is idempotent, so re-running is harmless. When the worker traces a job, its store writes are
spans (``jobs.spans``): the apply, the drain and the dead letters, with sizes and shard indexes
only.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from arq.worker import Retry
from pydantic import ValidationError

from cache.backoff import Backoff, Jitter
from cache.download import ApplyOutcome, ApplyResult, DownloadCache, ProgressUpdate
from cache.errors import CacheConnectionError, CacheOutOfMemoryError
from cache.microbatch import MicroBatcher
from jobs.client import (
    BATCH_FUNCTION,
    DRAIN_FUNCTION,
    REPAIR_FUNCTION,
    UPDATE_FUNCTION,
    ProgressPublisher,
    describe,
    enqueue_jobs,
)
from jobs.context import JobContext, queue_layout
from jobs.deadletter import DeadLetter, make_dead_letter, push_dead_letters
from jobs.errors import InvalidPayloadError, StoredStateError
from jobs.registry import FromSetting, job, periodic
from jobs.spans import BATCH_SIZE, DOWNLOAD_SHARD, store_write

log = logging.getLogger("seen.jobs.progress")

MAX_BATCH = 10_000
STORE_RETRY = Backoff(0.2, 10.0, jitter=Jitter.NONE)
"""ARQ retry delays of a job that found the store away: 0.2 s doubling per try, up to 10 s."""
"""Most updates one ``update_progress_batch`` job may carry."""


_APPLIERS: weakref.WeakKeyDictionary[DownloadCache, MicroBatcher[ProgressUpdate, ApplyResult]]
_APPLIERS = weakref.WeakKeyDictionary()


def progress_applier(download: DownloadCache) -> MicroBatcher[ProgressUpdate, ApplyResult]:
    """The batch apply ``update_progress`` jobs share: updates of jobs that run together go
    to the store in one round trip (``apply_many``), each job keeping its own outcome and its
    own error (a bad stored key of one download fails that job alone). Made on first use, one
    per download cache (no import-time state beyond this registry)."""
    applier = _APPLIERS.get(download)
    if applier is None:
        applier = MicroBatcher(download.apply_many)
        _APPLIERS[download] = applier
    return applier


@asynccontextmanager
async def _store_retry(ctx: JobContext) -> AsyncIterator[None]:
    """Turn an unreachable (or full) store into an ARQ retry with exponential backoff."""
    try:
        yield
    except (CacheConnectionError, CacheOutOfMemoryError) as exc:
        tries = int(ctx.get("job_try") or 1)
        delay = STORE_RETRY.delay(tries - 1)
        log.warning("job %s: store unavailable (%s); retry in %.1fs", ctx.get("job_id"), exc, delay)
        raise Retry(defer=delay) from exc


def _one_argument(function: str, args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    if len(args) == 1 and not kwargs:
        return args[0]
    if not args and set(kwargs) == {name}:
        return kwargs[name]
    raise ValueError(
        f"{function} takes exactly one argument ({name}); got {len(args)} positional "
        f"and keyword(s) {sorted(kwargs)}"
    )


async def _reject(
    ctx: JobContext,
    function: str,
    letters: Sequence[DeadLetter],
    summary: str,
    error: type[InvalidPayloadError | StoredStateError] = InvalidPayloadError,
) -> InvalidPayloadError | StoredStateError:
    """Log, dead-letter and build the error that fails the job."""
    job_id = ctx.get("job_id")
    log.warning(
        "job %s %s rejected: %s (dead-lettered %d)", job_id, function, summary, len(letters)
    )
    async with _store_retry(ctx):
        with store_write(ctx, "seen.dead_letter", **{BATCH_SIZE: len(letters)}):
            await push_dead_letters(ctx["cache"], letters)
    return error(f"{function}: {summary}", job_id=job_id, reason=summary)


def _letter(ctx: JobContext, function: str, reason: str, payload: Any) -> DeadLetter:
    manager = ctx["cache"]
    return make_dead_letter(
        manager,
        job_id=ctx.get("job_id"),
        function=function,
        reason=reason,
        payload=payload,
        job_try=ctx.get("job_try"),
    )


@job(name=UPDATE_FUNCTION, timeout=10)
async def update_progress(ctx: JobContext, *args: Any, **kwargs: Any) -> str:
    """Apply one progress update; returns the outcome (applied, stale, duplicate, final)."""
    try:
        raw = _one_argument(UPDATE_FUNCTION, args, kwargs, "update")
        update = ProgressUpdate.model_validate(raw)
    except (ValueError, ValidationError) as exc:
        reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        payload = {"args": list(args), "kwargs": kwargs}
        raise await _reject(
            ctx, UPDATE_FUNCTION, [_letter(ctx, UPDATE_FUNCTION, reason, payload)], reason
        ) from exc
    manager = ctx["cache"]
    async with _store_retry(ctx):
        with store_write(ctx, "seen.progress.apply", **{BATCH_SIZE: 1}):
            result = await progress_applier(manager.download).submit(update)
    refusal = _refusal(update, result)
    if refusal is not None:
        letter = _letter(ctx, UPDATE_FUNCTION, refusal, update.model_dump(mode="json"))
        kind = StoredStateError if result.error is not None else InvalidPayloadError
        raise await _reject(ctx, UPDATE_FUNCTION, [letter], refusal, kind)
    return result.outcome.name.lower()


def _refusal(update: ProgressUpdate, result: ApplyResult) -> str | None:
    """Why a valid update was not applied and must be dead-lettered (None: it was handled)."""
    if result.error is not None:
        return f"download {update.job_id}: {result.error}"
    if result.outcome is ApplyOutcome.REJECTED:
        return f"download {update.job_id} belongs to another user than {update.user_id}"
    return None


@job(name=BATCH_FUNCTION, timeout=60)
async def update_progress_batch(ctx: JobContext, *args: Any, **kwargs: Any) -> dict[str, int]:
    """Apply a list of updates in one round trip; returns counts per outcome.

    Invalid items are dead-lettered one by one; the valid ones are applied all the same and the
    job then fails naming the invalid indexes, so nothing valid is lost and nothing is hidden.
    """
    try:
        raw = _one_argument(BATCH_FUNCTION, args, kwargs, "updates")
        if not isinstance(raw, list):
            raise ValueError(f"updates must be a JSON array, got {type(raw).__name__}")
        if len(raw) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} updates per batch, got {len(raw)}")
    except ValueError as exc:
        payload = {"args": list(args), "kwargs": kwargs}
        letter = _letter(ctx, BATCH_FUNCTION, str(exc), payload)
        raise await _reject(ctx, BATCH_FUNCTION, [letter], str(exc)) from exc
    valid: list[ProgressUpdate] = []
    letters: list[DeadLetter] = []
    bad: list[str] = []
    for index, item in enumerate(raw):
        try:
            valid.append(ProgressUpdate.model_validate(item))
        except ValidationError as exc:
            reason = f"updates[{index}]: {describe(exc)}"
            bad.append(reason)
            letters.append(_letter(ctx, BATCH_FUNCTION, reason, item))
    manager = ctx["cache"]
    async with _store_retry(ctx):
        with store_write(ctx, "seen.progress.apply", **{BATCH_SIZE: len(valid)}):
            results = await manager.download.apply_many(valid)
    counts: dict[str, int] = {}
    corrupt = 0
    for update, result in zip(valid, results, strict=True):
        name = result.outcome.name.lower()
        counts[name] = counts.get(name, 0) + 1
        refusal = _refusal(update, result)
        if refusal is not None:
            corrupt += result.error is not None
            bad.append(refusal)
            letters.append(_letter(ctx, BATCH_FUNCTION, refusal, update.model_dump(mode="json")))
    if letters:
        summary = (
            f"{len(letters)} of {len(raw)} updates rejected ({'; '.join(bad[:3])}"
            f"{'; ...' if len(bad) > 3 else ''}); the other {len(raw) - len(letters)} were applied"
        )
        kind = StoredStateError if corrupt == len(letters) else InvalidPayloadError
        raise await _reject(ctx, BATCH_FUNCTION, letters, summary, kind)
    return counts


@job(name=DRAIN_FUNCTION, timeout=60, keep_result=0)
async def apply_pending_progress(ctx: JobContext, shard: Any) -> dict[str, Any]:
    """Drain job of one shard: apply every pending (coalesced) update of the shard."""
    manager = ctx["cache"]
    shards = manager.config.download.shards
    if not isinstance(shard, int) or isinstance(shard, bool) or not 0 <= shard < shards:
        reason = f"shard must be an integer in [0, {shards}), got {shard!r}"
        letter = _letter(ctx, DRAIN_FUNCTION, reason, {"shard": shard})
        raise await _reject(ctx, DRAIN_FUNCTION, [letter], reason)
    async with _store_retry(ctx):
        with store_write(ctx, "seen.progress.drain", **{DOWNLOAD_SHARD: shard}):
            report = await manager.download.drain(shard, str(ctx["job_id"]))
        if report.handoff_id is not None:
            spec = (DRAIN_FUNCTION, [shard], report.handoff_id)
            await enqueue_jobs(ctx["redis"], [spec], layout=queue_layout(ctx))
    if report.lost:
        # pending updates that were themselves unusable were dropped: say which, and why
        letters = [
            _letter(ctx, DRAIN_FUNCTION, reason, {"shard": shard, "download": download})
            for download, reason in report.lost.items()
        ]
        async with _store_retry(ctx):
            with store_write(ctx, "seen.dead_letter", **{BATCH_SIZE: len(letters)}):
                await push_dead_letters(manager, letters)
    return asdict(report)


# Idempotent (it only enqueues drains that are missing), so it needs no slot claim: a repeat
# across workers enqueues nothing more.
@periodic(
    FromSetting("maintenance.repair_every"),
    name=REPAIR_FUNCTION,
    once_per_slot=False,
    max_tries=1,
    keep_result=0,
)
async def repair_pending_progress(ctx: JobContext) -> int:
    """Enqueue a drain for every shard with pending updates whose drain is missing or older
    than ``download.pending_lease`` (a producer died between its put and its enqueue)."""
    publisher = ProgressPublisher(ctx["cache"], ctx["redis"], layout=queue_layout(ctx))
    async with _store_retry(ctx):
        return await publisher.repair()
