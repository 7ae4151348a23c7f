"""The typed job context: what every job function receives as ``ctx``.

ARQ passes each job one dict. ``worker.app`` fills it in one place: ``build_worker_settings``
puts ``settings``, ``runtime`` and ``worker_id`` in, ``on_startup`` adds ``cache`` and
``queue_scripts``, ARQ adds ``redis`` at start-up and ``job_id``, ``job_try``,
``enqueue_time`` and ``score`` per job. Every key is optional to the type (``total=False``): a
context built by hand (a test, the start-up warmup, a job run outside a worker) holds only what
its jobs read, and jobs fall back where a key may be missing (``queue_scripts``, ``runtime``).

Jobs never import ``worker``: what they read of the worker's settings and runtime is described
here by protocols (``JobSettings``, ``JobRuntime``) that ``worker.settings.Settings`` and
``worker.runtime.WorkerRuntime`` satisfy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Concatenate, ParamSpec, Protocol, TypedDict, TypeVar, cast

from jobs.config import JobSection, MaintenanceSettings, WarmupSettings
from jobs.wire.layout import QueueLayout

if TYPE_CHECKING:  # types only: the producer API (base install, no ARQ) exports JobContext
    from arq.typing import WorkerCoroutine
    from redis.asyncio import Redis

    from cache.manager import CacheManager
    from cache.scripts import ScriptRunner


class QueueSection(Protocol):
    """What jobs read of ``[queue]``."""

    @property
    def name(self) -> str: ...

    def key_layout(self) -> QueueLayout: ...


class JobSettings(Protocol):
    """What jobs read of the worker's settings."""

    @property
    def queue(self) -> QueueSection: ...

    @property
    def maintenance(self) -> MaintenanceSettings: ...

    @property
    def warmup(self) -> WarmupSettings: ...

    @property
    def jobs(self) -> Mapping[str, JobSection]: ...


class RunLease(Protocol):
    """The lease one run of a job holds (``worker.engine``): its key and token."""

    @property
    def key(self) -> str: ...

    @property
    def token(self) -> bytes: ...


class JobRuntime(Protocol):
    """What jobs use of the worker process's runtime (``worker.runtime.WorkerRuntime``)."""

    @property
    def worker_id(self) -> str: ...

    @property
    def state(self) -> str: ...


class StoreSpans(Protocol):
    """Spans around a traced job's store writes (``jobs.spans.store_write``; the worker's
    ``worker.engine.tracing.StoreSpans``)."""

    def store_write(
        self, name: str, attributes: Mapping[str, int | str]
    ) -> AbstractContextManager[None]: ...


class JobContext(TypedDict, total=False):
    """ARQ's ``ctx`` as the jobs see it (see the module docstring for who fills which key)."""

    cache: CacheManager
    """The process's one cache manager."""
    redis: Redis
    """The client of the queue store (ARQ's ``ArqRedis`` under plain ARQ)."""
    layout: QueueLayout
    """Where the queue's keys are (``queue.layout``); see ``queue_layout``."""
    settings: JobSettings
    runtime: JobRuntime
    queue_scripts: ScriptRunner
    """Our Lua scripts on the queue store (slot claims, run guards, leases)."""
    worker_id: str
    job_id: str
    job_try: int
    enqueue_time: datetime
    score: int
    run_outcome: str
    """Set by a periodic run that ended without running its body (``jobs.slotrun``)."""
    lease: RunLease
    """This run's job lease (the key and the token it holds), when the engine claimed it."""
    trace: dict[str, str]
    """The W3C trace context the producer attached to the job (``tc``), when it did."""
    spans: StoreSpans
    """When the worker traces this job: spans for its store writes (``jobs.spans``)."""


P = ParamSpec("P")
R = TypeVar("R")


def arq_job(job: Callable[Concatenate[JobContext, P], Awaitable[R]]) -> WorkerCoroutine:
    """``job`` as ARQ's ``func``/``cron`` take it: ARQ types ``ctx`` as a plain dict, which is
    what a ``JobContext`` is at run time."""
    return cast("WorkerCoroutine", job)


def queue_layout(ctx: JobContext) -> QueueLayout:
    """The queue's key layout: ``ctx["layout"]``, else ARQ's layout on the queue name the
    settings give (a context built by hand, or plain ARQ before start-up filled it in)."""
    layout = ctx.get("layout")
    if layout is not None:
        return layout
    settings = ctx.get("settings")
    return settings.queue.key_layout() if settings is not None else QueueLayout.arq()
