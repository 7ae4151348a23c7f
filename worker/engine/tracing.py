"""What the engine asks of tracing: ``JobTracing``, an optional collaborator.

The engine and ``JobRun`` hold ``tracing: JobTracing | None``. None (tracing off: the
default, and always without the ``otel`` extra) costs one ``is None`` test per hook and
nothing else: no OpenTelemetry import, no span, no per-job field written. The one
implementation, over OpenTelemetry, is ``worker.engine.job_spans.JobSpans`` (imported only
when tracing is on); what it makes is in docs/tracing.md.

The hooks, in the order a job meets them: ``claimed`` (the claim round trip that took it),
``start`` (its record was read), ``enter`` (its body is about to run, in its own context),
``ran`` (its body ended, or it failed before running), ``finished`` (the finish round trip
that carried its end), ``ended`` (it is no longer this worker's, with its final outcome).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from jobs.outcome import Outcome
from worker.engine.job import Job
from worker.engine.records import JobRecord


class JobTracing(Protocol):
    def claimed(self, jobs: Sequence[Job], start_ns: int) -> None:
        """One claim round trip, sent at ``start_ns`` (``cache.clock.wall_ns``), claimed
        ``jobs``."""

    def start(self, job: Job, record: JobRecord, known: bool) -> None:
        """``job``'s record was read (``known``: the worker has its function)."""

    def enter(self, job: Job, context: contextvars.Context, ctx: dict[str, Any]) -> None:
        """``job``'s body is about to run in ``context`` with job context ``ctx``."""

    def ran(self, job: Job, job_try: int, failure: BaseException | None) -> None:
        """``job``'s run on try ``job_try`` ended; ``failure``: what failed it, if it failed
        (a timeout's is ``TimeoutError``)."""

    def finished(self, jobs: Iterable[Job], start_ns: int, size: int) -> None:
        """One finish round trip, sent at ``start_ns``, carried ``size`` finishes, those of
        ``jobs`` among them."""

    def ended(self, job: Job, outcome: Outcome | None) -> None:
        """``job`` is no longer this worker's; ``outcome`` is how it ended (None: handed
        back unstarted)."""
