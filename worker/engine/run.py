"""One job's run: ARQ's rules for what a job does and how it ends, decided in one place.

The rules are ARQ's ``run_job`` (arq 0.28), kept so ``Job.result()``/``status()`` and producers
see no difference: a missing record fails the job as expired; an invalid record, an unknown
function or an unusable key fails it (and, unlike ARQ, dead-letters it with the reason); a job
aborted before it started fails as cancelled; one past its ``max_tries`` fails; ``Retry``
retries it after its deferral; a cancellation (the worker stopping, the lease lost) retries it;
an abort while it runs ends it as cancelled; a timeout fails it with ``TimeoutError``; anything
else it raises fails it; otherwise it is complete. Differences, each on purpose:

- the outcome is decided here and reported (``EngineObserver``); nothing is inferred from
  counters;
- a run that failed only because the store refused writes (out of memory) gives its try back
  and is retried after the store-full backoff, so a store hovering at its limit cannot use up
  a job's tries (ARQ would count each such try);
- at most one log line per job, and none for a job that completed unless ``log.jobs = "all"``
  (failures, retries, cancellations and dead letters always);
- the body runs on one of the engine's runners (``worker.engine.runners``), in a context of its
  own, and its timeout is the engine's one timer.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from arq.worker import JobExecutionFailed, Retry, RetryJob

from cache.clock import wall_ms
from cache.errors import CacheOutOfMemoryError, is_out_of_memory
from jobs.outcome import Outcome
from jobs.schedule import scheduled_ms
from jobs.serializer import InvalidJobRecordError, parse_record
from worker.engine.finish import KEEP_TRIES, Finish
from worker.engine.functions import KEEP_PERIODIC_LEASE_MS, JobFunction
from worker.engine.job import Cancel, Job, Phase
from worker.engine.records import JobRecord, read_record, result_record
from worker.engine.runners import Runner, in_context
from worker.engine.tracing import JobTracing
from worker.outage import is_store_outage

log = logging.getLogger("seen.worker.jobs")

UNKNOWN = "<unknown>"


class EngineObserver(Protocol):
    """Who hears of each job (the worker's metrics); called on the hot path, so cheap."""

    def job_started(self, function: str, queue_wait_s: float) -> None: ...

    def job_ran(
        self,
        function: str,
        seconds: float,
        *,
        error: BaseException | None,
        scheduled_outcome: str | None,
    ) -> None:
        """The body ended: ``error`` it raised (None on success), and for a scheduled run of
        a periodic job how the run ended (``ran``, ``failed``, ``handed_back`` or what the job
        left in ``ctx["run_outcome"]``); None for any other job."""

    def job_ended(self, function: str, outcome: Outcome) -> None: ...


class DeadLetters(Protocol):
    """Where jobs that cannot run are kept with their reason (``jobs.deadletter``)."""

    async def letter(
        self, job_id: str, function: str, reason: str, payload: Any, job_try: int
    ) -> None: ...


Settle = Callable[[Job, Outcome, Finish | None], None]
"""Hands a finished run to the engine: its outcome and its finish (None: nothing to write,
the lease is gone or left to expire)."""


def store_full(exc: BaseException) -> bool:
    """Did ``exc`` (or what it was raised from) come from a store refusing writes for lack of
    memory? A job's ``Retry`` raised *from* such an error counts too."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, CacheOutOfMemoryError) or is_out_of_memory(current):
            return True
        current = current.__cause__
    return False


class JobRun:
    """Runs claimed jobs on runners (``run``); one per engine."""

    def __init__(
        self,
        *,
        functions: Mapping[str, JobFunction],
        context: Mapping[str, Any],
        observer: EngineObserver,
        settle: Settle,
        dead_letters: DeadLetters | None,
        queue_name: str,
        failed_result_ms: int | None,
        log_successes: bool,
        arm: Callable[[float], None],
        store_full_delay: Callable[[], float],
        tracing: JobTracing | None = None,
    ) -> None:
        self.functions = functions
        self.context = context
        self.observer = observer
        self.settle = settle
        self.dead_letters = dead_letters
        self.queue_name = queue_name
        self.failed_result_ms = failed_result_ms
        """Result TTL of a job that fails before it runs (ARQ: the worker's ``keep_result``)."""
        self.log_successes = log_successes
        self.arm = arm
        self.store_full_delay = store_full_delay
        self.tracing = tracing
        """Spans of traced jobs (``worker.engine.tracing``); None: tracing is off."""
        self.loop = asyncio.get_running_loop()

    async def run(self, job: Job, runner: Runner) -> None:
        """Run ``job`` to its end on ``runner`` and hand it to ``settle``."""
        if job.lost is not None:
            self.settle(job, Outcome.STALE, None)  # lost while it waited: its holder runs it
            return
        start_ms = wall_ms()
        if job.problem is not None:
            await self._unrunnable(job, start_ms, job.problem, None, letter=True)
            return
        if job.record is None:
            log.warning("job %s expired (no record)", job.job_id)
            await self._unrunnable(job, start_ms, "job expired", None, letter=False)
            return
        try:
            record = read_record(job.record)
        except InvalidJobRecordError as exc:
            await self._unrunnable(job, start_ms, str(exc), None, letter=True, error=exc)
            return
        job.function = record.function
        if self.tracing is not None:
            self.tracing.start(job, record, record.function in self.functions)
        if job.aborted:
            log.info("job %s %s aborted before it started", job.job_id, record.function)
            self._fail_before_run(
                job, record, start_ms, asyncio.CancelledError(), Outcome.CANCELLED
            )
            return
        function = self.functions.get(record.function)
        if function is None:
            reason = f"function {record.function!r} not found"
            await self._unrunnable(job, start_ms, reason, record, letter=True)
            return
        job_try = job.job_try
        retry_to = KEEP_TRIES
        if record.tries and record.tries > job_try:
            job_try = retry_to = record.tries  # the producer says more tries were made
        if job_try > function.max_tries:
            log.warning(
                "job %s %s failed: max %d tries exceeded",
                job.job_id,
                function.name,
                function.max_tries,
            )
            error = JobExecutionFailed(f"max {function.max_tries} retries exceeded")
            self._fail_before_run(job, record, start_ms, error, Outcome.FAILED, job_try)
            return
        await self._body(job, runner, record, function, job_try, retry_to)

    async def _body(
        self,
        job: Job,
        runner: Runner,
        record: JobRecord,
        function: JobFunction,
        job_try: int,
        retry_to: int,
    ) -> None:
        ctx = dict(self.context)
        ctx["job_id"] = job.job_id
        ctx["job_try"] = job_try
        ctx["enqueue_time"] = datetime.fromtimestamp(record.enqueue_ms / 1000, tz=UTC)
        ctx["score"] = job.score
        ctx["lease"] = job
        if record.trace is not None:
            ctx["trace"] = record.trace
        context = contextvars.copy_context()
        if self.tracing is not None:
            self.tracing.enter(job, context, ctx)
        name = function.name
        start_ms = wall_ms()
        self.observer.job_started(name, max(0.0, (start_ms - job.score) / 1000))
        started = self.loop.time()
        job.phase = Phase.BODY
        runner.deadline = started + function.timeout_s
        self.arm(runner.deadline)
        runner.job = job
        result: Any = None
        error: BaseException | None = None
        try:
            coro = function.coroutine(ctx, *record.args, **record.kwargs)
            result = await in_context(coro, context)
        except BaseException as exc:
            error = exc
        finally:
            runner.job = None
            runner.deadline = float("inf")
        cancelled = job.cancelled
        task = runner.task
        if cancelled is not None and task is not None:
            while task.cancelling():  # the engine's own cancellations, consumed here
                task.uncancel()
        finish_ms = wall_ms()
        seconds = self.loop.time() - started
        scheduled: str | None = None
        if function.periodic and scheduled_ms(name, job.job_id) is not None:
            if error is None:
                scheduled = str(ctx.get("run_outcome", "ran"))
            elif isinstance(error, asyncio.CancelledError):
                scheduled = "handed_back"
            else:
                scheduled = "failed"
        self.observer.job_ran(name, seconds, error=error, scheduled_outcome=scheduled)
        outcome, value, incr, retry_to = self._decide(
            job, function, result, error, cancelled, seconds, retry_to, job_try
        )
        if self.tracing is not None:
            self.tracing.ran(job, job_try, value if outcome is Outcome.FAILED else None)
        if outcome is Outcome.COMPLETE and self.log_successes:
            log.info("job %s %s complete in %.3fs", job.job_id, name, seconds)
        over = outcome is not Outcome.RETRIED
        keep_lease = KEEP_PERIODIC_LEASE_MS if function.periodic else None
        data = None
        if over and function.keep_result_ms != 0:
            data = result_record(
                record=record,
                job_id=job.job_id,
                job_try=job_try,
                success=outcome is Outcome.COMPLETE,
                result=value,
                start_ms=start_ms,
                finish_ms=finish_ms,
                queue=self.queue_name,
            )
        finish = Finish(
            job.job_id,
            job.shard,
            job.token,
            keep_lease,
            over,
            data,
            function.keep_result_ms,
            incr,
            retry_to,
        )
        self.settle(job, outcome, finish)
        external = cancelled is None and task is not None and task.cancelling() > 0
        if isinstance(error, asyncio.CancelledError) and external:
            raise error  # not the engine's: the runner itself is being cancelled

    def _fail_before_run(
        self,
        job: Job,
        record: JobRecord | None,
        start_ms: int,
        error: BaseException,
        outcome: Outcome,
        job_try: int | None = None,
    ) -> None:
        """ARQ's ``finish_failed_job``: the job ends without running; lease, record and try
        counter go, the result (with the worker's ``keep_result``) stays."""
        if self.tracing is not None:
            self.tracing.ran(job, job.job_try if job_try is None else job_try, error)
        data = None
        if self.failed_result_ms != 0:
            data = result_record(
                record=record,
                job_id=job.job_id,
                job_try=job.job_try if job_try is None else job_try,
                success=False,
                result=error,
                start_ms=start_ms,
                finish_ms=wall_ms(),
                queue=self.queue_name,
            )
        finish = Finish(job.job_id, job.shard, job.token, None, True, data, self.failed_result_ms)
        self.settle(job, outcome, finish)

    async def _unrunnable(
        self,
        job: Job,
        start_ms: int,
        reason: str,
        record: JobRecord | None,
        *,
        letter: bool,
        error: BaseException | None = None,
    ) -> None:
        """Fail a job that cannot run (unusable key, invalid record, unknown function, no
        record); dead-letter it with ``reason`` when ``letter``."""
        if letter:
            log.warning("job %s failed and dead-lettered: %s", job.job_id, reason)
            if self.dead_letters is not None:
                payload = self._payload(job)
                function = record.function if record is not None else _function_of(payload)
                try:
                    await self.dead_letters.letter(
                        job.job_id, function, reason, payload, job.job_try
                    )
                except Exception as exc:
                    if is_store_outage(exc):  # the next try, after the lease, letters it
                        self.settle(job, Outcome.RETRIED, None)
                        return
                    log.exception(
                        "job %s: dead letter not written; it fails all the same", job.job_id
                    )
        failure: BaseException = error if error is not None else JobExecutionFailed(reason)
        self._fail_before_run(job, record, start_ms, failure, Outcome.FAILED)

    @staticmethod
    def _payload(job: Job) -> Any:
        """The record as the dead letter keeps it: its JSON, or its text."""
        if job.record is None:
            return None
        try:
            return parse_record(job.record)
        except InvalidJobRecordError:
            return job.record.decode("utf-8", errors="replace")

    def _decide(
        self,
        job: Job,
        function: JobFunction,
        result: Any,
        error: BaseException | None,
        cancelled: Cancel | None,
        seconds: float,
        retry_to: int,
        job_try: int,
    ) -> tuple[Outcome, Any, int, int]:
        """(outcome, what to write as the result, score increment in ms, try counter)."""
        name, job_id = function.name, job.job_id
        if error is None:
            return Outcome.COMPLETE, result, 0, retry_to
        if cancelled is Cancel.TIMEOUT and isinstance(error, asyncio.CancelledError):
            log.warning("job %s %s failed: timed out after %.1fs", job_id, name, seconds)
            return Outcome.FAILED, TimeoutError(), 0, retry_to
        if cancelled is Cancel.ABORT and isinstance(error, asyncio.CancelledError):
            log.info("job %s %s aborted after %.2fs", job_id, name, seconds)
            return Outcome.CANCELLED, error, 0, retry_to
        if store_full(error):
            delay = self.store_full_delay()
            log.warning(
                "job %s %s: the store refused writes (out of memory); try %d given back, "
                "retry in %.1fs",
                job_id,
                name,
                job_try,
                delay,
            )
            return Outcome.RETRIED, None, round(delay * 1000), max(0, job_try - 1)
        if isinstance(error, Retry):
            incr = error.defer_score or 0
            if incr:
                incr += wall_ms() - job.score  # due ``defer`` after now, as ARQ
            log.info(
                "job %s %s retrying in %.2fs (try %d/%d)%s",
                job_id,
                name,
                (error.defer_score or 0) / 1000,
                job_try,
                function.max_tries,
                f": {error.__cause__}" if error.__cause__ is not None else "",
            )
            return Outcome.RETRIED, None, incr, retry_to
        if isinstance(error, asyncio.CancelledError | RetryJob):
            why = cancelled.value if cancelled is not None else "cancelled"
            log.info("job %s %s cancelled (%s); it will run again", job_id, name, why)
            return Outcome.RETRIED, None, 0, retry_to
        log.error(
            "job %s %s failed after %.3fs (try %d/%d): %s: %s",
            job_id,
            name,
            seconds,
            job_try,
            function.max_tries,
            type(error).__name__,
            error,
            exc_info=error,
            extra={"extra": getattr(error, "extra", None)},
        )
        return Outcome.FAILED, error, 0, retry_to


def _function_of(payload: Any) -> str:
    """The function an unreadable record names, when it names one (for the dead letter)."""
    function = payload.get("f") if isinstance(payload, dict) else None
    return function if isinstance(function, str) and function else UNKNOWN
