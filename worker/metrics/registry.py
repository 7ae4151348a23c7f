"""``WorkerMetrics``: the Prometheus series of one worker process, in its own registry.

Per-job series (outcome, duration, queue wait, in progress) and scheduled runs of periodic jobs
(``seen_cron_runs_total``) are recorded by the engine, which calls this as its observer;
totals the worker or its cache manager already counts (lost leases, poll errors,
store outages and errors, progress applies and coalescing, cache reads, locks, rate limits)
are read from their owners at scrape time by ``worker.metrics.totals.Totals``, so there is one
count of each thing, not two. Labels are bounded (``worker.metrics.totals``): function and cron
names come from the worker's own lists (anything else is ``unknown``); never a job, download,
user or worker id. Every labelled series exists at zero from start-up.
"""

from __future__ import annotations

import platform
from collections import Counter as Tally
from collections.abc import Iterable
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from redis import exceptions as redis_exc

from cache.errors import CacheConnectionError, CacheResponseError, store_error_kind
from worker.metrics.jobseries import JobSeries
from worker.metrics.totals import (
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
        self.series = JobSeries(self.functions | {UNKNOWN}, JOB_OUTCOMES, BUCKETS)
        r.register(self.series)
        info = Gauge(
            "seen_build_info", "Always 1; labels say what runs", ["version", "python"], registry=r
        )
        info.labels(build_version(), platform.python_version()).set(1)
        ProcessCollector(registry=r)  # process_cpu_seconds_total, resident memory, open fds
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

    def duration_totals(self) -> tuple[list[int], float]:
        """Run times of every job so far, over all functions: counts per ``BUCKETS`` bucket
        (not cumulative, the last above the largest bound) and their sum in seconds (what the
        heartbeat adds to the fleet's history, ``jobs.history``)."""
        counts = [0] * (len(BUCKETS) + 1)
        total = 0.0
        for series in self.series.of.values():
            for i, n in enumerate(series.duration.counts):
                counts[i] += n
            total += series.duration.sum
        return counts, total

    def function(self, name: object) -> str:
        return name if isinstance(name, str) and name in self.functions else UNKNOWN

    # -- the engine's observer (``worker.engine.run.EngineObserver``) --------------------
    def job_started(self, function: str, queue_wait_s: float) -> None:
        series = self.series.of.get(function) or self.series.of[UNKNOWN]
        series.in_progress += 1
        series.queue_wait.observe(queue_wait_s)

    def job_ran(
        self,
        function: str,
        seconds: float,
        *,
        error: BaseException | None,
        scheduled_outcome: str | None,
    ) -> None:
        """The body ended: its run time, the store failure it raised (also behind a
        ``Retry``), and for a scheduled run of a periodic job how the run ended."""
        series = self.series.of.get(function) or self.series.of[UNKNOWN]
        series.in_progress -= 1
        series.duration.observe(seconds)
        if error is not None:
            failure = store_failure(error)
            if failure is not None:
                self.job_store_errors[store_error_kind(failure)] += 1
        if scheduled_outcome is not None:
            self.cron_ended(self.function(function), scheduled_outcome)

    def job_ended(self, function: str, outcome: str) -> None:
        series = self.series.of.get(function) or self.series.of[UNKNOWN]
        if outcome in series.ended:
            series.ended[outcome] += 1

    def cron_ended(self, cron: str, outcome: str) -> None:
        if cron in self.crons and outcome in CRON_OUTCOMES:
            self.cron_runs.labels(cron, outcome).inc()
