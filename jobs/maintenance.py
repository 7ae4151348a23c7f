"""Periodic maintenance jobs: ``cleanup_stale_progress``, ``log_cache_stats``, ``warmup_cache``.

Each runs on a schedule from ``[maintenance]`` and can be enqueued by hand. Every run goes
through ``run_maintenance``: a scheduled run (ARQ cron id ``<name>:<ms>``) first claims its slot
so it runs once per fleet (``jobs.schedule``); every run then holds the job's run guard so a
manual and a scheduled run never overlap (``jobs.guard``); the outcome is appended to the job's
capped run history. A run that finds the guard taken does not queue behind it: a manual run is
skipped, a scheduled one leaves its slot owed to the next run that finishes. A scheduled run
cancelled by a stopping worker hands its slot back so its retry runs at once (``jobs.slotrun``).

The jobs are idempotent batch jobs that bring state up to date, so a cancelled run's partial
work is harmless to redo and a run does the work of every slot scheduled before it started:
``cleanup_stale_progress`` removes what is stale when it scans, ``log_cache_stats`` writes its one
line only after collecting, ``warmup_cache`` rewrites the same catalog entries.

The job context carries ``cache`` (CacheManager), ``redis`` (the queue store), ``settings``
(with ``maintenance``, ``warmup`` and ``queue`` sections) and optionally ``queue_scripts`` and
``worker_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import sentry_sdk
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cache.manager import CacheManager
from cache.numbers import Count, Seconds, WholeSeconds
from cache.scripts import ScriptRunner
from jobs import stats as stats_mod
from jobs import warmup as warmup_mod
from jobs.schedule import check_period
from jobs.slotrun import run_slot

log = logging.getLogger("seen.jobs.maintenance")

CLEANUP = "cleanup_stale_progress"
STATS = "log_cache_stats"
WARMUP = "warmup_cache"

Result = dict[str, Any]


class MaintenanceSettings(BaseModel):
    """``[maintenance]``: schedules (seconds, 0 = off) and limits of the periodic jobs."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cleanup_every: int = Field(300, description="cleanup_stale_progress period")
    cleanup_older_than: WholeSeconds = Field(3600, description="progress idle this long is stale")
    stats_every: int = Field(300, description="log_cache_stats period")
    warmup_every: int = Field(3600, description="warmup_cache period")
    repair_every: int = Field(
        60, description="repair_pending_progress period (reschedules lost progress drains)"
    )
    warmup_at_startup: bool = Field(True, description="each worker warms up as it starts")
    memory_warning: float = Field(0.9, gt=0, le=1, description="used/max memory ratio to warn at")
    timeout: Seconds = Field(60.0, description="seconds one run may take")
    max_tries: Count = Field(3, description="tries of one run (a crashed worker's run resumes)")
    history: int = Field(100, ge=1, le=10_000, description="runs kept per job in its history")

    @field_validator("cleanup_every", "stats_every", "warmup_every", "repair_every")
    @classmethod
    def _period(cls, value: int) -> int:
        return check_period(value)

    def period(self, job_name: str) -> int:
        return {
            CLEANUP: self.cleanup_every,
            STATS: self.stats_every,
            WARMUP: self.warmup_every,
        }[job_name]


def _queue_scripts(ctx: dict[str, Any]) -> ScriptRunner:
    scripts: ScriptRunner | None = ctx.get("queue_scripts")
    return scripts if scripts is not None else ScriptRunner(ctx["redis"])


async def run_maintenance(
    ctx: dict[str, Any],
    name: str,
    body: Callable[[], Awaitable[Result]],
    *,
    prelude: Callable[[], Awaitable[Result]] | None = None,
) -> Result:
    """Slot claim (scheduled runs), run guard, body, history: ``jobs.slotrun``.

    ``prelude`` runs before the guard is taken and even when it is busy (per-process work).
    """
    return await run_slot(ctx, name, body, prelude)


# -- the jobs -----------------------------------------------------------------------------
async def cleanup_stale_progress(ctx: dict[str, Any], older_than: int | None = None) -> Result:
    """Remove download progress idle for longer than ``maintenance.cleanup_older_than``."""
    manager: CacheManager = ctx["cache"]
    cfg: MaintenanceSettings = ctx["settings"].maintenance
    age = older_than if older_than is not None else cfg.cleanup_older_than

    async def body() -> Result:
        return {"removed": await manager.download.cleanup_stale(older_than=age)}

    return await run_maintenance(ctx, CLEANUP, body)


async def log_cache_stats(ctx: dict[str, Any]) -> Result:
    """One structured log line of the system's figures; a warning above the memory threshold."""
    manager: CacheManager = ctx["cache"]
    settings = ctx["settings"]
    cfg: MaintenanceSettings = settings.maintenance

    async def body() -> Result:
        snapshot = await stats_mod.collect(manager, ctx["redis"], settings.queue.name)
        figures = snapshot.flat()
        log.info("cache stats %s", stats_mod.logfmt(figures), extra={"stats": figures})
        ratio = snapshot.memory_ratio
        if ratio is not None and ratio >= cfg.memory_warning:
            message = (
                f"cache memory at {ratio:.0%} of maxmemory "
                f"({snapshot.used_memory} / {snapshot.max_memory} bytes), "
                f"threshold {cfg.memory_warning:.0%}"
            )
            log.warning(message)
            sentry_sdk.capture_message(message, level="warning")
            figures["memory_warning"] = True
        return figures

    return await run_maintenance(ctx, STATS, body)


async def warmup_cache(ctx: dict[str, Any]) -> Result:
    """Scripts and pool on this worker, then the catalog from the configured sources."""
    manager: CacheManager = ctx["cache"]
    wcfg: warmup_mod.WarmupSettings = ctx["settings"].warmup

    async def prelude() -> Result:
        return await warmup_mod.prime(manager, _queue_scripts(ctx), wcfg.pool_connections)

    async def body() -> Result:
        return await warmup_mod.fill_catalog(manager, wcfg)

    result = await run_maintenance(ctx, WARMUP, body, prelude=prelude)
    log.info("%s: %s", WARMUP, stats_mod.logfmt(result))
    return result
