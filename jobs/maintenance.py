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

The job context (``jobs.context.JobContext``) carries ``cache``, ``redis`` (the queue store),
``settings`` (its ``maintenance``, ``warmup`` and ``queue`` sections) and optionally
``queue_scripts``, ``runtime`` and ``worker_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import sentry_sdk

from cache.scripts import ScriptRunner
from jobs import stats as stats_mod
from jobs import warmup as warmup_mod
from jobs.config import CLEANUP, STATS, WARMUP
from jobs.context import JobContext
from jobs.slotrun import run_slot

log = logging.getLogger("seen.jobs.maintenance")

Result = dict[str, Any]


def _queue_scripts(ctx: JobContext) -> ScriptRunner:
    scripts = ctx.get("queue_scripts")
    return scripts if scripts is not None else ScriptRunner(ctx["redis"])


async def run_maintenance(
    ctx: JobContext,
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
async def cleanup_stale_progress(ctx: JobContext, older_than: int | None = None) -> Result:
    """Remove download progress idle for longer than ``maintenance.cleanup_older_than``."""
    manager = ctx["cache"]
    cfg = ctx["settings"].maintenance
    age = older_than if older_than is not None else cfg.cleanup_older_than

    async def body() -> Result:
        return {"removed": await manager.download.cleanup_stale(older_than=age)}

    return await run_maintenance(ctx, CLEANUP, body)


async def log_cache_stats(ctx: JobContext) -> Result:
    """One structured log line of the system's figures; a warning above the memory threshold."""
    manager = ctx["cache"]
    settings = ctx["settings"]
    cfg = settings.maintenance

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


async def warmup_cache(ctx: JobContext) -> Result:
    """Scripts and pool on this worker, then the catalog from the configured sources."""
    manager = ctx["cache"]
    wcfg = ctx["settings"].warmup

    async def prelude() -> Result:
        return await warmup_mod.prime(manager, _queue_scripts(ctx), wcfg.pool_connections)

    async def body() -> Result:
        return await warmup_mod.fill_catalog(manager, wcfg)

    result = await run_maintenance(ctx, WARMUP, body, prelude=prelude)
    log.info("%s: %s", WARMUP, stats_mod.logfmt(result))
    return result
