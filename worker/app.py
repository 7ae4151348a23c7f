"""Builds the ARQ worker configuration from ``Settings``: functions, cron jobs, hooks.

The job context (``ctx``) carries ``settings``, ``runtime`` (the ``WorkerRuntime``: id,
heartbeats, leases, counters), ``worker_id``, and from start-up on ``cache`` (the process's one
``CacheManager``), ``redis`` (ARQ's queue store client) and ``queue_scripts`` (our scripts on
the queue store). Locks, slot claims, heartbeats and job counters live on the queue store, so an
evicting cache instance never holds them.

Per-function timeouts stay short (``ping`` 5 s, maintenance ``maintenance.timeout``, the rest
``worker.job_timeout``); a dead worker's job is picked up after ``worker.job_lease`` whatever the
timeouts (see ``worker.runtime``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from datetime import UTC
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.worker import Function

from cache.client import create_pool
from cache.manager import CacheManager
from cache.scripts import ScriptRunner
from jobs import maintenance, serializer
from jobs.arq_jobs import arq_functions
from jobs.context import JobContext
from worker.cron import build_cron_jobs
from worker.http.metrics import WorkerMetrics
from worker.http.server import HttpServer
from worker.job_modules import load_jobs
from worker.outage import wait_until_reachable
from worker.queue_store import refuse_cluster
from worker.runtime import WorkerRuntime
from worker.sentry import init_sentry, instrument
from worker.settings import Settings, SettingsError, load_settings

log = logging.getLogger("seen.worker")


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
    """ARQ's client on our pool: socket timeouts, retries with backoff, health checks."""
    return ArqRedis(
        create_pool(settings.queue_cache_settings()),
        job_serializer=serializer.serialize,
        job_deserializer=serializer.deserialize,
        default_queue_name=settings.queue.name,
    )


def job_functions(settings: Settings) -> list[Function]:
    """Every job the worker runs (scheduled ones also run when enqueued by hand): the
    registry's (``jobs.registry``: ours and those of ``worker.job_modules``)."""
    return arq_functions(load_jobs(settings).resolve(settings))


async def on_startup(ctx: dict[str, Any]) -> None:
    """Completes the job context (``jobs.context.JobContext``): ``build_worker_settings`` put
    ``settings``, ``runtime`` and ``worker_id`` in, ARQ ``redis``; here ``queue_scripts`` and
    ``cache`` join them."""
    settings: Settings = ctx["settings"]
    runtime: WorkerRuntime = ctx["runtime"]
    queue: ArqRedis = ctx["redis"]
    await refuse_cluster(queue, settings.queue_cache_settings().safe_url())
    init_sentry(settings, runtime.worker_id)
    scripts = ScriptRunner(queue)
    manager = await CacheManager.connect(settings, verify=False)
    ctx.update(queue_scripts=scripts, cache=manager)
    runtime.progress_outcomes = manager.download.outcomes
    runtime.manager = manager
    await start_http(ctx)
    await wait_until_reachable(manager.ping, runtime.cache_outage, settings.worker.startup_timeout)
    await runtime.start(queue, scripts)
    if settings.maintenance.warmup_at_startup:
        startup: JobContext = {
            "cache": manager,
            "redis": queue,
            "settings": settings,
            "runtime": runtime,
            "queue_scripts": scripts,
            "worker_id": runtime.worker_id,
            "job_id": f"startup-{runtime.worker_id}",
        }
        try:
            async with asyncio.timeout(settings.maintenance.timeout):
                done = await maintenance.warmup_cache(startup)
        except Exception:
            log.exception("start-up warmup failed; the worker carries on")
        else:
            log.info("start-up warmup: %s", done)
    runtime.state = "running"
    log.info(
        "worker %s started: cache %s, queue %s on %s",
        runtime.worker_id,
        settings.cache.safe_url(),
        settings.queue.name,
        settings.queue_cache_settings().safe_url(),
    )


async def start_http(ctx: dict[str, Any]) -> None:
    """Serve ``/metrics``, ``/livez``, ``/readyz`` (``[http]``); a port that cannot be bound
    is logged as an error and the worker runs on without them."""
    settings: Settings = ctx["settings"]
    runtime: WorkerRuntime = ctx["runtime"]
    if not settings.http.enabled or runtime.metrics is None:
        return
    server = HttpServer(settings.http, runtime.metrics.registry, runtime.readiness)
    try:
        await server.start()
    except OSError as exc:
        log.error("http.addr %s cannot be bound (%s): no /metrics", settings.http.addr, exc)
        return
    ctx["http"] = server
    runtime.http_port = server.port


async def on_shutdown(ctx: dict[str, Any]) -> None:
    runtime: WorkerRuntime = ctx["runtime"]
    await runtime.stop()
    manager: CacheManager | None = ctx.pop("cache", None)
    if manager is not None:
        await manager.aclose()
    server: HttpServer | None = ctx.pop("http", None)
    if server is not None:
        await server.aclose()
    log.info("worker %s stopped", runtime.worker_id)


async def on_job_start(ctx: dict[str, Any]) -> None:
    await ctx["runtime"].on_job_start(ctx)


async def on_job_end(ctx: dict[str, Any]) -> None:
    await ctx["runtime"].on_job_end(ctx)


async def after_job_end(ctx: dict[str, Any]) -> None:
    await ctx["runtime"].after_job_end(ctx)


def build_worker_settings(
    settings: Settings, runtime: WorkerRuntime | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``arq.worker.Worker`` (and ``SeenWorker``)."""
    runtime = runtime or WorkerRuntime(settings)
    w = settings.worker
    functions = job_functions(settings)
    cron_jobs = build_cron_jobs(settings)
    crons = [c.name for c in cron_jobs]
    metrics = WorkerMetrics([f.name for f in functions] + crons, runtime, crons)
    runtime.metrics = metrics
    functions = [
        dataclasses.replace(j, coroutine=metrics.wrap(j.name, j.coroutine)) for j in functions
    ]
    cron_jobs = [
        dataclasses.replace(j, coroutine=metrics.wrap(j.name, j.coroutine, cron=True))
        for j in cron_jobs
    ]
    if settings.sentry.dsn is not None:  # outermost: Sentry sees the job as ARQ runs it
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
        "after_job_end": after_job_end,
        "handle_signals": True,
        "allow_abort_jobs": True,  # Job.abort() cancels a running job (counted "cancelled")
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
