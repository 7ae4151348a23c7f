"""The ``seen_fleet_*`` series: collected once per scrape from the stores, not by every worker.

``render_fleet_metrics(reader, accept)`` is what the dashboard's ``/metrics`` calls: it reads
the fleet (``FleetReader``: overview, schedules, downloads, dead letters by kind, concurrently)
under ``fleet.scrape_timeout``, builds metric families from that snapshot into a fresh
``CollectorRegistry`` and encodes them with ``prometheus_client`` (Prometheus text 0.0.4, or
OpenMetrics when the ``Accept`` header asks for it). When the stores do not answer in time (or
fail) the scrape still answers at once, with ``seen_fleet_up 0``, the scrape duration and the
error counter only: a series the stores could not vouch for is left out rather than shown as 0.

Labels are bounded: queue (the configured one), state, cron (the configured periodic jobs),
shard (``0..download.shards-1``), reason (``DEAD_LETTER_KINDS``), kind (``UNREADABLE_KINDS``);
never a worker, job, download or user id. Every labelled series exists at zero from the first
scrape that reached the stores.

Rows the scrape could not read (a bad heartbeat, dead letter, slot claim, history entry, job
counter) do not fail it: they are skipped and counted in ``seen_fleet_unreadable_records``. A
job counter that is not an integer leaves its ``seen_fleet_jobs_total`` sample out (unknown is
not 0, and a counter dropping to 0 would look like a reset).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from cache.errors import CacheError
from cache.unreadable import Unreadable
from worker.http.fleet.bounds import concurrently, deadline
from worker.http.fleet.deadletters import DEAD_LETTER_KINDS
from worker.http.fleet.models import (
    QUEUE_STATES,
    SLOT_STATES,
    UNREADABLE_KINDS,
    WORKER_STATES,
    DeadLetters,
    Overview,
    Schedule,
    ShardView,
)
from worker.http.fleet.reader import FleetReader

log = logging.getLogger("seen.dashboard.exporter")

SCRAPE_ERROR_KINDS = ("timeout", "error")


@dataclass(frozen=True)
class FleetSnapshot:
    """What one scrape read from the stores."""

    overview: Overview
    schedules: list[Schedule]
    downloads: list[ShardView]
    dead_letters: DeadLetters
    unreadable: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNREADABLE_KINDS, 0))
    """Rows skipped because they could not be read, by ``UNREADABLE_KINDS``."""


async def read_snapshot(reader: FleetReader) -> FleetSnapshot:
    """Every view the series need, read concurrently (a failure cancels the others)."""
    sample = reader.settings.fleet.dead_letter_sample
    skipped = reader.unreadable()
    async with concurrently() as group:
        overview = group.create_task(reader.overview(skipped))
        schedules = group.create_task(reader.schedules(skipped))
        downloads = group.create_task(reader.downloads())
        dead = group.create_task(reader.dead_letters(sample, 0, skipped))
    return FleetSnapshot(
        overview.result(),
        schedules.result(),
        downloads.result(),
        dead.result(),
        bounded_kinds(skipped),
    )


def bounded_kinds(skipped: Unreadable) -> dict[str, int]:
    """Every one of ``UNREADABLE_KINDS`` with its count (a kind not listed counts as other)."""
    counts = dict.fromkeys(UNREADABLE_KINDS, 0)
    for kind, count in skipped.counts.items():
        counts[kind if kind in counts else "other"] += count
    return counts


def _gauge(name: str, doc: str, labels: Iterable[str] = (), unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels), unit=unit)


def snapshot_families(snapshot: FleetSnapshot, queue_name: str) -> list[Metric]:
    """The store-derived series of one snapshot."""
    o = snapshot.overview
    q = o.queue
    queue = _gauge("seen_fleet_queue_jobs", "Jobs in the queue by state", ["queue", "state"])
    by_state = {"due": q.due, "deferred": q.deferred, "in_progress": q.in_progress}
    by_state["results"] = q.results
    for state in QUEUE_STATES:
        queue.add_metric([queue_name, state], by_state[state])
    oldest = _gauge(
        "seen_fleet_oldest_job_age_seconds",
        "Age of the oldest due job no worker has started (0 when none waits)",
        ["queue"],
    )
    oldest.add_metric([queue_name], q.oldest_due_age_s or 0.0)
    workers = _gauge(
        "seen_fleet_workers", "Workers by heartbeat: alive (fresh) or stale", ["state"]
    )
    counts = {"alive": o.alive, "stale": o.stale}
    for state in WORKER_STATES:
        workers.add_metric([state], counts[state])
    running = _gauge("seen_fleet_worker_running_jobs", "Jobs running, summed over fresh heartbeats")
    running.add_metric([], sum(w.running for w in o.workers if w.alive))
    jobs = CounterMetricFamily(
        "seen_fleet_jobs", "Jobs ended fleet-wide (seen:jobs:stats), by outcome", labels=["outcome"]
    )
    totals = {"done": o.jobs.done, "failed": o.jobs.failed, "retried": o.jobs.retried}
    for outcome, total in totals.items():
        if total is not None:  # unreadable: unknown, left out
            jobs.add_metric([outcome], total)
    dead = _gauge("seen_fleet_dead_letters", "Entries in the dead-letter list")
    dead.add_metric([], o.dead_letters)
    by_kind = _gauge(
        "seen_fleet_dead_letters_by_reason",
        "Newest dead letters (up to fleet.dead_letter_sample) by kind of reason",
        ["reason"],
    )
    for kind in DEAD_LETTER_KINDS:
        by_kind.add_metric([kind], snapshot.dead_letters.by_kind.get(kind, 0))
    memory = _gauge("seen_fleet_store_used_memory_bytes", "Memory the cache store uses (INFO)")
    memory.add_metric([], o.store.used_memory)
    max_memory = _gauge(
        "seen_fleet_store_max_memory_bytes", "The cache store's maxmemory (0 = no limit)"
    )
    max_memory.add_metric([], o.store.max_memory)
    hits = CounterMetricFamily(
        "seen_fleet_store_keyspace", "Cache store lookups by result (INFO)", labels=["result"]
    )
    hits.add_metric(["hit"], o.store.keyspace_hits)
    hits.add_metric(["miss"], o.store.keyspace_misses)
    unreadable = _gauge(
        "seen_fleet_unreadable_records",
        "Rows this scrape skipped because they could not be read, by kind",
        ["kind"],
    )
    for kind, count in snapshot.unreadable.items():
        unreadable.add_metric([kind], count)
    families: list[Metric] = [queue, oldest, workers, running, jobs, dead, by_kind, unreadable]
    families += [memory, max_memory, hits]
    families += cron_families(snapshot.schedules)
    families += download_families(snapshot.downloads)
    return families


def cron_families(schedules: list[Schedule]) -> list[Metric]:
    success = _gauge(
        "seen_fleet_cron_last_success_timestamp_seconds",
        "When the newest successful run of a periodic job finished (0 = none in its history)",
        ["cron"],
    )
    period = _gauge("seen_fleet_cron_period_seconds", "Period of a periodic job", ["cron"])
    slots = _gauge(
        "seen_fleet_cron_slots",
        "Recent slots of a periodic job (fleet.schedule_slots) by state",
        ["cron", "state"],
    )
    for schedule in schedules:
        last = schedule.last_success_ms
        success.add_metric([schedule.name], 0.0 if last is None else last / 1000)
        period.add_metric([schedule.name], schedule.period_s)
        for state in SLOT_STATES:
            slots.add_metric([schedule.name, state], schedule.counts[state])
    return [success, period, slots]


def download_families(shards: list[ShardView]) -> list[Metric]:
    active = _gauge("seen_fleet_active_downloads", "Active downloads per shard", ["shard"])
    pending = _gauge(
        "seen_fleet_pending_updates", "Coalesced progress updates not yet applied", ["shard"]
    )
    events = _gauge(
        "seen_fleet_progress_events", "Entries in a shard's progress event stream", ["shard"]
    )
    age = _gauge(
        "seen_fleet_progress_event_age_seconds",
        "Age of a shard's newest progress event (0 when its stream is empty)",
        ["shard"],
    )
    for shard in shards:
        label = [str(shard.shard)]
        active.add_metric(label, shard.active)
        pending.add_metric(label, shard.pending)
        events.add_metric(label, shard.events)
        age.add_metric(label, shard.newest_event_age_s or 0.0)
    return [active, pending, events, age]


class StaticCollector(Collector):
    """Serves metric families built beforehand (one scrape's snapshot) to a registry."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families

    def describe(self) -> Iterable[Metric]:
        return []


def scrape_families(up: bool, seconds: float, errors: dict[str, int]) -> list[Metric]:
    """The series every scrape serves, also when the stores did not answer."""
    up_family = _gauge("seen_fleet_up", "1 when the stores answered this scrape in time")
    up_family.add_metric([], 1 if up else 0)
    duration = _gauge(
        "seen_fleet_scrape_duration_seconds", "Time this scrape spent reading the stores"
    )
    duration.add_metric([], seconds)
    failed = CounterMetricFamily(
        "seen_fleet_scrape_errors",
        "Scrapes that could not read the fleet, by kind (timeout, error)",
        labels=["kind"],
    )
    for kind in SCRAPE_ERROR_KINDS:
        failed.add_metric([kind], errors.get(kind, 0))
    return [up_family, duration, failed]


async def collect(reader: FleetReader) -> list[Metric]:
    """One scrape: read the fleet under ``fleet.scrape_timeout``; never raises for the stores."""
    timeout = reader.settings.fleet.scrape_timeout
    start = time.perf_counter()
    snapshot: FleetSnapshot | None = None
    try:
        async with deadline("scrape", timeout):
            snapshot = await read_snapshot(reader)
    except Exception as exc:  # a store fault must not fail /metrics; it is seen_fleet_up 0
        kind = "timeout" if isinstance(exc, TimeoutError) else "error"
        reader.scrape_errors[kind] = reader.scrape_errors.get(kind, 0) + 1
        log.warning(
            "fleet metrics: the stores were not read (%s: %s); serving seen_fleet_up 0",
            type(exc).__name__,
            exc,
            exc_info=not isinstance(exc, CacheError | TimeoutError),
        )
    seconds = time.perf_counter() - start
    families = scrape_families(snapshot is not None, seconds, reader.scrape_errors)
    if snapshot is not None:
        families += snapshot_families(snapshot, reader.settings.queue.name)
    return families


async def render_fleet_metrics(reader: FleetReader, accept: str | None) -> tuple[bytes, str]:
    """The body and content type of the dashboard's fleet ``/metrics`` for this ``Accept``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StaticCollector(await collect(reader)))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
