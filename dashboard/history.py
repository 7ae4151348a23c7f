"""The queue's side of the fleet's history: one sample a minute, taken by one dashboard process.

Every ``CHECK_EVERY_S`` the sampler asks for the current minute's flag (``jobs.history.
take_minute``: SET NX, so one dashboard of several samples each minute) and, when it got it,
reads the queue (``jobs.stats.queue_stats`` over every shard), the dead letters' count, the
workers with a fresh heartbeat and the pause flag, and writes them into the minute's buckets
(``jobs.history.record_sample``). Each round is bounded by ``fleet.read_timeout``; a failed one
is logged (rate-limited) and the next round tries again. The workers write their own side
(jobs ended, run times) with their heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import cast

from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.manager import CacheManager
from cache.ratelog import RateLimitedLog
from jobs.history import QueueSample, record_sample, take_minute
from jobs.queue_control import pause_state
from jobs.stats import queue_stats
from worker.heartbeat import read_beats
from worker.settings import Settings

log = logging.getLogger("seen.dashboard.history")

CHECK_EVERY_S = 5.0
CLOSE_WITHIN_S = 1.0


async def sample_queue(queue: Redis, manager: CacheManager, settings: Settings) -> QueueSample:
    """The figures of one minute's sample."""
    layout = settings.queue.key_layout()
    now = wall_ms()
    stats = await queue_stats(queue, layout, now_ms=now, scan_limit=settings.fleet.queue_scan)
    dead = await cast(Awaitable[int], manager.client.llen(manager.keys.dead_letter()))
    beats = await read_beats(queue, manager.keys)
    stale = settings.health.stale_after
    paused = await pause_state(queue, layout)
    return QueueSample(
        depth=stats.depth,
        due=stats.waiting,
        running=stats.running,
        deferred=stats.deferred,
        oldest_ms=round((stats.oldest_age_s or 0.0) * 1000),
        dead=int(dead),
        workers=sum(1 for b in beats if b.age_s(now) <= stale),
        paused=paused.paused,
    )


class HistorySampler:
    """The sampling loop of one dashboard process (``start``, ``aclose``)."""

    def __init__(self, queue: Redis, manager: CacheManager, settings: Settings) -> None:
        self.queue = queue
        self.manager = manager
        self.settings = settings
        self.samples = 0
        self.failures = RateLimitedLog(log)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="history-sampler")

    async def sample_once(self) -> bool:
        """Sample this minute if no other dashboard has; True when this one did."""
        async with asyncio.timeout(self.settings.fleet.read_timeout):
            now = wall_ms()
            if not await take_minute(self.queue, self.manager.keys, now):
                return False
            sample = await sample_queue(self.queue, self.manager, self.settings)
            await record_sample(self.queue, self.manager.keys, sample, now)
        self.samples += 1
        return True

    async def _loop(self) -> None:
        while True:
            try:
                await self.sample_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store away or slow: the next round tries again
                self.failures.warning("history sample failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(CHECK_EVERY_S)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(CLOSE_WITHIN_S):
                await task
