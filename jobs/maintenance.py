"""Periodic maintenance jobs: ``cleanup_stale_progress``, ``log_cache_stats``, ``warmup_cache``.

Each runs on a schedule from ``[maintenance]`` and can be enqueued by hand. Every run goes
through ``run_maintenance``: a scheduled run (ARQ cron id ``<name>:<ms>``) first claims its slot
so it runs once per fleet (``jobs.schedule``); every run then holds the job's run guard so a
manual and a scheduled run never overlap (``jobs.guard``); the outcome is appended to the job's
capped run history. A run that finds the guard taken is skipped, not queued behind it: these
jobs are idempotent and the next slot comes soon.

The job context carries ``cache`` (CacheManager), ``redis`` (the queue store), ``settings``
(with ``maintenance``, ``warmup`` and ``queue`` sections) and optionally ``queue_scripts`` and
``worker_id``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sentry_sdk
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cache.manager import CacheManager
from cache.numbers import Count, Seconds, WholeSeconds
from cache.scripts import ScriptRunner
from jobs import stats as stats_mod
from jobs import warmup as warmup_mod
from jobs.guard import RunGuard
from jobs.schedule import ClaimState, SlotClaims, check_period, scheduled_ms, slot_of

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
    """Slot claim (scheduled runs), run guard, body, history. See the module docstring.

    ``prelude`` runs before the guard is taken and even when it is busy (per-process work).
    """
    manager: CacheManager = ctx["cache"]
    cfg: MaintenanceSettings = ctx["settings"].maintenance
    scripts = _queue_scripts(ctx)
    claims = SlotClaims(scripts, manager.keys)
    job_id = str(ctx.get("job_id") or f"manual-{secrets.token_hex(6)}")
    period = cfg.period(name)
    scheduled = scheduled_ms(name, job_id) if period else None
    slot = None if scheduled is None else slot_of(scheduled, period)
    started = time.time()
    entry: Result = {
        "job_id": job_id,
        "slot": slot,
        "try": ctx.get("job_try", 1),
        "worker": ctx.get("worker_id"),
        "started_ms": int(started * 1000),
    }
    if slot is not None:
        state = await claims.claim(name, slot, job_id, period)
        if state is ClaimState.TAKEN:
            log.info("%s: slot %d already ran or is running elsewhere; skipped", name, slot)
            return {"skipped": "slot already ran", "slot": slot}
        if state is ClaimState.RESUMED:
            log.info("%s: resuming slot %d (try %s)", name, slot, entry["try"])
    try:
        result: Result = await prelude() if prelude is not None else {}
        async with RunGuard(scripts, manager.keys).hold(name, job_id, cfg.timeout) as held:
            if held:
                result.update(await body())
            else:
                log.info("%s: another run is in progress; this one is skipped", name)
                result["skipped"] = "another run in progress"
    except asyncio.CancelledError:
        raise  # not finished: the retry of this job id resumes the slot
    except Exception as exc:
        entry.update(
            outcome=f"error: {type(exc).__name__}", seconds=round(time.time() - started, 3)
        )
        await _close_run(claims, name, slot, job_id, entry, cfg.history)
        raise
    entry.update(
        outcome="skipped" if "skipped" in result else "ok",
        seconds=round(time.time() - started, 3),
    )
    await _close_run(claims, name, slot, job_id, entry, cfg.history)
    return result


async def _close_run(
    claims: SlotClaims, name: str, slot: int | None, job_id: str, entry: Result, keep: int
) -> None:
    if slot is not None and not await claims.finish(name, slot, job_id):
        log.warning("%s: claim of slot %d expired before the run finished", name, slot)
    await claims.record(name, entry, keep)


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
