"""Builds the ARQ worker configuration from ``Settings``.

The job context (``ctx``) carries ``settings`` (the ``Settings``) and ``cache`` (the process's
one ``CacheManager``), created in ``on_startup`` and closed in ``on_shutdown``.
"""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import RedisSettings
from arq.worker import func

from cache.manager import CacheManager
from jobs import probe, progress, serializer
from worker.settings import Settings

log = logging.getLogger("seen.worker")


def queue_redis_settings(settings: Settings) -> RedisSettings:
    """ARQ's connection settings for the queue store (defaults to the cache's)."""
    addr = settings.queue_addr()
    url = addr if "://" in addr else f"redis://{addr}"
    redis = RedisSettings.from_dsn(url)
    if "://" not in addr:
        redis.database = settings.queue.db if settings.queue.db is not None else settings.cache.db
    elif settings.queue.db is not None:
        redis.database = settings.queue.db
    password = settings.queue.password or (None if settings.queue.addr else settings.cache.password)
    if password is not None:
        redis.password = password.get_secret_value()
    if settings.cache.username and not settings.queue.addr:
        redis.username = settings.cache.username
    redis.conn_timeout = max(1, round(settings.cache.connect_timeout))
    redis.conn_retries = max(1, settings.cache.retries)
    return redis


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    manager = await CacheManager.connect(settings)
    ctx["cache"] = manager
    done = await manager.warmup()
    log.info("worker started: cache %s, warmup %s", settings.cache.safe_url(), done)


async def on_shutdown(ctx: dict[str, Any]) -> None:
    manager: CacheManager | None = ctx.pop("cache", None)
    if manager is not None:
        await manager.aclose()
    log.info("worker stopped")


def build_worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``arq.worker.Worker``."""
    w = settings.worker
    return {
        "functions": [
            func(probe.ping, name="ping", timeout=5, max_tries=1),
            *progress.worker_functions(),
        ],
        "redis_settings": queue_redis_settings(settings),
        "queue_name": settings.queue.name,
        "max_jobs": w.max_jobs,
        "poll_delay": w.poll_delay,
        "job_timeout": w.job_timeout,
        "keep_result": w.keep_result,
        "max_tries": w.max_tries,
        "job_serializer": serializer.serialize,
        "job_deserializer": serializer.deserialize,
        "ctx": {"settings": settings},
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "handle_signals": True,
    }
