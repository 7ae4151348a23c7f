"""Per-process worker state: identity, state, heartbeats and the fleet-wide job counters.

One ``WorkerRuntime`` per worker process, in the job context as ``ctx["runtime"]``. Its loop
beats every ``worker.heartbeat_interval`` in one pipelined round trip to the queue store that
- writes the heartbeat (``worker.heartbeat``: who, since when, state, jobs running and ended),
- adds this worker's new job counts to the fleet-wide ``seen:jobs:stats``,
- and those counts with the new jobs' run times to the fleet's history (``jobs.history``).

What it counts comes from whoever runs the jobs, handed over at ``start``: the engine's totals
under ``seen-worker run``; under ``arq worker.settings.WorkerSettings`` (plain ARQ) the ARQ hooks
track the running jobs and nothing is counted. Job leases are the engine's
(``worker.engine.leases``), renewed by its own keeper.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from cache.backoff import Backoff
from cache.cancellation import cancel_and_wait
from cache.errors import translate_errors
from cache.keys import KeyBuilder
from jobs.history import DURATION_BUCKETS, Activity, add_activity
from jobs.stats import JOB_OUTCOMES
from worker.heartbeat import WorkerBeat, add_beat, now_ms, remove_beat
from worker.outage import OutageLog, is_store_outage
from worker.settings import Settings

log = logging.getLogger("seen.worker.runtime")

STOP_TIMEOUT_S = 1.5
"""Longest the last beat (counts + heartbeat removal) may take at shutdown."""
STOP_LOOP_WITHIN_S = 1.0
"""Longest the heartbeat task gets to end once cancelled."""


Durations = Callable[[], tuple[Sequence[int], float]]
"""Run times of the jobs ended so far by this process: counts per ``jobs.history.
DURATION_BUCKETS`` bucket and their sum in seconds (``WorkerMetrics.duration_totals``)."""
Counts = Callable[[], Mapping[str, int]]
"""Jobs ended so far by this process, by outcome (``jobs.outcome``: the ``seen:jobs:stats``
fields)."""


def make_worker_id() -> str:
    """``<host>-<pid>-<random>``: unique per process, readable in logs and ``health``."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:60].strip(".-") or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class WorkerRuntime:
    """Identity, state and heartbeats of one worker process."""

    def __init__(self, settings: Settings, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or make_worker_id()
        self.keys = KeyBuilder(settings.cache.namespace)
        self.keys.worker_heartbeat(self.worker_id)  # validates the id now, not at first beat
        self.started_ms = now_ms()
        self.state = "starting"
        self.running: set[str] = set()
        """Jobs running under plain ARQ (its hooks); the engine reports its own count."""
        backoff = settings.worker
        self.outage = OutageLog("queue store", Backoff(backoff.backoff_base, backoff.backoff_cap))
        self.cache_outage = OutageLog(
            "cache store", Backoff(backoff.backoff_base, backoff.backoff_cap)
        )
        self.beats = 0
        self.last_beat_at: float | None = None
        """``time.monotonic()`` of the last beat that reached the store."""
        self.http_port: int | None = None
        """The port ``/metrics`` is served on (the bound one when ``http.addr`` says 0)."""
        self._counts: Counts | None = None
        self._durations: Durations | None = None
        self._flushed_durations = [0] * (len(DURATION_BUCKETS) + 1)
        self._flushed_sum_us = 0
        self._running: Callable[[], int] = lambda: len(self.running)
        self._flushed = dict.fromkeys(JOB_OUTCOMES, 0)
        self._last_flush = 0.0
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None

    def counts(self) -> dict[str, int] | None:
        return None if self._counts is None else dict(self._counts())

    def readiness(self) -> str | None:
        """None when this worker should get work, else why not (``/readyz``)."""
        if self.state != "running":
            return f"worker is {self.state}"
        if self.outage.down:
            return "queue store unreachable"
        stale_after = self.settings.health.stale_after
        if self.last_beat_at is None or time.monotonic() - self.last_beat_at > stale_after:
            return f"no heartbeat reached the queue store within {stale_after:g}s"
        return None

    async def start(
        self,
        client: Redis,
        *,
        counts: Counts | None = None,
        running: Callable[[], int] | None = None,
        durations: Durations | None = None,
    ) -> None:
        """Beat once now (best effort) and keep beating in the background. ``counts``,
        ``running`` and ``durations`` are read at every beat (the engine's totals and running
        jobs, the jobs' run times)."""
        self._client = client
        self._counts = counts
        self._durations = durations
        if running is not None:
            self._running = running
        await self._beat_logged()
        self._task = asyncio.create_task(self._loop(), name=f"heartbeat-{self.worker_id}")

    async def stop(self) -> None:
        """Stop beating, push the last counts and remove this worker's heartbeat (bounded)."""
        self.state = "stopping"
        if self._task is not None:
            await cancel_and_wait([self._task], STOP_LOOP_WITHIN_S, "heartbeat task")
            self._task = None
        if self._client is None:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self.flush_counts()
                await remove_beat(self._client, self.keys, self.worker_id)
        except Exception as exc:
            if not is_store_outage(exc) and not isinstance(exc, TimeoutError):
                raise
            log.warning(
                "heartbeat of %s not removed (%s); it expires by itself", self.worker_id, exc
            )
        else:
            log.info("heartbeat of %s removed", self.worker_id)

    # -- ARQ hooks (plain ARQ only) -------------------------------------------------------
    async def on_job_start(self, ctx: dict[str, Any]) -> None:
        self.running.add(ctx["job_id"])

    async def on_job_end(self, ctx: dict[str, Any]) -> None:
        self.running.discard(ctx["job_id"])

    # -- beats ----------------------------------------------------------------------------
    def beat(self) -> WorkerBeat:
        counts = self.counts() or {}
        return WorkerBeat(
            worker_id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queue=self.settings.queue.name,
            state=self.state,
            started_ms=self.started_ms,
            last_beat_ms=now_ms(),
            running=self._running(),
            **counts,
        )

    def _take_deltas(self) -> Activity:
        """What ended since the last flush (taken: ``_give_back`` returns it on failure)."""
        counts = self.counts()
        outcomes: dict[str, int] = {}
        if counts is not None:
            outcomes = {k: counts.get(k, 0) - self._flushed[k] for k in JOB_OUTCOMES}
            self._flushed = {k: counts.get(k, 0) for k in JOB_OUTCOMES}
        durations: list[int] = []
        sum_us = 0
        if self._durations is not None:
            now_counts, now_sum = self._durations()
            durations = [n - f for n, f in zip(now_counts, self._flushed_durations, strict=False)]
            total_us = round(now_sum * 1_000_000)
            sum_us = total_us - self._flushed_sum_us
            self._flushed_durations = list(now_counts)
            self._flushed_sum_us = total_us
        return Activity(outcomes, durations, sum_us)

    def _give_back(self, taken: Activity) -> None:
        for name, delta in taken.outcomes.items():
            self._flushed[name] -= delta
        for i, delta in enumerate(taken.durations):
            self._flushed_durations[i] -= delta
        self._flushed_sum_us -= taken.duration_sum_us

    def _add(self, pipe: Pipeline, taken: Activity) -> None:
        """Queue the commands that add ``taken`` to the counters and the history."""
        for name, delta in taken.outcomes.items():
            if delta:
                pipe.hincrby(self.keys.job_stats(), name, delta)
        add_activity(pipe, self.keys, taken, now_ms())

    async def flush_counts(self) -> None:
        """Add this worker's new job counts (and run times) to the store."""
        assert self._client is not None
        taken = self._take_deltas()
        if not taken:
            return
        try:
            with translate_errors(self.keys.job_stats(), operation="HINCRBY"):
                async with self._client.pipeline(transaction=False) as pipe:
                    self._add(pipe, taken)
                    await pipe.execute()
        except BaseException:
            self._give_back(taken)
            raise
        self._last_flush = time.monotonic()

    async def beat_once(self) -> None:
        """Heartbeat, job counts and history, one round trip."""
        assert self._client is not None
        taken = self._take_deltas()
        try:
            with translate_errors(self.keys.worker_heartbeat(self.worker_id), operation="beat"):
                async with self._client.pipeline(transaction=False) as pipe:
                    add_beat(pipe, self.keys, self.beat(), self.settings.worker.heartbeat_ttl)
                    self._add(pipe, taken)
                    await pipe.execute()
        except BaseException:
            self._give_back(taken)
            raise
        self.beats += 1
        self.last_beat_at = time.monotonic()
        self._last_flush = time.monotonic()

    async def _beat_logged(self) -> None:
        try:
            await self.beat_once()
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            self.outage.note(exc)
        else:
            self.outage.recovered()

    async def _loop(self) -> None:
        interval = self.settings.worker.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self._beat_logged()
            except Exception:
                log.exception("heartbeat failed")
