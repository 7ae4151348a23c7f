"""The registry: each job declared once (``@job``/``@periodic``), read by the worker, its cron
set-up and the dashboard; ``[jobs.<name>]`` overrides; clashes and unknown names refused."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from jobs import JobContext, job, periodic
from jobs.arq_jobs import arq_cron_jobs, arq_functions
from jobs.config import JobSection
from jobs.loading import BUILTIN_MODULES, RegistryError, check_sections, load_registry
from jobs.registry import FromSetting, JobRegistry, as_result, declared_in, definition_of
from worker.settings import Settings, SettingsError, load_settings

OURS = [
    "ping",
    "update_progress",
    "update_progress_batch",
    "apply_pending_progress",
    "repair_pending_progress",
    "cleanup_stale_progress",
    "log_cache_stats",
    "warmup_cache",
]


@job
async def plain(ctx: JobContext) -> str:
    return "x"


@job(name="renamed", timeout=3, max_tries=2, keep_result=0, keep_result_forever=False)
async def tuned(ctx: JobContext, value: int) -> int:
    return value


@periodic(30, timeout=FromSetting("worker.job_timeout"))
async def every_half_minute(ctx: JobContext) -> dict[str, Any]:
    return {}


def settings(**overrides: Any) -> Settings:
    return load_settings(None, **overrides)


def test_ours_are_declared_in_our_modules_and_loaded_in_order() -> None:
    registry = load_registry()
    assert registry.names() == OURS
    assert {d.module for d in registry} == set(BUILTIN_MODULES)


def test_a_decorator_leaves_its_definition_and_keeps_the_function() -> None:
    d = definition_of(plain)
    assert d is not None and d.name == "plain" and d.coroutine is plain and not d.periodic
    t = definition_of(tuned)
    assert t is not None and (t.name, t.timeout_s, t.max_tries, t.keep_result_s) == (
        "renamed",
        3,
        2,
        0,
    )
    p = definition_of(every_half_minute)
    assert p is not None and p.periodic and p.period_setting == "jobs.every_half_minute.every"
    assert p.coroutine is every_half_minute and p.coroutine.__wrapped__ is not None  # type: ignore[attr-defined]


def test_resolution_reads_settings_and_job_sections() -> None:
    s = settings(
        worker={"job_timeout": 12.0},
        jobs={"every_half_minute": {"every": 10, "max_tries": 4}, "renamed": {"timeout": 9}},
    )
    p = definition_of(every_half_minute)
    t = definition_of(tuned)
    assert p is not None and t is not None
    rp, rt = p.resolve(s), t.resolve(s)
    assert (rp.period_s, rp.timeout_s, rp.max_tries, rp.once_per_slot) == (10, 12.0, 4, True)
    assert (rt.period_s, rt.timeout_s, rt.max_tries, rt.keep_result_s) == (None, 9, 2, 0)
    registry = JobRegistry()
    registry.add(p)
    registry.add(t)
    assert registry.slot_periods(s) == {"every_half_minute": 10}
    functions = {f.name: f for f in arq_functions(registry.resolve(s))}
    assert functions["renamed"].timeout_s == 9 and functions["renamed"].keep_result_s == 0
    (cron,) = arq_cron_jobs(registry.resolve(s))
    assert (cron.name, cron.second, cron.unique, cron.keep_result_s) == (
        "every_half_minute",
        {0, 10, 20, 30, 40, 50},
        True,
        0,
    )


def test_our_limits_are_those_written_before_the_registry() -> None:
    s = settings()
    got = {j.name: (j.timeout_s, j.max_tries, j.keep_result_s) for j in load_registry().resolve(s)}
    m = s.maintenance
    assert got["ping"] == (5, 1, None)
    assert got["update_progress"] == (10, None, None)
    assert got["update_progress_batch"] == (60, None, None)
    assert got["apply_pending_progress"] == (60, None, 0)
    assert got["repair_pending_progress"] == (m.timeout, 1, 0)
    for name in ("cleanup_stale_progress", "log_cache_stats", "warmup_cache"):
        assert got[name] == (m.timeout, m.max_tries, None)


def test_a_clash_of_names_is_refused_naming_both_modules() -> None:
    registry = load_registry()

    @job(name="ping")
    async def mine(ctx: JobContext) -> None:
        return None

    d = definition_of(mine)
    assert d is not None
    with pytest.raises(ValueError, match=r"job 'ping' of .* clashes .* in jobs\.probe"):
        registry.add(d)


def test_a_module_declares_only_what_it_wrote() -> None:
    namespace = {"plain": plain, "imported": definition_of(tuned) and tuned, "x": 1}
    assert [d.name for d in declared_in(__name__, namespace)] == ["plain", "renamed"]
    assert declared_in("somewhere.else", namespace) == []


def test_sections_must_name_a_loaded_job_and_every_a_periodic_one() -> None:
    registry = load_registry()
    with pytest.raises(RegistryError, match="did you mean 'log_cache_stats'"):
        check_sections(registry, {"log_cache_stat": JobSection(every=60)})
    with pytest.raises(RegistryError, match="ping is not a periodic job"):
        check_sections(registry, {"ping": JobSection(every=60)})
    check_sections(registry, {"ping": JobSection(timeout=2)})


def test_unknown_modules_and_bad_names_are_refused() -> None:
    with pytest.raises(RegistryError, match=r"no module named 'no_such_pkg\.jobs'"):
        load_registry(["no_such_pkg.jobs"])
    with pytest.raises(ValueError, match="job name 'Bad-Name'"):
        job(name="Bad-Name")(plain)
    with pytest.raises(ValueError, match="period 7s cannot be scheduled"):
        periodic(7)
    with pytest.raises(SettingsError, match=r"worker\.job_modules"):
        settings(worker={"job_modules": ["not a module"]})


@pytest.mark.parametrize("field", ["every", "timeout", "max_tries", "keep_result"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e300, -1, 10**30])
def test_job_sections_refuse_non_finite_and_out_of_range_numbers(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        JobSection.model_validate({field: value})


def test_a_job_section_in_the_environment_is_one_json_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEEN_JOBS_LOG_CACHE_STATS", '{"every": 60, "timeout": 5}')
    s = load_settings(None)
    assert s.jobs["log_cache_stats"] == JobSection(every=60, timeout=5)
    monkeypatch.setenv("SEEN_JOBS_LOG_CACHE_STATS", "every=60")
    with pytest.raises(SettingsError, match=r"jobs\.log_cache_stats: not valid JSON"):
        load_settings(None)
    monkeypatch.setenv("SEEN_JOBS_LOG_CACHE_STATS", '{"every": 1e400}')
    with pytest.raises(SettingsError, match=r"jobs\.log_cache_stats\.every"):
        load_settings(None)


def test_a_periodic_body_returns_a_dict() -> None:
    assert as_result(None) == {} and as_result({"a": 1}) == {"a": 1}
    assert as_result(3) == {"result": 3}
