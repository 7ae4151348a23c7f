"""The maintenance schedules of ``[maintenance]`` as ARQ cron jobs.

Each cron job carries the function's own name (``cleanup_stale_progress`` ...), so a scheduled
run and a manual ``enqueue_job("cleanup_stale_progress")`` run the same code; the job body tells
them apart by ARQ's cron id ``<name>:<scheduled ms>`` and claims the slot
(``jobs.schedule``). The worker evaluates cron in UTC so every worker agrees on slot boundaries.
``repair_pending_progress`` runs every ``maintenance.repair_every`` seconds without a claim.
"""

from __future__ import annotations

from arq.cron import CronJob, cron

from jobs import maintenance, progress
from jobs.client import REPAIR_FUNCTION
from jobs.context import arq_job
from jobs.schedule import cron_fields
from worker.settings import Settings

SCHEDULED = (
    maintenance.cleanup_stale_progress,
    maintenance.log_cache_stats,
    maintenance.warmup_cache,
)


def build_cron_jobs(settings: Settings) -> list[CronJob]:
    """One ARQ cron job per enabled schedule (period > 0)."""
    cfg = settings.maintenance
    jobs: list[CronJob] = []
    if cfg.repair_every > 0:
        # Idempotent (it only enqueues drains that are missing), so it needs no slot claim:
        # a repeat across workers enqueues nothing more.
        jobs.append(
            cron(
                arq_job(progress.repair_pending_progress),
                name=REPAIR_FUNCTION,
                **cron_fields(cfg.repair_every),
                unique=True,
                timeout=cfg.timeout,
                keep_result=0,
                max_tries=1,
            )
        )
    for function in SCHEDULED:
        name = function.__name__
        period = cfg.period(name)
        if period <= 0:
            continue
        jobs.append(
            cron(
                arq_job(function),
                name=name,
                **cron_fields(period),
                unique=True,
                timeout=cfg.timeout,
                keep_result=0,
                max_tries=cfg.max_tries,
            )
        )
    return jobs
