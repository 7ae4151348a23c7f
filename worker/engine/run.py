"""One claimed job's run: ARQ's ``run_job`` without its first round trip, deciding the outcome.

ARQ's ``run_job`` (arq 0.28) starts with a transaction that reads the record, counts the try
and takes the abort mark; the batch claim did all of that, so the run starts from ``Claimed``.
The rest follows ARQ step by step (expired / undecodable / aborted-before-start / unknown
function / tries exceeded fail the job; ``Retry`` and cancellation retry it; an abort fails it
as cancelled; the result record is ARQ's), with three differences:

- the outcome ("complete", "failed", "retried", "cancelled") is decided here and handed to the
  hooks as ``ctx["outcome"]`` (metrics record it through ``WorkerMetrics``), instead of being
  guessed from which of ARQ's counters moved;
- the per-job log lines are formatted only when ``arq.worker`` logs at INFO;
- the finish goes to the worker's batch finish (``worker.engine.finish``).
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import Any

from arq.constants import keep_cronjob_progress, retry_key_prefix
from arq.jobs import SerializationError, deserialize_job_raw, serialize_result
from arq.utils import args_to_string, ms_to_datetime, timestamp_ms, truncate
from arq.worker import JobExecutionFailed, Retry, RetryJob, Worker

from worker.engine.claim import RETRY_TTL_S, Claimed

logger = logging.getLogger("arq.worker")  # ARQ's own per-job lines, unchanged
_NO_RESULT = object()
RUN_TOKEN: ContextVar[tuple[str, bytes] | None] = ContextVar("seen_run_token", default=None)
"""(job id, token) of the run the current task belongs to (its finish and hooks inherit it),
so a late finish of an older run can never use the token of a newer run of the same job."""


async def run_claimed(worker: Worker, claimed: Claimed) -> None:
    """Run one claimed job to its end (ARQ's ``run_job`` from its second step)."""
    job_id, score, job_try = claimed.job_id, claimed.score, claimed.job_try
    RUN_TOKEN.set((job_id, claimed.token))
    start_ms = timestamp_ms()
    function_name, enqueue_time_ms = "<unknown>", 0
    args: tuple[Any, ...] = ()
    kwargs: dict[Any, Any] = {}

    async def job_failed(exc: BaseException) -> None:
        worker.jobs_failed += 1
        result_data_ = serialize_result(
            function=function_name,
            args=args,
            kwargs=kwargs,
            job_try=job_try,
            enqueue_time_ms=enqueue_time_ms,
            success=False,
            result=exc,
            start_ms=start_ms,
            finished_ms=timestamp_ms(),
            ref=f"{job_id}:{function_name}",
            serializer=worker.job_serializer,
            queue_name=worker.queue_name,
            job_id=job_id,
        )
        await asyncio.shield(worker.finish_failed_job(job_id, result_data_))

    if claimed.record is None:
        logger.warning("job %s expired", job_id)
        return await job_failed(JobExecutionFailed("job expired"))
    try:
        function_name, args, kwargs, enqueue_job_try, enqueue_time_ms = deserialize_job_raw(
            claimed.record, deserializer=worker.job_deserializer
        )
    except SerializationError as e:
        logger.exception("deserializing job %s failed", job_id)
        return await job_failed(e)

    if claimed.aborted:
        t = (timestamp_ms() - enqueue_time_ms) / 1000
        logger.info("%6.2fs ⊘ %s:%s aborted before start", t, job_id, function_name)
        return await job_failed(asyncio.CancelledError())

    function = worker.functions.get(function_name)
    if function is None:
        logger.warning("job %s, function %r not found", job_id, function_name)
        return await job_failed(JobExecutionFailed(f"function {function_name!r} not found"))

    if hasattr(function, "next_run"):  # a cron job
        ref = function_name
        keep_in_progress: float | None = keep_cronjob_progress
    else:
        ref = f"{job_id}:{function_name}"
        keep_in_progress = None

    if enqueue_job_try and enqueue_job_try > job_try:
        job_try = enqueue_job_try
        await worker.pool.setex(retry_key_prefix + job_id, RETRY_TTL_S, str(job_try))

    max_tries = worker.max_tries if function.max_tries is None else function.max_tries
    if job_try > max_tries:
        t = (timestamp_ms() - enqueue_time_ms) / 1000
        logger.warning("%6.2fs ! %s max retries %d exceeded", t, ref, max_tries)
        worker.jobs_failed += 1
        result_data = serialize_result(
            function_name,
            args,
            kwargs,
            job_try,
            enqueue_time_ms,
            False,
            JobExecutionFailed(f"max {max_tries} retries exceeded"),
            start_ms,
            timestamp_ms(),
            ref,
            worker.queue_name,
            job_id=job_id,
            serializer=worker.job_serializer,
        )
        return await asyncio.shield(worker.finish_failed_job(job_id, result_data))

    result: Any = _NO_RESULT
    finish = False
    timeout_s = worker.job_timeout_s if function.timeout_s is None else function.timeout_s
    incr_score: int | None = None
    ctx = {
        **worker.ctx,
        "job_id": job_id,
        "job_try": job_try,
        "enqueue_time": ms_to_datetime(enqueue_time_ms),
        "score": score,
    }
    if worker.on_job_start:
        await worker.on_job_start(ctx)

    start_ms = timestamp_ms()
    success = False
    info = logger.isEnabledFor(logging.INFO)
    outcome = "failed"
    exc_extra: Any = None
    try:
        if info:
            extra = f" try={job_try}" if job_try > 1 else ""
            if (start_ms - score) > 1200:
                extra += f" delayed={(start_ms - score) / 1000:0.2f}s"
            s = args_to_string(args, kwargs)
            logger.info("%6.2fs → %s(%s)%s", (start_ms - enqueue_time_ms) / 1000, ref, s, extra)
        task = worker.loop.create_task(function.coroutine(ctx, *args, **kwargs))
        worker.job_tasks[job_id] = task
        try:
            result = await asyncio.wait_for(task, timeout_s)
        except (Exception, asyncio.CancelledError) as e:
            exc_extra = getattr(e, "extra", None)
            if callable(exc_extra):
                exc_extra = exc_extra()
            raise
        finally:
            del worker.job_tasks[job_id]
    except (Exception, asyncio.CancelledError) as e:
        finished_ms = timestamp_ms()
        t = (finished_ms - start_ms) / 1000
        if worker.retry_jobs and isinstance(e, Retry):
            incr_score = e.defer_score
            logger.info("%6.2fs ↻ %s retrying job in %0.2fs", t, ref, (e.defer_score or 0) / 1000)
            if e.defer_score:
                incr_score = e.defer_score + (timestamp_ms() - score)
            worker.jobs_retried += 1
            outcome = "retried"
        elif job_id in worker.aborting_tasks and isinstance(e, asyncio.CancelledError):
            logger.info("%6.2fs ⊘ %s aborted", t, ref)
            result = e
            finish = True
            worker.aborting_tasks.remove(job_id)
            worker.jobs_failed += 1
            outcome = "cancelled"
        elif worker.retry_jobs and isinstance(e, asyncio.CancelledError | RetryJob):
            logger.info("%6.2fs ↻ %s cancelled, will be run again", t, ref)
            worker.jobs_retried += 1
            outcome = "retried"
        else:
            logger.exception(
                "%6.2fs ! %s failed, %s: %s",
                t,
                ref,
                e.__class__.__name__,
                e,
                extra={"extra": exc_extra},
            )
            result = e
            finish = True
            worker.jobs_failed += 1
    else:
        success = True
        finished_ms = timestamp_ms()
        if info:
            shown = "" if result is None or not worker.log_results else truncate(repr(result))
            logger.info("%6.2fs ← %s ● %s", (finished_ms - start_ms) / 1000, ref, shown)
        finish = True
        worker.jobs_complete += 1
        outcome = "complete"

    keep_result_forever = (
        worker.keep_result_forever
        if function.keep_result_forever is None
        else function.keep_result_forever
    )
    result_timeout_s = (
        worker.keep_result_s if function.keep_result_s is None else function.keep_result_s
    )
    result_data = None
    if result is not _NO_RESULT and (keep_result_forever or result_timeout_s > 0):
        result_data = serialize_result(
            function_name,
            args,
            kwargs,
            job_try,
            enqueue_time_ms,
            success,
            result,
            start_ms,
            finished_ms,
            ref,
            worker.queue_name,
            job_id=job_id,
            serializer=worker.job_serializer,
        )

    ctx["outcome"] = outcome
    if worker.on_job_end:
        await worker.on_job_end(ctx)

    await asyncio.shield(
        worker.finish_job(
            job_id,
            finish,
            result_data,
            result_timeout_s,
            keep_result_forever,
            incr_score,
            keep_in_progress,
        )
    )

    if worker.after_job_end:
        await worker.after_job_end(ctx)
