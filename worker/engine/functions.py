"""The job functions one engine runs, each with its limits resolved once at start-up.

A job function is ``async def f(ctx, *args, **kwargs)``, the ARQ convention, so a function
written for ARQ runs here unchanged (and ``arq worker.settings.WorkerSettings`` runs ours).
``JobFunction`` is what the engine needs of it; ``from_arq`` reads ARQ's ``Function`` and
``CronJob`` declarations, the form ``worker.app`` and the job registry hand over. Limits left
unset fall back to the worker's defaults (``worker.job_timeout``, ``max_tries``,
``keep_result``) here, not per job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from arq.cron import CronJob
from arq.worker import Function

from jobs.registry import ResolvedJob

KEEP_PERIODIC_LEASE_MS = 60_000
"""How long a periodic job's lease outlives its run (ARQ's ``keep_cronjob_progress``): a copy
of the same scheduled id enqueued late by a slow worker cannot start meanwhile."""

JobCoroutine = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class JobFunction:
    """One runnable job: its coroutine and resolved limits."""

    name: str
    coroutine: JobCoroutine
    timeout_s: float
    max_tries: int
    keep_result_ms: int | None
    """How long the result record is kept, in ms; None keeps it forever; 0 writes none."""
    periodic: bool
    """Scheduled by the worker (ARQ cron): its lease is kept ``KEEP_PERIODIC_LEASE_MS`` after
    the run, and its log and metrics name the job, not the id."""


@dataclass(frozen=True, slots=True)
class Defaults:
    """The worker-wide limits a function inherits when it sets none."""

    timeout_s: float
    max_tries: int
    keep_result_s: float


def from_arq(declared: Function | CronJob, defaults: Defaults) -> JobFunction:
    """The engine's view of an ARQ ``Function`` or ``CronJob`` declaration."""
    periodic = isinstance(declared, CronJob)
    if declared.keep_result_forever:
        keep: int | None = None
    else:
        seconds = (
            defaults.keep_result_s if declared.keep_result_s is None else declared.keep_result_s
        )
        keep = max(0, round(seconds * 1000))
    return JobFunction(
        name=declared.name,
        coroutine=declared.coroutine,
        timeout_s=defaults.timeout_s if declared.timeout_s is None else declared.timeout_s,
        max_tries=defaults.max_tries if declared.max_tries is None else declared.max_tries,
        keep_result_ms=keep,
        periodic=periodic,
    )


def from_resolved(job: ResolvedJob, defaults: Defaults) -> JobFunction:
    """The engine's view of a job of the registry (``jobs.registry``), its limits in force. A
    job with a period in force runs by a periodic job's rules, also when enqueued by hand."""
    if job.keep_result_forever:
        keep: int | None = None
    else:
        seconds = defaults.keep_result_s if job.keep_result_s is None else job.keep_result_s
        keep = max(0, round(seconds * 1000))
    return JobFunction(
        name=job.name,
        coroutine=job.coroutine,
        timeout_s=defaults.timeout_s if job.timeout_s is None else job.timeout_s,
        max_tries=defaults.max_tries if job.max_tries is None else job.max_tries,
        keep_result_ms=keep if not job.scheduled else 0,
        periodic=job.scheduled,
    )


def function_table(
    declared: Iterable[Function | CronJob], defaults: Defaults
) -> Mapping[str, JobFunction]:
    """Every declared function by name. As in ARQ, a periodic declaration replaces a plain one
    of the same name (the job then runs by its schedule's rules, also when enqueued by hand);
    any other name declared twice is an error."""
    table: dict[str, JobFunction] = {}
    for item in declared:
        known = table.get(item.name)
        if known is not None and (known.periodic or not isinstance(item, CronJob)):
            raise ValueError(f"job function {item.name!r} is declared twice")
        table[item.name] = from_arq(item, defaults)
    return table
