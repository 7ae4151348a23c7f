"""``WorkerMetrics``: the Prometheus series of one worker process, in its own registry.

Per-job series (outcome, duration, queue wait, in progress) are recorded by the ARQ hooks in
``worker.app``, and scheduled runs of periodic jobs (``seen_cron_runs_total``) by the job
wrapper; totals the worker or its cache manager already counts (lost leases, poll errors,
store outages and errors, progress applies and coalescing, cache reads, locks, rate limits)
are read from their owners at scrape time by ``worker.http.series.Totals``, so there is one
count of each thing, not two. Labels are bounded (``worker.http.series``): function and cron
names come from the worker's own lists (anything else is ``unknown``); never a job, download,
user or worker id. Every labelled series exists at zero from start-up.
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections import Counter as Tally
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis import exceptions as redis_exc

from cache.clock import wall_ms
from cache.errors import CacheConnectionError, CacheResponseError, store_error_kind
from jobs.schedule import scheduled_ms
from worker.http.series import (
    BUCKETS,
    CRON_OUTCOMES,
    JOB_OUTCOMES,
    UNKNOWN,
    Sources,
    Totals,
)

__all__ = ["BUCKETS", "JOB_OUTCOMES", "UNKNOWN", "Sources", "WorkerMetrics", "build_version"]


def build_version() -> str:
    try:
        return metadata.version("seen-worker")
    except metadata.PackageNotFoundError:
        return UNKNOWN


def store_failure(exc: BaseException) -> BaseException | None:
    """The store failure behind ``exc`` (itself or a cause, e.g. the ``Retry`` a job raised
    when the store was away), or None when the job failed for another reason."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, CacheConnectionError | CacheResponseError | redis_exc.RedisError):
            return current
        current = current.__cause__  # raised *from* it: an error met while handling one is not
    return None


class WorkerMetrics:
    """The registry and series of one worker process; ``functions`` and ``crons`` (the
    periodic jobs' names) bound the label values."""

    def __init__(
        self, functions: Iterable[str], sources: Sources, crons: Iterable[str] = ()
    ) -> None:
        self.functions = frozenset(functions)
        self.crons = frozenset(crons)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Counter(
            "seen_jobs", "Jobs ended, by function and outcome", ["function", "outcome"], registry=r
        )
        self.duration = Histogram(
            "seen_job_duration_seconds",
            "Time a job's function ran",
            ["function"],
            buckets=BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "seen_job_queue_wait_seconds",
            "Time from when a job was due (its queue score) to its start",
            ["function"],
            buckets=BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "seen_jobs_in_progress", "Jobs running now", ["function"], registry=r
        )
        info = Gauge(
            "seen_build_info", "Always 1; labels say what runs", ["version", "python"], registry=r
        )
        info.labels(build_version(), platform.python_version()).set(1)
        # The labelled series, made once: ``labels()`` takes a lock and builds a tuple on
        # every call, a cost each job paid four times.
        self._ended: dict[tuple[str, str], Any] = {}
        self._series: dict[str, tuple[Any, Any, Any]] = {}
        for name in sorted(self.functions | {UNKNOWN}):
            for outcome in JOB_OUTCOMES:
                self._ended[name, outcome] = self.jobs.labels(name, outcome)
            self._series[name] = (
                self.in_progress.labels(name),
                self.queue_wait.labels(name),
                self.duration.labels(name),
            )
        self.cron_runs = Counter(
            "seen_cron_runs",
            "Scheduled runs of periodic jobs, by how they ended",
            ["cron", "outcome"],
            registry=r,
        )
        for cron in sorted(self.crons):
            for outcome in CRON_OUTCOMES:
                self.cron_runs.labels(cron, outcome)
        self.job_store_errors: Tally[str] = Tally()
        """Store failures job bodies raised (also behind a ``Retry``), by kind."""
        r.register(Totals(sources, self.job_store_errors))
        self._started: dict[str, tuple[str, float]] = {}

    def function(self, name: object) -> str:
        return name if isinstance(name, str) and name in self.functions else UNKNOWN

    def job_started(self, job_id: str, function: object, due_ms: object) -> None:
        name = self.function(function)
        self._started[job_id] = (name, time.perf_counter())
        in_progress, queue_wait, _ = self._series[name]
        in_progress.inc()
        if isinstance(due_ms, int | float) and not isinstance(due_ms, bool):
            wait = (wall_ms() - due_ms) / 1000
            queue_wait.observe(max(0.0, wait))

    def job_ran(self, job_id: str) -> str:
        """The function ended (before its finish is committed); returns its label."""
        name, started = self._started.pop(job_id, (UNKNOWN, None))
        if started is not None:
            in_progress, _, duration = self._series[name]
            in_progress.dec()
            duration.observe(time.perf_counter() - started)
        return name

    def wrap(self, name: str, coroutine: Any, *, cron: bool = False) -> Any:
        """A job coroutine that records its start (queue wait, in progress), its run time and
        the store failures it raised; the outcome is recorded by the ARQ hooks, which see
        ARQ's verdict. With ``cron``, a scheduled run (ARQ's cron id) is also counted in
        ``seen_cron_runs_total`` (``ran``, ``failed``, ``handed_back`` when cancelled, or what
        the run left in ``ctx["run_outcome"]``: ``skipped``, ``deferred``)."""

        async def job(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
            job_id = str(ctx.get("job_id"))
            ctx["function"] = name
            scheduled = cron and scheduled_ms(name, job_id) is not None
            self.job_started(job_id, name, ctx.get("score"))
            outcome = "failed"
            try:
                result = await coroutine(ctx, *args, **kwargs)
                outcome = ctx.get("run_outcome", "ran")
                return result
            except asyncio.CancelledError:
                outcome = "handed_back"
                raise
            except Exception as exc:
                failure = store_failure(exc)
                if failure is not None:
                    self.job_store_errors[store_error_kind(failure)] += 1
                raise
            finally:
                self.job_ran(job_id)
                if scheduled:
                    self.cron_ended(name, outcome)

        job.__qualname__ = getattr(coroutine, "__qualname__", name)
        job.__name__ = name
        job.__wrapped__ = coroutine  # type: ignore[attr-defined]
        return job

    def job_ended(self, function: object, outcome: str) -> None:
        name = self.function(function)
        series = self._ended.get((name, outcome))
        if series is None:
            series = self._ended[name, outcome] = self.jobs.labels(name, outcome)
        series.inc()

    def cron_ended(self, cron: str, outcome: str) -> None:
        if cron in self.crons and outcome in CRON_OUTCOMES:
            self.cron_runs.labels(cron, outcome).inc()
