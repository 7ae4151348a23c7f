"""Worker-side settings: defaults match settings.toml, env overrides, validation, queue store."""

from __future__ import annotations

import pytest

from jobs.config import MaintenanceSettings, WarmupSettings
from worker.settings import HealthSettings, SettingsError, WorkerSection, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SEEN_"):
            monkeypatch.delenv(name)


def test_settings_toml_matches_the_model_defaults() -> None:
    settings = load_settings()
    assert settings.worker == WorkerSection()
    assert settings.health == HealthSettings()
    assert settings.maintenance == MaintenanceSettings()
    assert settings.warmup == WarmupSettings()


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEN_MAINTENANCE_CLEANUP_EVERY", "60")
    monkeypatch.setenv("SEEN_WORKER_JOB_LEASE", "30")
    monkeypatch.setenv("SEEN_HEALTH_MAX_QUEUE_AGE", "5")
    monkeypatch.setenv("SEEN_WARMUP_CALLABLES", '["pkg.mod:fn"]')
    monkeypatch.setenv("SEEN_SENTRY_DSN", "https://k@127.0.0.1/1")
    settings = load_settings()
    assert settings.maintenance.cleanup_every == 60
    assert settings.worker.job_lease == 30
    assert settings.health.max_queue_age == 5
    assert settings.warmup.callables == ("pkg.mod:fn",)
    assert settings.sentry.dsn is not None
    assert "k@" not in repr(settings.sentry)


@pytest.mark.parametrize("period", [0, 1, 2, 5, 30, 60, 120, 300, 900, 1800, 3600, 7200, 86400])
def test_schedulable_periods(period: int) -> None:
    assert load_settings(maintenance={"stats_every": period}).maintenance.stats_every == period


@pytest.mark.parametrize("period", [-5, 7, 45, 90, 420, 5400, 172800])
def test_unschedulable_periods_name_the_setting(period: int) -> None:
    with pytest.raises(SettingsError, match=r"maintenance\.stats_every.*SEEN_MAINTENANCE_STATS"):
        load_settings(maintenance={"stats_every": period})


@pytest.mark.parametrize(
    ("worker", "message"),
    [
        ({"heartbeat_interval": 5, "heartbeat_ttl": 9}, "heartbeat_ttl"),
        ({"heartbeat_interval": 5, "job_lease": 9}, "job_lease"),
        ({"backoff_base": 5, "backoff_cap": 1}, "backoff_cap"),
    ],
)
def test_worker_timing_is_checked(worker: dict[str, float], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(worker=worker)


def test_queue_defaults_to_the_cache_store() -> None:
    settings = load_settings(cache={"addr": "cache:6379", "password": "pw", "db": 2})
    queue = settings.queue_cache_settings()
    assert (queue.addr, queue.db) == ("cache:6379", 2)
    assert queue.password is not None and queue.password.get_secret_value() == "pw"


def test_queue_on_its_own_store_never_gets_the_cache_password() -> None:
    settings = load_settings(
        cache={"addr": "cache:6379", "password": "cache-pw"},
        queue={"addr": "queue:6380", "db": 1},
    )
    queue = settings.queue_cache_settings()
    assert (queue.addr, queue.db, queue.password) == ("queue:6380", 1, None)
    assert settings.queue_addr() == "queue:6380"
    with_pw = load_settings(queue={"addr": "queue:6380", "password": "q-pw"})
    password = with_pw.queue_cache_settings().password
    assert password is not None and password.get_secret_value() == "q-pw"
