"""The worker process, composed: ``SeenWorker`` owns every resource ``seen-worker run`` uses.

``SeenWorker(settings).run()`` starts, in order: the queue store's client (waiting up to
``worker.startup_timeout`` for it), Sentry, tracing (``[otel]``, docs/tracing.md), the cache
manager (waiting for the cache store), ``/metrics`` ``/livez`` ``/readyz``, heartbeats, the
start-up warmup, then the job engine (``worker.engine``), with every collaborator handed to
it at construction. It returns after a stop (``stop()``: SIGTERM/SIGINT under ``seen-worker
run``) or, in burst mode, once the queue is empty, having closed all of them (bounded).
Start-up objects are frozen out of the cyclic garbage collector before the first job
(``gc.freeze``): full collections would otherwise walk them again and again while jobs run.

``arq worker.settings.WorkerSettings`` (ARQ's own CLI) still works: ``build_worker_settings``
gives ARQ's ``Worker`` the same functions, periodic jobs and heartbeats on ARQ's key layout.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from arq.connections import ArqRedis, RedisSettings
from arq.worker import Function
from redis.asyncio import Redis

from cache.cancellation import cancel_and_wait
from cache.client import create_client, create_pool
from cache.cluster import is_cluster
from cache.manager import CacheManager
from cache.scripts import ScriptRunner
from jobs import maintenance, serializer
from jobs.arq_jobs import arq_functions
from jobs.context import JobContext
from jobs.deadletter import make_dead_letter, push_dead_letters
from jobs.registry import ResolvedJob
from worker.cron import build_cron_jobs
from worker.engine import Engine, EngineConfig
from worker.engine.functions import Defaults, from_resolved, function_table
from worker.engine.schedule import Periodic
from worker.engine.tracing import JobTracing
from worker.http.metrics import WorkerMetrics
from worker.http.server import HttpServer
from worker.job_modules import load_jobs
from worker.outage import wait_until_reachable
from worker.queue_store import refuse_cluster
from worker.runtime import WorkerRuntime
from worker.sentry import init_sentry, instrument, instrument_table
from worker.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:  # the otel extra's: imported at start-up only when tracing is on
    from worker.otel import OtelPipeline

log = logging.getLogger("seen.worker")

CLOSE_WITHIN_S = 2.5
"""What closing the stores and the HTTP server may take after the engine stopped."""


def queue_redis_settings(settings: Settings) -> RedisSettings:
    """ARQ's connection settings for the queue store (used by ``arq worker.settings...``)."""
    qs = settings.queue_cache_settings()
    url = qs.url()
    redis = RedisSettings.from_dsn(url)
    if "://" not in qs.addr:
        redis.database = qs.db
    if qs.password is not None:
        redis.password = qs.password.get_secret_value()
    if qs.username:
        redis.username = qs.username
    redis.conn_timeout = max(1, round(qs.connect_timeout))
    redis.conn_retries = max(1, qs.retries)
    return redis


def create_queue_pool(settings: Settings) -> ArqRedis:
    """ARQ's ``ArqRedis`` on our pool (socket timeouts, retries with backoff, health checks) on
    the queue store: the client of ARQ's own producers and CLI, one instance."""
    return ArqRedis(
        create_pool(settings.queue_cache_settings()),
        job_serializer=serializer.serialize,
        job_deserializer=serializer.deserialize,
        default_queue_name=settings.queue.name,
    )


def create_queue_client(settings: Settings) -> Redis:
    """The worker's client of the queue store, which jobs get as ``ctx["redis"]``: a cluster
    client when the (sharded) queue is on a Redis Cluster, else ``create_queue_pool``'s."""
    qs = settings.queue_cache_settings()
    if qs.is_cluster:
        return create_client(qs)
    return create_queue_pool(settings)


def job_functions(settings: Settings) -> list[Function]:
    """Every job the worker runs (scheduled ones also run when enqueued by hand): the
    registry's (``jobs.registry``: ours and those of ``worker.job_modules``), as ARQ's
    ``Function`` objects for ``arq worker.settings.WorkerSettings``."""
    return arq_functions(load_jobs(settings).resolve(settings))


def periodic_schedules(jobs: Sequence[ResolvedJob]) -> list[Periodic]:
    """The engine's schedules: every periodic job with a period in force."""
    return [Periodic(j.name, j.period_s) for j in jobs if j.period_s]


async def close_client(client: Redis) -> None:
    """Close a client and its connections (a cluster client owns its nodes' pools)."""
    if is_cluster(client):
        await client.aclose()
    else:
        await client.aclose(close_connection_pool=True)


class ManagerDeadLetters:
    """The engine's dead letters, kept by the cache manager (``jobs.deadletter``)."""

    def __init__(self, manager: CacheManager) -> None:
        self.manager = manager

    async def letter(
        self, job_id: str, function: str, reason: str, payload: Any, job_try: int
    ) -> None:
        letter = make_dead_letter(
            self.manager,
            job_id=job_id,
            function=function,
            reason=reason,
            payload=payload,
            job_try=job_try,
        )
        await push_dead_letters(self.manager, [letter])


class SeenWorker:
    """One worker process: its stores, heartbeats, HTTP server and engine (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: WorkerRuntime | None = None,
        extra_functions: Sequence[Function] = (),
        burst: bool = False,
        max_burst_jobs: int = -1,
        cron: bool = True,
        tracing: JobTracing | None = None,
    ) -> None:
        self.settings = settings
        self.tracing = tracing
        """Spans of traced jobs: the caller's (it owns the provider), else made from
        ``[otel]`` at start-up when enabled (docs/tracing.md), else None (off)."""
        self.runtime = runtime or WorkerRuntime(settings)
        self.layout = settings.queue.key_layout()
        self.burst = burst
        self.max_burst_jobs = max_burst_jobs
        w = settings.worker
        defaults = Defaults(w.job_timeout, w.max_tries, w.keep_result)
        jobs = load_jobs(settings).resolve(settings)
        extras = function_table(extra_functions, defaults)
        table = {j.name: from_resolved(j, defaults) for j in jobs} | dict(extras)
        if settings.sentry.dsn is not None:  # Sentry sees each job as it runs
            table = instrument_table(table)
        self.functions = table
        self.periodic = periodic_schedules(jobs) if cron else []
        crons = [p.name for p in self.periodic]
        self.metrics = WorkerMetrics(self.functions, self, crons)
        self.queue: Redis | None = None
        self.scripts: ScriptRunner | None = None
        self.manager: CacheManager | None = None
        self.http: HttpServer | None = None
        self.engine: Engine | None = None
        self.otel: OtelPipeline | None = None
        """The tracing pipeline this worker made (and closes), if it made one."""
        self.ctx: dict[str, Any] = {}
        self._stop_requested: float | None = None
        self._stopped = False

    @property
    def worker_id(self) -> str:
        return self.runtime.worker_id

    def stop(self, grace_s: float | None = None) -> None:
        """Stop: no new jobs, running ones get ``grace_s`` (default ``shutdown_grace``)."""
        self.runtime.state = "stopping"
        if self.engine is not None:
            self.engine.stop(grace_s)
        else:
            self._stop_requested = (
                self.settings.worker.shutdown_grace if grace_s is None else grace_s
            )

    async def run(self) -> None:
        """Start, run jobs until stopped (or the burst is over), close everything (bounded).
        Raises ``StartupTimeout`` / ``QueueStoreError`` when start-up cannot complete."""
        try:
            engine = await self._start()
            if self._stop_requested is not None:
                engine.stop(self._stop_requested)
            gc.collect()
            gc.freeze()
            await engine.run()
        finally:
            await self.aclose()

    async def _start(self) -> Engine:
        settings = self.settings
        runtime = self.runtime
        w = settings.worker
        self.queue = queue = create_queue_client(settings)
        await wait_until_reachable(queue.ping, runtime.outage, w.startup_timeout)
        where = settings.queue_cache_settings().safe_url()
        await refuse_cluster(queue, where, sharded=self.layout.kind == "sharded")
        init_sentry(settings, runtime.worker_id)
        self._start_tracing()
        self.scripts = scripts = ScriptRunner(queue)
        self.manager = manager = await CacheManager.connect(settings, verify=False)
        self.ctx = {
            "cache": manager,
            "redis": queue,
            "settings": settings,
            "runtime": runtime,
            "queue_scripts": scripts,
            "worker_id": runtime.worker_id,
            "layout": self.layout,
        }
        await self._start_http()
        await wait_until_reachable(manager.ping, runtime.cache_outage, w.startup_timeout)
        engine = Engine(
            layout=self.layout,
            client=queue,
            scripts=scripts,
            functions=self.functions,
            periodic=self.periodic,
            config=EngineConfig(
                max_jobs=w.max_jobs,
                poll_delay_s=w.poll_delay,
                job_lease_s=w.job_lease,
                renew_every_s=w.heartbeat_interval,
                shutdown_grace_s=w.shutdown_grace,
                failed_result_ms=round(w.keep_result * 1000),
                backoff_base_s=w.backoff_base,
                backoff_cap_s=w.backoff_cap,
                burst=self.burst,
                max_burst_jobs=self.max_burst_jobs,
                log_successes=settings.log.jobs == "all",
                lease_replicas=w.lease_replicas,
                replica_timeout_ms=round(w.lease_replica_timeout * 1000),
            ),
            context=self.ctx,
            observer=self.metrics,
            dead_letters=ManagerDeadLetters(manager),
            worker_id=runtime.worker_id,
            outage=runtime.outage,
            on_stopping=self._stopping,
            tracing=self.tracing,
        )
        self.engine = engine
        await runtime.start(queue, counts=self._store_counts, running=lambda: engine.running)
        if settings.maintenance.warmup_at_startup:
            await self._warmup()
        runtime.state = "running"
        log.info(
            "worker %s started: cache %s, queue %s (%s) on %s, %d functions",
            runtime.worker_id,
            settings.cache.safe_url(),
            settings.queue.name,
            self.layout.describe(),
            settings.queue_cache_settings().safe_url(),
            len(self.functions),
        )
        return engine

    def _start_tracing(self) -> None:
        """``[otel] enabled`` without a caller's tracing: this worker's own pipeline."""
        otel = self.settings.otel
        if self.tracing is not None or not otel.enabled:
            return
        from worker.engine.job_spans import JobSpans  # the otel extra: only when it is on
        from worker.otel import OtelPipeline

        self.otel = pipeline = OtelPipeline.from_settings(otel, self.worker_id)
        self.tracing = JobSpans(
            pipeline.provider, queue=self.layout.name, roots=otel.sample_ratio > 0
        )

    def _stopping(self) -> None:
        self.runtime.state = "stopping"

    def _store_counts(self) -> dict[str, int]:
        """The engine's totals as the fleet-wide counters name them."""
        assert self.engine is not None
        c = self.engine.counts
        return {"done": c.complete, "failed": c.failed + c.cancelled, "retried": c.retried}

    async def _start_http(self) -> None:
        """Serve ``/metrics``, ``/livez``, ``/readyz`` (``[http]``); a port that cannot be bound
        is logged as an error and the worker runs on without them."""
        settings = self.settings
        if not settings.http.enabled:
            return
        server = HttpServer(settings.http, self.metrics.registry, self.runtime.readiness)
        try:
            await server.start()
        except OSError as exc:
            log.error("http.addr %s cannot be bound (%s): no /metrics", settings.http.addr, exc)
            return
        self.http = server
        self.runtime.http_port = server.port

    async def _warmup(self) -> None:
        startup: JobContext = {**self.ctx, "job_id": f"startup-{self.worker_id}"}  # type: ignore[typeddict-item]
        try:
            async with asyncio.timeout(self.settings.maintenance.timeout):
                done = await maintenance.warmup_cache(startup)
        except Exception:
            log.exception("start-up warmup failed; the worker carries on")
        else:
            log.info("start-up warmup: %s", done)

    def metric_totals(self) -> dict[str, Any]:
        """Totals owned by the engine, the runtime and the cache manager, read at scrape time
        (``worker.http.series.Totals``)."""
        engine, runtime, manager = self.engine, self.runtime, self.manager
        totals: dict[str, Any] = {
            "leases_lost": engine.leases.lost_total if engine is not None else 0,
            "poll_errors": engine.poll_errors if engine is not None else 0,
            "outages": {"queue": runtime.outage.outages, "cache": runtime.cache_outage.outages},
            "store_errors": {
                "queue": dict(runtime.outage.errors),
                "cache": dict(runtime.cache_outage.errors),
            },
            "progress": dict(manager.download.outcomes) if manager is not None else {},
        }
        if manager is not None:
            totals.update(
                reads=manager.reads.snapshot(),
                locks=manager.locks.counters(),
                rate_limits=dict(manager.ratelimit.decisions),
                **manager.download.coalescing_counts(),
            )
        return totals

    async def aclose(self) -> None:
        """Stop heartbeats (removing ours), close the cache manager, the HTTP server and the
        queue store's connections; bounded, store or no store."""
        if self._stopped:
            return
        self._stopped = True
        gc.unfreeze()
        await self.runtime.stop()
        manager, self.manager = self.manager, None
        http, self.http = self.http, None
        queue, self.queue = self.queue, None
        otel, self.otel = self.otel, None
        closing = []
        if otel is not None:  # after the engine: its last spans are in the batch
            closing.append(asyncio.ensure_future(otel.aclose(CLOSE_WITHIN_S - 0.5)))
        if manager is not None:
            closing.append(asyncio.ensure_future(manager.aclose()))
        if http is not None:
            closing.append(asyncio.ensure_future(http.aclose()))
        if queue is not None:
            closing.append(asyncio.ensure_future(close_client(queue)))
        if closing:
            done, pending = await asyncio.wait(closing, timeout=CLOSE_WITHIN_S)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.warning("closing: %s", task.exception())
            if pending:
                await cancel_and_wait(pending, 0.5, "closing the stores")
        log.info("worker %s stopped", self.worker_id)


# -- ARQ's own CLI: ``arq worker.settings.WorkerSettings`` --------------------------------
async def on_startup(ctx: dict[str, Any]) -> None:
    """Completes ARQ's job context (``jobs.context.JobContext``): ``build_worker_settings``
    put ``settings``, ``runtime`` and ``worker_id`` in, ARQ ``redis``; here ``queue_scripts``,
    ``cache`` and ``layout`` join them, and heartbeats start."""
    settings: Settings = ctx["settings"]
    runtime: WorkerRuntime = ctx["runtime"]
    queue: ArqRedis = ctx["redis"]
    await refuse_cluster(queue, settings.queue_cache_settings().safe_url())
    init_sentry(settings, runtime.worker_id)
    manager = await CacheManager.connect(settings, verify=False)
    ctx.update(queue_scripts=ScriptRunner(queue), cache=manager, layout=settings.queue.key_layout())
    await wait_until_reachable(manager.ping, runtime.cache_outage, settings.worker.startup_timeout)
    await runtime.start(queue)
    runtime.state = "running"


async def on_shutdown(ctx: dict[str, Any]) -> None:
    runtime: WorkerRuntime = ctx["runtime"]
    await runtime.stop()
    manager: CacheManager | None = ctx.pop("cache", None)
    if manager is not None:
        await manager.aclose()


async def on_job_start(ctx: dict[str, Any]) -> None:
    await ctx["runtime"].on_job_start(ctx)


async def on_job_end(ctx: dict[str, Any]) -> None:
    await ctx["runtime"].on_job_end(ctx)


def build_worker_settings(
    settings: Settings, runtime: WorkerRuntime | None = None
) -> dict[str, Any]:
    """Keyword arguments for ARQ's ``Worker`` (``arq worker.settings.WorkerSettings``): the
    same functions and periodic jobs on ARQ's key layout, with heartbeats. ARQ runs them with
    its own rules (no batch claim, no tokened leases, no metrics): docs/operations.md."""
    if settings.queue.layout != "arq":
        raise ValueError("ARQ's own worker runs only the arq queue layout (queue.layout)")
    runtime = runtime or WorkerRuntime(settings)
    w = settings.worker
    functions = job_functions(settings)
    cron_jobs = build_cron_jobs(settings)
    if settings.sentry.dsn is not None:
        functions, cron_jobs = instrument(functions), instrument(cron_jobs)
    return {
        "functions": functions,
        "cron_jobs": cron_jobs,
        "redis_settings": queue_redis_settings(settings),
        "queue_name": settings.queue.name,
        "max_jobs": w.max_jobs,
        "poll_delay": w.poll_delay,
        "job_timeout": w.job_timeout,
        "keep_result": w.keep_result,
        "max_tries": w.max_tries,
        "job_serializer": serializer.serialize,
        "job_deserializer": serializer.deserialize,
        "ctx": {"settings": settings, "runtime": runtime, "worker_id": runtime.worker_id},
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "on_job_start": on_job_start,
        "on_job_end": on_job_end,
        "handle_signals": True,
        "allow_abort_jobs": True,
        "job_completion_wait": w.shutdown_grace,
        "health_check_key": runtime.keys.worker_arq_health(runtime.worker_id),
        "health_check_interval": w.heartbeat_interval,
        "timezone": UTC,
    }


class _LazyWorkerSettings(dict[str, Any]):
    """ARQ's entry point without reading settings at import.

    ARQ reads a dict-valued WorkerSettings with ``.items()``; the settings are loaded (and the
    worker configuration built) on that first read, not when this module is imported.
    """

    def _fill(self) -> None:
        if not dict.__len__(self):
            try:
                built = build_worker_settings(load_settings())
            except SettingsError as exc:  # one line and exit 2, as from seen-worker
                print(f"seen-worker: configuration error: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
            self.update(built)

    def items(self) -> Any:
        self._fill()
        return super().items()

    def __getitem__(self, key: str) -> Any:
        self._fill()
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._fill()
        return super().get(key, default)


WorkerSettings: dict[str, Any] = _LazyWorkerSettings()
"""``arq worker.app.WorkerSettings``; ``arq worker.settings.WorkerSettings`` is its alias."""
