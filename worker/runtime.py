"""Per-process worker state: identity, state, heartbeats and the fleet-wide job counters.

One ``WorkerRuntime`` per worker process, in the job context as ``ctx["runtime"]``. Its loop
beats every ``worker.heartbeat_interval`` in one pipelined round trip to the queue store that
- writes the heartbeat (``worker.heartbeat``: who, since when, state, jobs running and ended),
- adds this worker's new job counts to the fleet-wide ``seen:jobs:stats``.

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
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio import Redis

from cache.backoff import Backoff
from cache.cancellation import cancel_and_wait
from cache.errors import translate_errors
from cache.keys import KeyBuilder
from jobs.stats import JOB_OUTCOMES
from worker.heartbeat import WorkerBeat, add_beat, now_ms, remove_beat
from worker.outage import OutageLog, is_store_outage
from worker.settings import Settings

log = logging.getLogger("seen.worker.runtime")

STOP_TIMEOUT_S = 1.5
"""Longest the last beat (counts + heartbeat removal) may take at shutdown."""
STOP_LOOP_WITHIN_S = 1.0
"""Longest the heartbeat task gets to end once cancelled."""


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
    ) -> None:
        """Beat once now (best effort) and keep beating in the background. ``counts`` and
        ``running`` are read at every beat (the engine's totals and running jobs)."""
        self._client = client
        self._counts = counts
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

    def _take_deltas(self) -> dict[str, int]:
        counts = self.counts()
        if counts is None:
            return {}
        deltas = {k: counts.get(k, 0) - self._flushed[k] for k in JOB_OUTCOMES}
        self._flushed = {k: counts.get(k, 0) for k in JOB_OUTCOMES}
        return deltas

    def _give_back(self, deltas: dict[str, int]) -> None:
        for name, delta in deltas.items():
            self._flushed[name] -= delta

    async def flush_counts(self) -> None:
        """Add this worker's new job counts to ``seen:jobs:stats``."""
        assert self._client is not None
        deltas = self._take_deltas()
        if not any(deltas.values()):
            return
        key = self.keys.job_stats()
        try:
            with translate_errors(key, operation="HINCRBY"):
                async with self._client.pipeline(transaction=False) as pipe:
                    for name, delta in deltas.items():
                        if delta:
                            pipe.hincrby(key, name, delta)
                    await pipe.execute()
        except BaseException:
            self._give_back(deltas)
            raise
        self._last_flush = time.monotonic()

    async def beat_once(self) -> None:
        """Heartbeat and job counts, one round trip."""
        assert self._client is not None
        deltas = self._take_deltas()
        try:
            with translate_errors(self.keys.worker_heartbeat(self.worker_id), operation="beat"):
                async with self._client.pipeline(transaction=False) as pipe:
                    add_beat(pipe, self.keys, self.beat(), self.settings.worker.heartbeat_ttl)
                    for name, delta in deltas.items():
                        if delta:
                            pipe.hincrby(self.keys.job_stats(), name, delta)
                    await pipe.execute()
        except BaseException:
            self._give_back(deltas)
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
