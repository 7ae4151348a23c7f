"""The maintenance schedules of ``[maintenance]`` as ARQ cron jobs.

Each cron job carries the function's own name (``cleanup_stale_progress`` ...), so a scheduled
run and a manual ``enqueue_job("cleanup_stale_progress")`` run the same code; the job body tells
them apart by ARQ's cron id ``<name>:<scheduled ms>`` and claims the slot
(``jobs.schedule``). The worker evaluates cron in UTC so every worker agrees on slot boundaries.
"""

from __future__ import annotations

from arq.cron import CronJob, cron

from jobs import maintenance
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
    for function in SCHEDULED:
        name = function.__name__
        period = cfg.period(name)
        if period <= 0:
            continue
        jobs.append(
            cron(
                function,
                name=name,
                **cron_fields(period),
                unique=True,
                timeout=cfg.timeout,
                keep_result=0,
                max_tries=cfg.max_tries,
            )
        )
    return jobs
