"""The label sets of a worker's series, and ``Totals``: the series whose counts live elsewhere.

Every label value comes from a fixed tuple here or from the worker's own function and cron
lists, never from a job, download, user or worker id. ``Totals`` reads counters that their
owners keep (the cache manager's reads, locks, rate limiter and coalescing counters; the
outage logs; the job leases; the engine's pause flag) when Prometheus scrapes, handed over as
one typed value (``MetricTotals``, built by ``SeenWorker.metric_totals``), so each thing is
counted once, by its owner, and every label combination is reported from start-up, at zero
until it happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cache.coordination import DECISIONS, LIMITERS
from cache.counts import CACHE_KINDS, READ_RESULTS
from cache.download import ApplyOutcome, CoalescingCounts, PublishOutcome
from cache.errors import STORE_ERROR_KINDS
from jobs.history import DURATION_BUCKETS
from jobs.outcome import OUTCOMES

JOB_OUTCOMES = OUTCOMES
PROGRESS_OUTCOMES = ("applied", "stale", "duplicate", "final", "rejected", "corrupt")
PUBLISH_OUTCOMES = tuple(o.name.lower() for o in PublishOutcome)
STORES = ("queue", "cache")
LOCK_RESULTS = ("acquired", "busy", "timeout", "error", "lost")
LOCK_COUNTER_OF = {
    "acquired": "acquired",
    "busy": "contended",
    "timeout": "timeouts",
    "error": "errors",
    "lost": "lost",
}
"""``seen_lock_acquisitions_total`` result -> ``LockService`` counter."""
CRON_OUTCOMES = ("ran", "failed", "skipped", "deferred", "handed_back")
BUCKETS = DURATION_BUCKETS
"""Seconds: from a fast ping to a ten-minute maintenance run (the fleet's history keeps run
times in the same buckets: ``jobs.history``)."""
UNKNOWN = "unknown"


@dataclass(frozen=True)
class StoreTotals:
    """What one store did to this worker: outages ridden out, failed calls by kind."""

    outages: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)
    """By ``cache.errors.STORE_ERROR_KINDS``."""


@dataclass(frozen=True)
class MetricTotals:
    """Every count ``Totals`` serves, read from its owner at scrape time."""

    leases_lost: int = 0
    """Job leases the engine lost (``worker.engine.leases``)."""
    poll_errors: int = 0
    paused: bool = False
    """The engine saw the queue's pause flag at its last poll (``jobs.queue_control``)."""
    queue: StoreTotals = field(default_factory=StoreTotals)
    cache: StoreTotals = field(default_factory=StoreTotals)
    progress: Mapping[ApplyOutcome, int] = field(default_factory=dict)
    """Progress applies by what the apply script did (``manager.download.outcomes``)."""
    coalescing: CoalescingCounts = field(default_factory=CoalescingCounts)
    reads: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """Cache reads by (kind, result) (``manager.reads``)."""
    locks: Mapping[str, int] = field(default_factory=dict)
    """``manager.locks.counters()``."""
    rate_limits: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """Rate-limit checks by (limiter, decision)."""


class Sources(Protocol):
    """What the totals are read from (``worker.app.SeenWorker`` provides it)."""

    def metric_totals(self) -> MetricTotals: ...


def _family(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


class Totals(Collector):
    """Counters owned elsewhere, read when Prometheus scrapes. ``job_store_errors`` are the
    store failures job bodies surfaced (counted by ``WorkerMetrics.wrap``)."""

    def __init__(self, sources: Sources, job_store_errors: Mapping[str, int]) -> None:
        self.sources = sources
        self.job_store_errors = job_store_errors

    def collect(self) -> Iterator[Metric]:
        t = self.sources.metric_totals()
        lost = _family("seen_job_leases_lost", "Job leases this worker lost (job cancelled)")
        lost.add_metric([], t.leases_lost)
        polls = _family(
            "seen_poll_errors", "Poll iterations that failed for a reason other than an outage"
        )
        polls.add_metric([], t.poll_errors)
        paused = GaugeMetricFamily(
            "seen_queue_paused", "1 while this worker sees the queue paused (claims nothing)"
        )
        paused.add_metric([], 1 if t.paused else 0)
        outages = _family("seen_store_outages", "Store outages this worker rode out", ["store"])
        stores = {"queue": t.queue, "cache": t.cache}
        for store in STORES:
            outages.add_metric([store], stores[store].outages)
        yield from (lost, polls, paused, outages, self._store_errors(t), *self._progress(t))
        yield from (self._reads(t), *self._coordination(t))

    def _store_errors(self, t: MetricTotals) -> Metric:
        family = _family(
            "seen_store_errors",
            "Store failures this worker saw (its loops and its jobs' bodies), by store and kind",
            ["store", "kind"],
        )
        stores = {"queue": t.queue, "cache": t.cache}
        for store in STORES:
            for kind in STORE_ERROR_KINDS:
                extra = self.job_store_errors.get(kind, 0) if store == "cache" else 0
                family.add_metric([store, kind], stores[store].errors.get(kind, 0) + extra)
        return family

    def _progress(self, t: MetricTotals) -> Iterator[Metric]:
        progress = _family(
            "seen_progress_updates",
            "Progress updates applied by this worker, by what the apply script did",
            ["outcome"],
        )
        for name in PROGRESS_OUTCOMES:
            progress.add_metric([name], t.progress.get(ApplyOutcome[name.upper()], 0))
        drains = _family("seen_progress_drain_jobs", "Coalescing drain jobs this worker ran")
        drains.add_metric([], t.coalescing.drain_jobs)
        drained = _family(
            "seen_progress_drained_updates",
            "Pending (coalesced) progress updates this worker's drain jobs consumed",
        )
        drained.add_metric([], t.coalescing.drained_updates)
        published = _family(
            "seen_progress_publishes",
            "Coalescing puts made in this process (producers), by what the put did",
            ["outcome"],
        )
        for name in PUBLISH_OUTCOMES:
            published.add_metric(
                [name], t.coalescing.published.get(PublishOutcome[name.upper()], 0)
            )
        yield from (progress, drains, drained, published)

    def _reads(self, t: MetricTotals) -> Metric:
        family = _family(
            "seen_cache_requests",
            "Cache reads in this process, by kind of cached value and result",
            ["kind", "result"],
        )
        for kind in CACHE_KINDS:
            for result in READ_RESULTS:
                family.add_metric([kind, result], t.reads.get((kind, result), 0))
        return family

    def _coordination(self, t: MetricTotals) -> Iterator[Metric]:
        locks = _family(
            "seen_lock_acquisitions",
            "Lock acquire attempts by result, and held locks lost (lost)",
            ["result"],
        )
        for result in LOCK_RESULTS:
            locks.add_metric([result], t.locks.get(LOCK_COUNTER_OF[result], 0))
        limits = _family(
            "seen_rate_limit_decisions",
            "Rate-limit checks by algorithm (limiter) and decision",
            ["limiter", "decision"],
        )
        for limiter in LIMITERS:
            for decision in DECISIONS:
                limits.add_metric([limiter, decision], t.rate_limits.get((limiter, decision), 0))
        yield from (locks, limits)

    def describe(self) -> Iterable[Metric]:
        return []
