"""``WorkerMetrics``: the Prometheus series of one worker process, in its own registry.

Per-job series (outcome, duration, queue wait, in progress) are recorded by the ARQ hooks in
``worker.app``; totals the worker already counts (lost leases, poll errors, store outages,
progress applies) are read from their owners at scrape time by ``_Totals``, so there is one
count of each thing, not two. Labels are bounded: function names come from the worker's own
function list (anything else is ``unknown``); never a job, download, user or worker id.
Every labelled series exists at zero from start-up.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from cache.clock import wall_ms
from cache.download import ApplyOutcome

JOB_OUTCOMES = ("complete", "failed", "retried", "cancelled", "stale")
PROGRESS_OUTCOMES = ("applied", "stale", "duplicate", "final", "rejected")
STORES = ("queue", "cache")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""Seconds: from a fast ping to a ten-minute maintenance run."""
UNKNOWN = "unknown"


class Sources(Protocol):
    """What the totals are read from (``worker.runtime.WorkerRuntime`` provides it)."""

    def metric_totals(self) -> dict[str, Any]: ...


def build_version() -> str:
    try:
        return metadata.version("seen-worker")
    except metadata.PackageNotFoundError:
        return UNKNOWN


class _Totals(Collector):
    """Counters owned elsewhere, read when Prometheus scrapes."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        t = self.sources.metric_totals()
        lost = CounterMetricFamily(
            "seen_job_leases_lost", "Job leases this worker lost (job cancelled)"
        )
        lost.add_metric([], t.get("leases_lost", 0))
        polls = CounterMetricFamily(
            "seen_poll_errors", "Poll iterations that failed for a reason other than an outage"
        )
        polls.add_metric([], t.get("poll_errors", 0))
        outages = CounterMetricFamily(
            "seen_store_outages", "Store outages this worker rode out", labels=["store"]
        )
        for store in STORES:
            outages.add_metric([store], t.get("outages", {}).get(store, 0))
        progress = CounterMetricFamily(
            "seen_progress_updates",
            "Progress updates applied by this worker, by what the apply script did",
            labels=["outcome"],
        )
        applies: dict[ApplyOutcome, int] = t.get("progress", {})
        for name in PROGRESS_OUTCOMES:
            progress.add_metric([name], applies.get(ApplyOutcome[name.upper()], 0))
        yield from (lost, polls, outages, progress)

    def describe(self) -> Iterable[Metric]:
        return []


class WorkerMetrics:
    """The registry and series of one worker process; ``functions`` bound the label values."""

    def __init__(self, functions: Iterable[str], sources: Sources) -> None:
        self.functions = frozenset(functions)
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
        for name in sorted(self.functions | {UNKNOWN}):
            for outcome in JOB_OUTCOMES:
                self.jobs.labels(name, outcome)
            self.duration.labels(name)
            self.queue_wait.labels(name)
            self.in_progress.labels(name)
        r.register(_Totals(sources))
        self._started: dict[str, tuple[str, float]] = {}

    def function(self, name: object) -> str:
        return name if isinstance(name, str) and name in self.functions else UNKNOWN

    def job_started(self, job_id: str, function: object, due_ms: object) -> None:
        name = self.function(function)
        self._started[job_id] = (name, time.perf_counter())
        self.in_progress.labels(name).inc()
        if isinstance(due_ms, int | float) and not isinstance(due_ms, bool):
            wait = (wall_ms() - due_ms) / 1000
            self.queue_wait.labels(name).observe(max(0.0, wait))

    def job_ran(self, job_id: str) -> str:
        """The function ended (before its finish is committed); returns its label."""
        name, started = self._started.pop(job_id, (UNKNOWN, None))
        if started is not None:
            self.in_progress.labels(name).dec()
            self.duration.labels(name).observe(time.perf_counter() - started)
        return name

    def wrap(self, name: str, coroutine: Any) -> Any:
        """A job coroutine that records its start (queue wait, in progress) and its run time;
        the outcome is recorded by the ARQ hooks, which see ARQ's verdict."""

        async def job(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
            job_id = str(ctx.get("job_id"))
            ctx["function"] = name
            self.job_started(job_id, name, ctx.get("score"))
            try:
                return await coroutine(ctx, *args, **kwargs)
            finally:
                self.job_ran(job_id)

        job.__qualname__ = getattr(coroutine, "__qualname__", name)
        job.__name__ = name
        job.__wrapped__ = coroutine  # type: ignore[attr-defined]
        return job

    def job_ended(self, function: object, outcome: str) -> None:
        self.jobs.labels(self.function(function), outcome).inc()
