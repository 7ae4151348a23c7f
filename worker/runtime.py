"""Per-process worker state: identity, heartbeat loop, job leases and job counters.

One ``WorkerRuntime`` per worker process, in the ARQ context as ``ctx["runtime"]``. It is driven
by the ARQ hooks (``worker.app``), so heartbeats, leases and counters work under ``seen-worker
run`` and under ``arq worker.settings.WorkerSettings`` alike; job totals (done/failed/retried)
need ``SeenWorker``, which attaches itself as their source.

Every beat is one pipelined round trip to the queue store that
- writes the heartbeat (``worker.heartbeat``),
- renews the lease of every running job: ARQ's ``arq:in-progress:<id>`` key gets
  ``worker.job_lease`` again, so a job of a killed worker is picked up by another worker at most
  ``job_lease`` after the kill instead of after the longest job timeout plus 10 s
  (python-arq/arq#402). Jobs ``SeenWorker`` claimed carry a token and are renewed only while
  the token is theirs (``worker.leases``); jobs of plain ARQ are renewed by key,
- adds this worker's new done/failed/retried counts to the fleet-wide ``seen:jobs:stats``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Mapping
from typing import Any, Protocol

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from cache.backoff import Backoff
from cache.cancellation import cancel_and_wait
from cache.download import ApplyOutcome
from cache.errors import translate_errors
from cache.keys import KeyBuilder
from cache.manager import CacheManager
from cache.scripts import ScriptRunner
from jobs.stats import JOB_OUTCOMES
from worker.heartbeat import WorkerBeat, add_beat, now_ms, remove_beat
from worker.http.metrics import WorkerMetrics
from worker.leases import JobLeases
from worker.outage import OutageLog, is_store_outage
from worker.settings import Settings

log = logging.getLogger("seen.worker.runtime")

FLUSH_EVERY_S = 1.0
"""``after_job_end`` pushes job counts at most this often; beats push the rest."""
STOP_TIMEOUT_S = 1.5
"""Longest the last beat (counts + heartbeat removal) may take at shutdown."""
STOP_LOOP_WITHIN_S = 1.0
"""Longest the heartbeat task gets to end once cancelled."""


class CounterSource(Protocol):
    jobs_complete: int
    jobs_failed: int
    jobs_retried: int


def make_worker_id() -> str:
    """``<host>-<pid>-<random>``: unique per process, readable in logs and ``health``."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:60].strip(".-") or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class WorkerRuntime:
    """Identity and background duties of one worker process."""

    def __init__(self, settings: Settings, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or make_worker_id()
        self.keys = KeyBuilder(settings.cache.namespace)
        self.keys.worker_heartbeat(self.worker_id)  # validates the id now, not at first beat
        self.started_ms = now_ms()
        self.state = "starting"
        self.running: set[str] = set()
        self.leases = JobLeases(self.worker_id, settings.worker.job_lease)
        self.outage = OutageLog(
            "queue store", Backoff(settings.worker.backoff_base, settings.worker.backoff_cap)
        )
        self.beats = 0
        self.last_beat_at: float | None = None
        """``time.monotonic()`` of the last beat that reached the store."""
        self.cache_outage = OutageLog(
            "cache store", Backoff(settings.worker.backoff_base, settings.worker.backoff_cap)
        )
        self.metrics: WorkerMetrics | None = None
        """Set by ``worker.app.build_worker_settings`` (it knows the function names)."""
        self.progress_outcomes: Mapping[ApplyOutcome, int] = {}
        """The cache manager's apply counts (``DownloadCache.outcomes``), set at start-up."""
        self.manager: CacheManager | None = None
        """The process's cache manager, set at start-up: its counters feed the metrics."""
        self.http_port: int | None = None
        """The port ``/metrics`` is served on (the bound one when ``http.addr`` says 0)."""
        self._source: CounterSource | None = None
        self._flushed = dict.fromkeys(JOB_OUTCOMES, 0)
        self._last_flush = 0.0
        self._client: Redis | None = None
        self._scripts: ScriptRunner | None = None
        self._task: asyncio.Task[None] | None = None

    # -- wiring ---------------------------------------------------------------------------
    def attach(self, source: CounterSource) -> None:
        """Use ``source``'s counters (the ARQ worker) for job totals."""
        self._source = source

    def counts(self) -> dict[str, int] | None:
        if self._source is None:
            return None
        s = self._source
        return {"done": s.jobs_complete, "failed": s.jobs_failed, "retried": s.jobs_retried}

    def metric_totals(self) -> dict[str, Any]:
        """Counters owned here and by ``SeenWorker``, for ``worker.http.metrics`` scrapes."""
        totals: dict[str, Any] = {
            "leases_lost": self.leases.lost_total,
            "poll_errors": getattr(self._source, "poll_errors", 0),
            "outages": {"queue": self.outage.outages, "cache": self.cache_outage.outages},
            "store_errors": {
                "queue": dict(self.outage.errors),
                "cache": dict(self.cache_outage.errors),
            },
            "progress": dict(self.progress_outcomes),
        }
        manager = self.manager
        if manager is not None:
            totals.update(
                reads=manager.reads.snapshot(),
                locks=manager.locks.counters(),
                rate_limits=dict(manager.ratelimit.decisions),
                **manager.download.coalescing_counts(),
            )
        return totals

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

    async def start(self, client: Redis, scripts: ScriptRunner | None = None) -> None:
        """Beat once now (best effort) and keep beating in the background; ``scripts`` is the
        worker's runner on the same (queue) store, when it has one."""
        self._client = client
        self._scripts = scripts or ScriptRunner(client)
        await self._beat_logged()
        self._task = asyncio.create_task(self._loop(), name=f"heartbeat-{self.worker_id}")

    async def stop(self) -> None:
        """Stop beating, push the last counts and remove this worker's heartbeat (bounded)."""
        self.state = "stopping"
        self.leases.close()
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

    # -- ARQ hooks ------------------------------------------------------------------------
    async def on_job_start(self, ctx: dict[str, Any]) -> None:
        self.running.add(ctx["job_id"])
        self.leases.phase(ctx["job_id"], "body")

    async def on_job_end(self, ctx: dict[str, Any]) -> None:
        self.running.discard(ctx["job_id"])
        self.leases.phase(ctx["job_id"], "finishing")
        # SeenWorker's run puts the outcome it decided in ctx (plain ARQ: none, not counted)
        ctx.setdefault("outcome", None)

    async def after_job_end(self, ctx: dict[str, Any]) -> None:
        outcome = ctx.get("outcome")
        stale: set[str] = getattr(self._source, "stale_job_ids", set())
        if ctx["job_id"] in stale:
            stale.discard(ctx["job_id"])
            outcome = "stale"
        if self.metrics is not None and outcome is not None:
            self.metrics.job_ended(ctx.get("function"), outcome)
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            try:
                await self.flush_counts()
            except Exception as exc:
                if not is_store_outage(exc):
                    raise
                log.debug("job counts not pushed yet: %s", exc)

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
            running=len(self.running),
            **counts,
        )

    def _take_deltas(self) -> dict[str, int]:
        counts = self.counts()
        if counts is None:
            return {}
        deltas = {k: counts[k] - self._flushed[k] for k in JOB_OUTCOMES}
        self._flushed = counts
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
        """Lease renewal (one round trip), then heartbeat + plain leases + job counts (one)."""
        assert self._client is not None and self._scripts is not None
        worker = self.settings.worker
        lease_ms = self.leases.lease_ms
        await self.leases.renew(self._scripts)
        deltas = self._take_deltas()
        try:
            with translate_errors(self.keys.worker_heartbeat(self.worker_id), operation="beat"):
                async with self._client.pipeline(transaction=False) as pipe:
                    add_beat(pipe, self.keys, self.beat(), worker.heartbeat_ttl)
                    for job_id in self.running:
                        if job_id not in self.leases.held:  # claimed by plain ARQ: no token
                            pipe.pexpire(in_progress_key_prefix + job_id, lease_ms)
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
