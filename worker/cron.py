"""The scheduled jobs of the registry as ARQ cron jobs (``jobs.arq_jobs``).

Each cron job carries the job's own name (``cleanup_stale_progress`` ...), so a scheduled run
and a manual ``enqueue_job("cleanup_stale_progress")`` run the same code; the job body tells
them apart by ARQ's cron id ``<name>:<scheduled ms>`` and claims the slot (``jobs.schedule``).
The worker evaluates cron in UTC so every worker agrees on slot boundaries. A job declared with
``once_per_slot=False`` (``repair_pending_progress``) runs without a claim.
"""

from __future__ import annotations

from arq.cron import CronJob

from jobs.arq_jobs import arq_cron_jobs
from worker.job_modules import load_jobs
from worker.settings import Settings


def build_cron_jobs(settings: Settings) -> list[CronJob]:
    """One ARQ cron job per periodic job with a period in force (> 0)."""
    return arq_cron_jobs(load_jobs(settings).resolve(settings))
