"""Settings models of the jobs: ``[maintenance]``, ``[warmup]`` and ``[jobs.<name>]``.

A leaf module: pydantic and ``cache.numbers`` only, so ``worker.settings`` can hold these
sections without loading the jobs, the store client or ARQ. The checks the
models run at load time (``check_period``, ``split_callable``, ``check_job_name``,
``check_module_name``) live here for the same reason; ``jobs.schedule``, ``jobs.warmup`` and
``jobs.registry`` use them from here.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cache.numbers import Count, Seconds, SecondsOrZero, WholeSeconds


def check_period(seconds: int) -> int:
    """Return ``seconds`` if it is a valid period (0 = disabled); else raise ValueError.

    A period must fit ARQ's cron fields and divide a UTC day (``jobs.schedule``)."""
    if seconds == 0:
        return 0
    if seconds < 0:
        raise ValueError("a period must be positive (0 disables the schedule)")
    if seconds < 60:
        ok = 60 % seconds == 0
    elif seconds < 3600:
        ok = seconds % 60 == 0 and 3600 % seconds == 0
    else:
        ok = seconds % 3600 == 0 and 86400 % seconds == 0
    if not ok:
        raise ValueError(
            f"period {seconds}s cannot be scheduled: use a divisor of 60 (s), whole minutes "
            "dividing an hour (60, 120, 300, 600, 900, 1800) or whole hours dividing a day"
        )
    return seconds


JOB_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""A job's name: what producers write in a record's ``f``, the key of its ``[jobs.<name>]``
section and, upper-cased, of its ``SEEN_JOBS_<NAME>`` variable (hence lower case only)."""


def check_job_name(name: str) -> str:
    """Return ``name`` if it is a valid job name; else raise ValueError saying the rule."""
    if not isinstance(name, str) or not JOB_NAME.fullmatch(name):
        raise ValueError(
            f"job name {name!r} must be 1-64 characters: a lower-case letter, then lower-case "
            "letters, digits or _"
        )
    return name


def check_module_name(name: str) -> str:
    """Return ``name`` if it is a dotted module name (``team.jobs``); else raise ValueError."""
    if not isinstance(name, str) or not all(
        p.isidentifier() and p.isascii() for p in name.split(".")
    ):
        raise ValueError(f"{name!r} is not an importable module name (pkg.module)")
    return name


def split_callable(path: str) -> tuple[str, str]:
    """``pkg.mod:func`` or ``pkg.mod.func`` -> (module, attribute); ValueError otherwise."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    parts = [*module_name.split("."), attr]
    if not all(p.isidentifier() and p.isascii() for p in parts):
        raise ValueError(
            f"{path!r} is not a dotted path to a function (pkg.mod:func or pkg.mod.func)"
        )
    return module_name, attr


class MaintenanceSettings(BaseModel):
    """``[maintenance]``: schedules (seconds, 0 = off) and limits of the periodic jobs."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cleanup_every: int = Field(300, description="cleanup_stale_progress period")
    cleanup_older_than: WholeSeconds = Field(3600, description="progress idle this long is stale")
    stats_every: int = Field(300, description="log_cache_stats period")
    warmup_every: int = Field(3600, description="warmup_cache period")
    repair_every: int = Field(
        60, description="repair_pending_progress period (reschedules lost progress drains)"
    )
    warmup_at_startup: bool = Field(True, description="each worker warms up as it starts")
    memory_warning: float = Field(0.9, gt=0, le=1, description="used/max memory ratio to warn at")
    timeout: Seconds = Field(60.0, description="seconds one run may take")
    max_tries: Count = Field(3, description="tries of one run (a crashed worker's run resumes)")
    history: int = Field(100, ge=1, le=10_000, description="runs kept per job in its history")

    @field_validator("cleanup_every", "stats_every", "warmup_every", "repair_every")
    @classmethod
    def _period(cls, value: int) -> int:
        return check_period(value)


class WarmupSettings(BaseModel):
    """``[warmup]``: where the catalog is filled from."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    snapshot: str | None = Field(None, description="JSON-lines file of catalog entries")
    callables: tuple[str, ...] = Field((), description="dotted paths of source functions")
    pool_connections: int = Field(4, ge=1, le=256, description="connections opened at warmup")
    batch: int = Field(500, ge=1, le=10_000, description="entries written per round trip")

    @field_validator("callables")
    @classmethod
    def _dotted_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Check the form now, so a typo stops start-up instead of failing one warmup."""
        for path in value:
            split_callable(path)
        return value


class JobSection(BaseModel):
    """``[jobs.<name>]``: this deployment's overrides of one job's declaration.

    Any job may be named, ours or one from ``worker.job_modules``; a name that no loaded module
    declares stops start-up (``jobs.registry``). Unset keys keep what the declaration says.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    every: int | None = Field(
        None, description="period of a periodic job in seconds (0 = not scheduled)"
    )
    timeout: Seconds | None = Field(None, description="seconds one run may take")
    max_tries: Count | None = Field(None, description="tries of one job")
    keep_result: SecondsOrZero | None = Field(None, description="seconds a result is kept")

    @field_validator("every")
    @classmethod
    def _period(cls, value: int | None) -> int | None:
        return None if value is None else check_period(value)
