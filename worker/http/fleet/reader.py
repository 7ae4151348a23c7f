"""``FleetReader``: the fleet's state read from the stores, for the dashboard and its exporter.

It owns no connection: the caller passes the queue store's client and the ``CacheManager`` and
closes them. Every method runs under ``fleet.read_timeout`` (``FleetTimeout`` when it runs out)
and holds a bounded number of items; the stores' own errors (``CacheError``) propagate, so a
page can say which store failed. Each view is built by one module of this package.
"""

from __future__ import annotations

from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.manager import CacheManager
from jobs.stats import JobCounters, job_counters
from worker.heartbeat import read_beats
from worker.http.fleet.bounds import concurrently, deadline
from worker.http.fleet.deadletters import count_dead_letters, read_grouped
from worker.http.fleet.downloads import read_downloads
from worker.http.fleet.locks import read_locks
from worker.http.fleet.models import (
    DeadLetters,
    JobTotals,
    LockView,
    Overview,
    Schedule,
    ShardView,
)
from worker.http.fleet.queue import read_queue
from worker.http.fleet.schedules import read_schedules
from worker.http.fleet.store import read_store
from worker.http.fleet.workers import read_workers
from worker.job_modules import load_jobs
from worker.settings import Settings

MAX_WORKERS = 1000
"""Workers an overview lists at most (the heartbeat index is pruned, so rarely reached)."""
RATE_MIN_INTERVAL_S = 1.0
"""Job rates are measured over at least this long between two reads."""


class FleetReader:
    """Reads the fleet's state from the stores; owns no connection (the caller does)."""

    def __init__(self, queue: Redis, manager: CacheManager, settings: Settings) -> None:
        self.queue = queue
        self.manager = manager
        self.settings = settings
        self.keys = manager.keys
        self.cron_periods = load_jobs(settings).slot_periods(settings)
        self._previous: tuple[int, JobCounters] | None = None
        self._rates: tuple[float, float, float] | None = None
        self.scrape_errors: dict[str, int] = {}
        """Fleet scrapes that could not read the stores, by kind (``exporter``)."""

    @property
    def separate_stores(self) -> bool:
        """Queue and cache are different instances (or databases), as ``seen-worker health``
        judges it."""
        s = self.settings
        if self.queue is self.manager.client:
            return False
        return s.queue_addr() != s.cache.addr or s.queue.db is not None

    @property
    def _timeout(self) -> float:
        return self.settings.fleet.read_timeout

    async def overview(self) -> Overview:
        """Workers, queue by state, job totals and rates, cache store figures, dead letters."""
        async with deadline("overview", self._timeout), concurrently() as group:
            fleet = self.settings.fleet
            now = wall_ms()
            stale_after = self.settings.health.stale_after
            workers = group.create_task(
                read_workers(self.queue, self.keys, now, stale_after, MAX_WORKERS)
            )
            queue = group.create_task(
                read_queue(
                    self.queue,
                    self.settings.queue.name,
                    now,
                    queue_scan=fleet.queue_scan,
                    scan_count=self.settings.cache.scan_count,
                    scan_keys_max=fleet.scan_keys,
                )
            )
            counters = group.create_task(job_counters(self.queue, self.keys))
            store = group.create_task(read_store(self.manager))
            dead = group.create_task(count_dead_letters(self.manager))
        return Overview(
            at_ms=now,
            workers=workers.result(),
            queue=queue.result(),
            jobs=self._totals(now, counters.result()),
            store=store.result(),
            dead_letters=dead.result(),
            stale_after_s=stale_after,
        )

    def _totals(self, now: int, counters: JobCounters) -> JobTotals:
        """Totals, with rates since the previous read at least ``RATE_MIN_INTERVAL_S`` ago."""
        previous = self._previous
        if previous is None:
            self._previous = (now, counters)
        elif (now - previous[0]) / 1000 >= RATE_MIN_INTERVAL_S:
            seconds = (now - previous[0]) / 1000
            before = previous[1]
            self._rates = (
                round(max(0, counters.done - before.done) / seconds, 3),
                round(max(0, counters.failed - before.failed) / seconds, 3),
                round(max(0, counters.retried - before.retried) / seconds, 3),
            )
            self._previous = (now, counters)
        done, failed, retried = self._rates or (None, None, None)
        return JobTotals(
            done=counters.done,
            failed=counters.failed,
            retried=counters.retried,
            done_per_s=done,
            failed_per_s=failed,
            retried_per_s=retried,
        )

    async def schedules(self) -> list[Schedule]:
        """Each enabled periodic job: recent slots with their state, run history, last success."""
        fleet = self.settings.fleet
        async with deadline("schedules", self._timeout):
            beats = await read_beats(self.queue, self.keys, limit=MAX_WORKERS, include_expired=True)
            first_worker = min((b.started_ms for b in beats if b.started_ms > 0), default=None)
            return await read_schedules(
                self.queue,
                self.keys,
                self.settings.maintenance,
                self.cron_periods,
                wall_ms(),
                slots=fleet.schedule_slots,
                history=fleet.history,
                grace_s=fleet.cron_grace,
                first_worker_ms=first_worker,
            )

    async def dead_letters(self, limit: int, payload_chars: int = 300) -> DeadLetters:
        """The newest ``limit`` dead letters grouped by reason, payloads cut to
        ``payload_chars``; ``total`` is the whole list's length."""
        async with deadline("dead letters", self._timeout):
            return await read_grouped(self.manager, max(0, limit), max(0, payload_chars))

    async def locks(self, limit: int) -> list[LockView]:
        """Job leases, maintenance run guards and locks (at most ``limit`` of each kind)."""
        async with deadline("locks", self._timeout):
            return await read_locks(
                self.manager.client,
                self.queue,
                self.keys,
                separate=self.separate_stores,
                limit=max(0, limit),
                count=self.settings.cache.scan_count,
                max_keys=self.settings.fleet.scan_keys,
            )

    async def downloads(self) -> list[ShardView]:
        """Every download shard: active downloads, pending updates, newest event's age."""
        async with deadline("downloads", self._timeout):
            return await read_downloads(self.manager, wall_ms())
