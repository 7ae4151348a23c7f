"""``FleetReader``: the fleet's state read from the stores, for the dashboard and its exporter.

It owns no connection: the caller passes the queue store's client and the ``CacheManager`` and
closes them. Every method runs under ``fleet.read_timeout`` (``FleetTimeout`` when it runs out)
and holds a bounded number of items; the stores' own errors (``CacheError``) propagate, so a
page can say which store failed. Each view is built by one module of this package.

A row that cannot be read (a heartbeat, dead letter, lock, lease, slot claim, history entry or
job counter that is not what it should be) never fails a view: it is skipped and noted in the
``Unreadable`` the caller passes (one per page or scrape), logged with its key through this
reader's ``skip_log`` (rate-limited: a flood of bad rows writes a few lines a minute).
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.manager import CacheManager
from cache.ratelog import RateLimitedLog
from cache.unreadable import Unreadable
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
        self._rates: tuple[float | None, float | None, float | None] | None = None
        self.scrape_errors: dict[str, int] = {}
        """Fleet scrapes that could not read the stores, by kind (``exporter``)."""
        self.skip_log = RateLimitedLog(logging.getLogger("seen.unreadable"))
        """Where every view's skipped rows are logged (one limit for the whole process)."""

    def unreadable(self) -> Unreadable:
        """A fresh count of skipped rows for one page or scrape, logging through ``skip_log``."""
        return Unreadable(self.skip_log)

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

    async def overview(self, unreadable: Unreadable | None = None) -> Overview:
        """Workers, queue by state, job totals and rates, cache store figures, dead letters."""
        skipped = unreadable or self.unreadable()
        async with deadline("overview", self._timeout), concurrently() as group:
            fleet = self.settings.fleet
            now = wall_ms()
            stale_after = self.settings.health.stale_after
            workers = group.create_task(
                read_workers(self.queue, self.keys, now, stale_after, MAX_WORKERS, skipped)
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
            counters = group.create_task(job_counters(self.queue, self.keys, skipped))
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
        """Totals, with rates since the previous read at least ``RATE_MIN_INTERVAL_S`` ago
        (a rate is None while its counter, now or then, is unreadable)."""
        previous = self._previous
        if previous is None:
            self._previous = (now, counters)
        elif (now - previous[0]) / 1000 >= RATE_MIN_INTERVAL_S:
            seconds = (now - previous[0]) / 1000
            before = previous[1]
            self._rates = (
                _rate(counters.done, before.done, seconds),
                _rate(counters.failed, before.failed, seconds),
                _rate(counters.retried, before.retried, seconds),
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

    async def schedules(self, unreadable: Unreadable | None = None) -> list[Schedule]:
        """Each enabled periodic job: recent slots with their state, run history, last success.
        Heartbeats are read only for the earliest worker start: a bad one is logged but counted
        by the overview, not here."""
        fleet = self.settings.fleet
        async with deadline("schedules", self._timeout):
            beats = await read_beats(
                self.queue,
                self.keys,
                limit=MAX_WORKERS,
                include_expired=True,
                unreadable=self.unreadable(),
            )
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
                unreadable=unreadable or self.unreadable(),
            )

    async def dead_letters(
        self, limit: int, payload_chars: int = 300, unreadable: Unreadable | None = None
    ) -> DeadLetters:
        """The newest ``limit`` dead letters grouped by reason, payloads cut to
        ``payload_chars``; ``total`` is the whole list's length."""
        skipped = unreadable or self.unreadable()
        async with deadline("dead letters", self._timeout):
            return await read_grouped(self.manager, max(0, limit), max(0, payload_chars), skipped)

    async def locks(self, limit: int, unreadable: Unreadable | None = None) -> list[LockView]:
        """Job leases, maintenance run guards and locks (at most ``limit`` of each kind)."""
        skipped = unreadable or self.unreadable()
        async with deadline("locks", self._timeout):
            return await read_locks(
                self.manager.client,
                self.queue,
                self.keys,
                separate=self.separate_stores,
                limit=max(0, limit),
                count=self.settings.cache.scan_count,
                max_keys=self.settings.fleet.scan_keys,
                unreadable=skipped,
            )

    async def downloads(self) -> list[ShardView]:
        """Every download shard: active downloads, pending updates, newest event's age."""
        async with deadline("downloads", self._timeout):
            return await read_downloads(self.manager, wall_ms())


def _rate(now: int | None, before: int | None, seconds: float) -> float | None:
    if now is None or before is None:
        return None
    return round(max(0, now - before) / seconds, 3)
