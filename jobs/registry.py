"""One registry of jobs: each job is declared once, where it is written.

A job is an ``async def f(ctx: JobContext, *args)`` decorated with ``@job`` (run when
enqueued) or ``@periodic`` (also run on a schedule). The decorator records a
``JobDefinition`` (name, function, timeout, tries, result retention, schedule) on the function
and returns it unchanged (a periodic job: wrapped in its slot run, below). Nothing is
registered globally at import: ``load_registry`` imports our job modules (``BUILTIN_MODULES``)
and the ones ``worker.job_modules`` names, collects the definitions each module declares, and
refuses a clash of names (``jobs.loading``). The worker, its cron set-up, the dashboard and the
fleet reader all read that one registry; ``jobs.arq_jobs`` turns it into ARQ's
``Function``/``CronJob`` objects. Our jobs are declared exactly as an outside team declares
theirs (docs/write-your-own-job.md).

A limit is a number, ``None`` (the worker's default: ``worker.job_timeout``,
``worker.max_tries``, ``worker.keep_result``) or ``FromSetting("section.name")``, read from the
settings when the worker starts. ``[jobs.<name>]`` (``jobs.config.JobSection``) overrides any
of them per deployment. A periodic job's limits default to ``maintenance.timeout`` and
``maintenance.max_tries``.

A periodic job runs once per slot across the fleet: ``@periodic`` wraps its body in
``jobs.slotrun.run_slot`` (slot claim, run guard, history, hand-back on shutdown), so its
author writes none of that. Its body must be idempotent batch work that brings state up to
date (a later run may do the work of a slot whose run was cancelled) and returns a dict
(or None; any other value is stored as ``{"result": value}``). ``once_per_slot=False`` skips
the claim for jobs that are harmless to repeat (ARQ's ``unique`` cron id only).

Pure: no ARQ, no store, no ``worker`` import (``jobs.slotrun`` is imported when a periodic job
runs), so the producer API (base install) can export the decorators.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from jobs.config import check_job_name, check_period

if TYPE_CHECKING:
    from jobs.context import JobContext, JobSettings

JobFunction = Callable[..., Awaitable[Any]]
"""``async def f(ctx: JobContext, *args, **kwargs)``."""
Prelude = Callable[["JobContext"], Awaitable[dict[str, Any]]]
F = TypeVar("F", bound=JobFunction)

ATTRIBUTE = "__seen_job__"
"""Where the decorators leave a function's ``JobDefinition``."""


@dataclass(frozen=True, slots=True)
class FromSetting:
    """A limit or period read from the settings when the worker starts (``path``: the
    setting's dotted name, e.g. ``"maintenance.timeout"``)."""

    path: str

    def read(self, settings: object) -> Any:
        value: Any = settings
        for part in self.path.split("."):
            value = value[part] if isinstance(value, Mapping) else getattr(value, part)
        return value


def _value(limit: Any, settings: object) -> Any:
    return limit.read(settings) if isinstance(limit, FromSetting) else limit


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a periodic job runs: every ``every`` seconds (a number or a setting; 0 = not
    scheduled), on UTC slot boundaries. ``once_per_slot``: claim each slot so one run per
    slot happens across the fleet (``jobs.slotrun``); False for jobs that are harmless to
    repeat (ARQ's ``unique`` cron id only)."""

    every: int | FromSetting
    once_per_slot: bool = True


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """One job as declared. ``None`` limits mean the worker's default."""

    name: str
    coroutine: JobFunction
    """What the worker calls (a periodic job's slot run around its body)."""
    module: str
    """The module that declares it (named in clash errors)."""
    timeout_s: float | FromSetting | None = None
    max_tries: int | FromSetting | None = None
    keep_result_s: float | FromSetting | None = None
    keep_result_forever: bool = False
    schedule: Schedule | None = None

    @property
    def periodic(self) -> bool:
        return self.schedule is not None

    @property
    def period_setting(self) -> str | None:
        """The setting that sets the period: ``[jobs.<name>] every`` overrides the declared
        one (a ``FromSetting`` such as ``maintenance.cleanup_every``, or a number)."""
        if self.schedule is None:
            return None
        every = self.schedule.every
        return every.path if isinstance(every, FromSetting) else f"jobs.{self.name}.every"

    def resolve(self, settings: JobSettings) -> ResolvedJob:
        """The limits and period in force under ``settings`` (``[jobs.<name>]`` first)."""
        section = settings.jobs.get(self.name)

        def pick(key: str, declared: Any) -> Any:
            override = getattr(section, key) if section is not None else None
            return override if override is not None else _value(declared, settings)

        period: int | None = None
        if self.schedule is not None:
            period = int(pick("every", self.schedule.every))
        return ResolvedJob(
            name=self.name,
            coroutine=self.coroutine,
            timeout_s=pick("timeout", self.timeout_s),
            max_tries=pick("max_tries", self.max_tries),
            keep_result_s=pick("keep_result", self.keep_result_s),
            keep_result_forever=self.keep_result_forever,
            period_s=period,
            once_per_slot=self.schedule is not None and self.schedule.once_per_slot,
        )


@dataclass(frozen=True, slots=True)
class ResolvedJob:
    """A job with the numbers in force: what the engine (and ``jobs.arq_jobs``) consume."""

    name: str
    coroutine: JobFunction
    timeout_s: float | None
    max_tries: int | None
    keep_result_s: float | None
    keep_result_forever: bool
    period_s: int | None
    """None: not periodic; 0: periodic but not scheduled here; else the period in seconds."""
    once_per_slot: bool

    @property
    def scheduled(self) -> bool:
        return bool(self.period_s)


@dataclass
class JobRegistry:
    """The jobs this process knows, by name, in the order they were declared."""

    definitions: dict[str, JobDefinition] = field(default_factory=dict)

    def add(self, definition: JobDefinition) -> None:
        """Add one job; ``ValueError`` naming both modules when its name is taken."""
        known = self.definitions.get(definition.name)
        if known is definition:
            return
        if known is not None:
            raise ValueError(
                f"job {definition.name!r} of {definition.module} clashes with the job of the "
                f"same name in {known.module}; give one another name (@job(name=...))"
            )
        self.definitions[definition.name] = definition

    def __contains__(self, name: object) -> bool:
        return name in self.definitions

    def __iter__(self) -> Iterator[JobDefinition]:
        return iter(self.definitions.values())

    def __len__(self) -> int:
        return len(self.definitions)

    def get(self, name: str) -> JobDefinition | None:
        return self.definitions.get(name)

    def names(self) -> list[str]:
        return list(self.definitions)

    def resolve(self, settings: JobSettings) -> list[ResolvedJob]:
        return [d.resolve(settings) for d in self]

    def unclaimed_periods(self, settings: JobSettings) -> dict[str, int]:
        """``{name: period}`` of the scheduled jobs that claim no slot (``once_per_slot=False``:
        idempotent, one run per period by its id alone; no run history)."""
        return {
            j.name: int(j.period_s or 0)
            for j in self.resolve(settings)
            if j.scheduled and not j.once_per_slot
        }

    def slot_periods(self, settings: JobSettings) -> dict[str, int]:
        """``{name: period}`` of the scheduled jobs that claim their slots (the ones with a
        run history: the dashboard's schedules and its "run now")."""
        return {
            j.name: int(j.period_s or 0)
            for j in self.resolve(settings)
            if j.scheduled and j.once_per_slot
        }


def definition_of(obj: object) -> JobDefinition | None:
    """The ``JobDefinition`` a decorator left on ``obj``, if any."""
    found = getattr(obj, ATTRIBUTE, None)
    return found if isinstance(found, JobDefinition) else None


def declared_in(module_name: str, namespace: Mapping[str, object]) -> list[JobDefinition]:
    """The jobs a module declares: definitions in its namespace whose function was written in
    it or below it (a job imported from elsewhere is that module's, not this one's)."""
    found: dict[int, JobDefinition] = {}
    for value in namespace.values():
        definition = definition_of(value)
        if definition is None:
            continue
        home = definition.module
        if home == module_name or home.startswith(module_name + "."):
            found.setdefault(id(definition), definition)
    return list(found.values())


def _declare(
    fn: F,
    name: str | None,
    *,
    timeout: float | FromSetting | None,
    max_tries: int | FromSetting | None,
    keep_result: float | FromSetting | None,
    keep_result_forever: bool,
    schedule: Schedule | None = None,
    wrap: Callable[[F, Callable[[], JobDefinition | None]], F] | None = None,
) -> F:
    if not callable(fn):
        raise TypeError(f"@job/@periodic decorate an async function, got {fn!r}")
    job_name = check_job_name(name if name is not None else fn.__name__)
    definition: JobDefinition | None = None
    target = wrap(fn, lambda: definition) if wrap is not None else fn
    definition = JobDefinition(
        name=job_name,
        coroutine=target,
        module=fn.__module__,
        timeout_s=timeout,
        max_tries=max_tries,
        keep_result_s=keep_result,
        keep_result_forever=keep_result_forever,
        schedule=schedule,
    )
    setattr(target, ATTRIBUTE, definition)
    return target


@overload
def job(fn: F, /) -> F: ...
@overload
def job(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    timeout: float | FromSetting | None = None,
    max_tries: int | FromSetting | None = None,
    keep_result: float | FromSetting | None = None,
    keep_result_forever: bool = False,
) -> Callable[[F], F]: ...
def job(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    timeout: float | FromSetting | None = None,
    max_tries: int | FromSetting | None = None,
    keep_result: float | FromSetting | None = None,
    keep_result_forever: bool = False,
) -> F | Callable[[F], F]:
    """Declare a job run when enqueued: ``@job`` or ``@job(name=..., timeout=...)``.

    ``name`` defaults to the function's; limits left ``None`` are the worker's defaults."""

    def decorate(f: F) -> F:
        return _declare(
            f,
            name,
            timeout=timeout,
            max_tries=max_tries,
            keep_result=keep_result,
            keep_result_forever=keep_result_forever,
        )

    return decorate(fn) if fn is not None else decorate


DEFAULT_PERIODIC_TIMEOUT = FromSetting("maintenance.timeout")
DEFAULT_PERIODIC_TRIES = FromSetting("maintenance.max_tries")


def periodic(
    every: int | FromSetting,
    *,
    name: str | None = None,
    timeout: float | FromSetting | None = DEFAULT_PERIODIC_TIMEOUT,
    max_tries: int | FromSetting | None = DEFAULT_PERIODIC_TRIES,
    keep_result: float | FromSetting | None = None,
    once_per_slot: bool = True,
    prelude: Prelude | None = None,
) -> Callable[[F], F]:
    """Declare a periodic job: run every ``every`` seconds, once per slot across the fleet,
    and also when enqueued by hand (then it takes the run guard, never a slot).

    ``every`` must divide a UTC day as ``jobs.config.check_period`` says (0 = not scheduled
    unless ``[jobs.<name>] every`` sets a period). ``prelude(ctx)`` runs on every worker that
    picks the job up, before the run guard (per-process work, e.g. warming a pool); its dict
    joins the result. Scheduled runs keep no result (the run history has it)."""
    if isinstance(every, bool) or not isinstance(every, int | FromSetting):
        raise TypeError(f"every must be whole seconds or a FromSetting, got {every!r}")
    if isinstance(every, int):
        check_period(every)
    schedule = Schedule(every, once_per_slot)

    def wrap(body: F, definition: Callable[[], JobDefinition | None]) -> F:
        if not once_per_slot:
            return body
        return _slot_run(body, definition, prelude)

    def decorate(f: F) -> F:
        return _declare(
            f,
            name,
            timeout=timeout,
            max_tries=max_tries,
            keep_result=keep_result,
            keep_result_forever=False,
            schedule=schedule,
            wrap=wrap,
        )

    return decorate


def _slot_run(
    body: F, definition: Callable[[], JobDefinition | None], prelude: Prelude | None
) -> F:
    """``body`` inside ``jobs.slotrun.run_slot``: claim, guard, history, hand-back."""

    @functools.wraps(body)
    async def run(ctx: JobContext, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from jobs.slotrun import run_slot

        declared = definition()
        assert declared is not None  # set by _declare before the function is returned
        resolved = declared.resolve(ctx["settings"])
        guard_ttl = resolved.timeout_s or ctx["settings"].maintenance.timeout

        async def run_body() -> dict[str, Any]:
            return as_result(await body(ctx, *args, **kwargs))

        first = (lambda: prelude(ctx)) if prelude is not None else None
        return await run_slot(
            ctx,
            declared.name,
            run_body,
            first,
            period=int(resolved.period_s or 0),
            guard_ttl=float(guard_ttl),
        )

    return run  # type: ignore[return-value]


def as_result(value: object) -> dict[str, Any]:
    """A periodic body's return as the dict its run records: a dict as it is, None as ``{}``,
    anything else as ``{"result": value}``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return {"result": value}
