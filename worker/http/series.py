"""The label sets of a worker's series, and ``Totals``: the series whose counts live elsewhere.

Every label value comes from a fixed tuple here or from the worker's own function and cron
lists, never from a job, download, user or worker id. ``Totals`` reads counters that their
owners keep (the cache manager's reads, locks, rate limiter and coalescing counters; the
outage logs; the job leases) when Prometheus scrapes, so each thing is counted once, by its
owner, and every label combination is reported from start-up, at zero until it happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from cache.coordination import DECISIONS, LIMITERS
from cache.counts import CACHE_KINDS, READ_RESULTS
from cache.download import ApplyOutcome, PublishOutcome
from cache.errors import STORE_ERROR_KINDS

JOB_OUTCOMES = ("complete", "failed", "retried", "cancelled", "stale")
PROGRESS_OUTCOMES = ("applied", "stale", "duplicate", "final", "rejected")
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
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""Seconds: from a fast ping to a ten-minute maintenance run."""
UNKNOWN = "unknown"


class Sources(Protocol):
    """What the totals are read from (``worker.runtime.WorkerRuntime`` provides it)."""

    def metric_totals(self) -> dict[str, Any]: ...


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
        lost.add_metric([], t.get("leases_lost", 0))
        polls = _family(
            "seen_poll_errors", "Poll iterations that failed for a reason other than an outage"
        )
        polls.add_metric([], t.get("poll_errors", 0))
        outages = _family("seen_store_outages", "Store outages this worker rode out", ["store"])
        for store in STORES:
            outages.add_metric([store], t.get("outages", {}).get(store, 0))
        yield from (lost, polls, outages, self._store_errors(t), *self._progress(t))
        yield from (self._reads(t), *self._coordination(t))

    def _store_errors(self, t: dict[str, Any]) -> Metric:
        family = _family(
            "seen_store_errors",
            "Store failures this worker saw (its loops and its jobs' bodies), by store and kind",
            ["store", "kind"],
        )
        errors: dict[str, Mapping[str, int]] = t.get("store_errors", {})
        for store in STORES:
            for kind in STORE_ERROR_KINDS:
                extra = self.job_store_errors.get(kind, 0) if store == "cache" else 0
                family.add_metric([store, kind], errors.get(store, {}).get(kind, 0) + extra)
        return family

    def _progress(self, t: dict[str, Any]) -> Iterator[Metric]:
        progress = _family(
            "seen_progress_updates",
            "Progress updates applied by this worker, by what the apply script did",
            ["outcome"],
        )
        applies: Mapping[ApplyOutcome, int] = t.get("progress", {})
        for name in PROGRESS_OUTCOMES:
            progress.add_metric([name], applies.get(ApplyOutcome[name.upper()], 0))
        drains = _family("seen_progress_drain_jobs", "Coalescing drain jobs this worker ran")
        drains.add_metric([], t.get("drain_jobs", 0))
        drained = _family(
            "seen_progress_drained_updates",
            "Pending (coalesced) progress updates this worker's drain jobs consumed",
        )
        drained.add_metric([], t.get("drained_updates", 0))
        published = _family(
            "seen_progress_publishes",
            "Coalescing puts made in this process (producers), by what the put did",
            ["outcome"],
        )
        puts: Mapping[PublishOutcome, int] = t.get("published", {})
        for name in PUBLISH_OUTCOMES:
            published.add_metric([name], puts.get(PublishOutcome[name.upper()], 0))
        yield from (progress, drains, drained, published)

    def _reads(self, t: dict[str, Any]) -> Metric:
        family = _family(
            "seen_cache_requests",
            "Cache reads in this process, by kind of cached value and result",
            ["kind", "result"],
        )
        reads: Mapping[tuple[str, str], int] = t.get("reads", {})
        for kind in CACHE_KINDS:
            for result in READ_RESULTS:
                family.add_metric([kind, result], reads.get((kind, result), 0))
        return family

    def _coordination(self, t: dict[str, Any]) -> Iterator[Metric]:
        locks = _family(
            "seen_lock_acquisitions",
            "Lock acquire attempts by result, and held locks lost (lost)",
            ["result"],
        )
        counters: Mapping[str, int] = t.get("locks", {})
        for result in LOCK_RESULTS:
            locks.add_metric([result], counters.get(LOCK_COUNTER_OF[result], 0))
        limits = _family(
            "seen_rate_limit_decisions",
            "Rate-limit checks by algorithm (limiter) and decision",
            ["limiter", "decision"],
        )
        decisions: Mapping[tuple[str, str], int] = t.get("rate_limits", {})
        for limiter in LIMITERS:
            for decision in DECISIONS:
                limits.add_metric([limiter, decision], decisions.get((limiter, decision), 0))
        yield from (locks, limits)

    def describe(self) -> Iterable[Metric]:
        return []
