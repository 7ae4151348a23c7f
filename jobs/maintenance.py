"""Periodic maintenance jobs: ``cleanup_stale_progress``, ``log_cache_stats``, ``warmup_cache``.

Each is declared with ``@periodic`` (``jobs.registry``) with its period from ``[maintenance]``,
and can be enqueued by hand. Every run goes through ``jobs.slotrun.run_slot``, which the
decorator wraps around the body: a scheduled run (ARQ cron id ``<name>:<ms>``) first claims its slot
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
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import sentry_sdk

from cache.scripts import ScriptRunner
from jobs import stats as stats_mod
from jobs import warmup as warmup_mod
from jobs.context import JobContext
from jobs.registry import FromSetting, declared_in, periodic
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
    """``body`` as a run of the maintenance job ``name`` (slot claim, run guard, history:
    ``jobs.slotrun``), with that job's period and timeout in force; for tests and tools that
    run other work under a maintenance job's slot. ``prelude`` runs before the guard is taken
    and even when it is busy (per-process work)."""
    ours = {d.name: d for d in declared_in(__name__, vars(sys.modules[__name__]))}
    if name not in ours:
        raise ValueError(f"{name!r} is not a maintenance job (one of {sorted(ours)})")
    resolved = ours[name].resolve(ctx["settings"])
    guard_ttl = resolved.timeout_s or ctx["settings"].maintenance.timeout
    period = int(resolved.period_s or 0)
    return await run_slot(ctx, name, body, prelude, period=period, guard_ttl=guard_ttl)


# -- the jobs -----------------------------------------------------------------------------
@periodic(FromSetting("maintenance.cleanup_every"))
async def cleanup_stale_progress(ctx: JobContext, older_than: int | None = None) -> Result:
    """Remove download progress idle for longer than ``maintenance.cleanup_older_than``."""
    manager = ctx["cache"]
    cfg = ctx["settings"].maintenance
    age = older_than if older_than is not None else cfg.cleanup_older_than
    return {"removed": await manager.download.cleanup_stale(older_than=age)}


@periodic(FromSetting("maintenance.stats_every"))
async def log_cache_stats(ctx: JobContext) -> Result:
    """One structured log line of the system's figures; a warning above the memory threshold."""
    manager = ctx["cache"]
    settings = ctx["settings"]
    cfg = settings.maintenance
    snapshot = await stats_mod.collect(manager, ctx["redis"], settings.queue.key_layout())
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


async def _prime(ctx: JobContext) -> Result:
    """Scripts and pool on the worker that picked the warmup up (each worker primes its own)."""
    wcfg = ctx["settings"].warmup
    return await warmup_mod.prime(ctx["cache"], _queue_scripts(ctx), wcfg.pool_connections)


@periodic(FromSetting("maintenance.warmup_every"), prelude=_prime)
async def warmup_cache(ctx: JobContext) -> Result:
    """Scripts and pool on this worker (the prelude), then the catalog from the sources."""
    result = await warmup_mod.fill_catalog(ctx["cache"], ctx["settings"].warmup)
    log.info("warmup_cache: %s", stats_mod.logfmt(result))
    return result
