"""Every number setting is finite and in range; unknown ``SEEN_*`` variables are reported with
the nearest valid name. The numeric fields are enumerated from the models."""

from __future__ import annotations

import logging
import math
import os
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from worker.env_check import NOT_SETTINGS, map_sections, sections
from worker.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
TYPOS = {
    "SEEN_WORKERS_MAX_JOBS": "SEEN_WORKER_MAX_JOBS",
    "SEEN_WORKER_MAX_JOB": "SEEN_WORKER_MAX_JOBS",
    "SEEN_CACH_ADDR": "SEEN_CACHE_ADDR",
    "SEEN_TTL_SESION": "SEEN_TTL_SESSION",
    "SEEN_LOG_JSON_LINES": "SEEN_LOG_JSON",
    "seen_workers_max_jobs": "SEEN_WORKER_MAX_JOBS",
}
UNKNOWN_KEY = "SEEN_WORKER_FLUX_CAPACITOR"
SECTION_TYPO = "SEEN_LOCK_TTL"  # section close to [locks], name close to nothing there
UNRELATED = "SEEN_API_BASE_URL"
BAD_NUMBERS = ["inf", "-inf", "nan", "Infinity", "1e400", "-1", str(10**30), str(-(10**30))]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("SEEN_"):
            monkeypatch.delenv(name)


def _numeric(annotation: object) -> bool:
    args = typing.get_args(annotation) or (annotation,)
    return any(a in (int, float) for a in args)


def numeric_fields() -> list[tuple[str, str, type[BaseModel]]]:
    """``(section, field, section model)`` of every int/float setting (``[jobs.<name>]``, keyed
    by job name, has its own test: tests/unit/test_job_registry.py)."""
    out = []
    for section, info in Settings.model_fields.items():
        model = info.annotation
        if typing.get_origin(model) is dict:
            continue
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for name, sub in model.model_fields.items():
            if _numeric(sub.annotation):
                out.append((section, sub.alias or name, model))
    return out


FIELDS = numeric_fields()


def test_the_enumeration_finds_every_section() -> None:
    assert len(FIELDS) >= 60
    assert {s for s, _, _ in FIELDS} >= {"cache", "ttl", "worker", "maintenance", "warmup"}
    assert ("worker", "job_lease", Settings.model_fields["worker"].annotation) in FIELDS


@pytest.mark.parametrize(
    ("section", "name", "model"), FIELDS, ids=[f"{s}.{n}" for s, n, _ in FIELDS]
)
def test_non_finite_and_out_of_range_numbers_are_refused(
    section: str, name: str, model: type[BaseModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = f"SEEN_{section}_{name}".upper()
    accepted, unclear = [], []
    for text in BAD_NUMBERS:
        monkeypatch.setenv(env, text)
        try:
            load_settings()
        except SettingsError as exc:
            if f"{section}.{name}" not in str(exc) or env not in str(exc):
                unclear.append(str(exc))
        else:
            accepted.append(text)
    assert not unclear, f"errors not naming {section}.{name} and {env}: {unclear}"
    monkeypatch.delenv(env)
    for value in (math.inf, -math.inf, math.nan, 1e300, -1, 10**30):
        try:
            model.model_validate({name: value})
        except ValidationError:
            continue
        accepted.append(repr(value))
    assert not accepted, f"{section}.{name} accepted {accepted}"


@pytest.mark.parametrize(("env", "nearest"), TYPOS.items())
def test_misspelt_variables_are_errors_naming_the_nearest(
    env: str, nearest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, "5")
    with pytest.raises(SettingsError, match=f"{env}.*did you mean {nearest}\\?"):
        load_settings()


def test_a_known_section_with_an_unknown_name_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(UNKNOWN_KEY, "1")
    with pytest.raises(SettingsError, match=r"\[worker\] has no setting 'flux_capacitor'"):
        load_settings()


def test_a_section_close_to_a_real_one_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECTION_TYPO, "5")
    with pytest.raises(SettingsError, match=f"{SECTION_TYPO}; valid names: SEEN_LOCKS_"):
        load_settings()


def test_unrelated_variables_are_warned_about_not_fatal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(UNRELATED, "https://api")
    with caplog.at_level(logging.WARNING, logger="seen.settings"):
        load_settings()
    assert UNRELATED in caplog.text
    assert "not a setting" in caplog.text


def test_non_setting_variables_are_silently_fine(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in NOT_SETTINGS:
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("SEEN_SETTINGS_FILE")
    with caplog.at_level(logging.WARNING, logger="seen.settings"):
        load_settings()
    assert caplog.text == ""


def test_every_seen_variable_in_the_repository_is_known() -> None:
    """Each ``SEEN_*`` name used anywhere (code, tests, CI, Docker, docs) is a setting or on the
    allow-list, so the check never breaks a documented or tested variable."""
    valid = {f"SEEN_{s}_{k}" for s, keys in sections(Settings).items() for k in keys}
    valid |= {f"SEEN_{s}" for s in sections(Settings)} | set(NOT_SETTINGS)
    keyed = {f"SEEN_{s}" for s in map_sections(Settings)}  # SEEN_JOBS, SEEN_JOBS_<NAME>
    valid |= keyed
    files = [p for p in ROOT.rglob("*") if p.is_file() and not {".git", ".venv"} & set(p.parts)]
    used: set[str] = set()
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        used |= set(re.findall(r"\bSEEN_[A-Z0-9_]*[A-Z0-9]", text))
    assert "SEEN_COMPAT_LUA54" in used and "SEEN_WORKER_JOB_LEASE" in used
    # a name that only prefixes valid ones is a fragment (a docs pattern, a regex in a test)
    unknown = {u for u in used if u not in valid and not any(v.startswith(u) for v in valid)}
    unknown = {u for u in unknown if not any(u.startswith(f"{k}_") for k in keyed)}
    unknown -= {
        *TYPOS,
        UNKNOWN_KEY,
        UNRELATED,
        SECTION_TYPO,
    }  # the deliberate mistakes of these tests
    assert not unknown, f"SEEN_* names neither settings nor in NOT_SETTINGS: {sorted(unknown)}"


@pytest.mark.parametrize(
    ("worker", "fault"),
    [
        ({"lease_replicas": 6}, "lease_replicas"),
        ({"lease_replicas": -1}, "lease_replicas"),
        ({"lease_replica_timeout": 0}, "lease_replica_timeout"),
        (
            {
                "job_lease": 1.6,
                "heartbeat_interval": 0.5,
                "lease_replicas": 1,
                "lease_replica_timeout": 0.5,
            },
            "job_lease / 4",
        ),
    ],
)
def test_lease_replica_settings_out_of_range_are_refused(
    worker: dict[str, object], fault: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(fault)):
        load_settings(worker=worker)
