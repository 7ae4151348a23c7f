"""The registry as ARQ's objects: one ``Function`` per job, one ``CronJob`` per scheduled one.

``arq worker.settings.WorkerSettings`` (plain ARQ) and our worker both run what these return
(``worker.app.job_functions``, ``worker.cron.build_cron_jobs``). A scheduled run is ARQ's cron
job with the job's own name (so a scheduled and a manual run execute the same code; the body
tells them apart by ARQ's cron id ``<name>:<ms>``), ``unique`` and no kept result (the run
history holds its outcome). The worker evaluates cron in UTC, so every worker agrees on slot
boundaries.
"""

from __future__ import annotations

from collections.abc import Iterable

from arq.cron import CronJob, cron
from arq.worker import Function, func

from jobs.context import arq_job
from jobs.registry import ResolvedJob
from jobs.schedule import cron_fields


def arq_function(resolved: ResolvedJob) -> Function:
    """The job as ARQ runs it when enqueued (``None`` limits: the worker's defaults)."""
    return func(
        arq_job(resolved.coroutine),
        name=resolved.name,
        timeout=resolved.timeout_s,
        max_tries=resolved.max_tries,
        keep_result=resolved.keep_result_s,
        keep_result_forever=resolved.keep_result_forever or None,
    )


def arq_cron_job(resolved: ResolvedJob) -> CronJob:
    """The scheduled runs of a job with a period in force."""
    if not resolved.period_s:
        raise ValueError(f"{resolved.name} has no schedule in force")
    return cron(
        arq_job(resolved.coroutine),
        name=resolved.name,
        **cron_fields(resolved.period_s),
        unique=True,
        timeout=resolved.timeout_s,
        keep_result=0,
        max_tries=resolved.max_tries,
    )


def arq_functions(jobs: Iterable[ResolvedJob]) -> list[Function]:
    return [arq_function(j) for j in jobs]


def arq_cron_jobs(jobs: Iterable[ResolvedJob]) -> list[CronJob]:
    return [arq_cron_job(j) for j in jobs if j.scheduled]
