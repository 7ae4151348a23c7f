"""Schedule settings become cron fields and slots every worker agrees on."""

from __future__ import annotations

import pytest

from jobs.config import check_period
from jobs.schedule import cron_fields, scheduled_ms, slot_of
from worker.cron import build_cron_jobs
from worker.settings import load_settings


def test_cron_fields() -> None:
    assert cron_fields(2) == {"second": set(range(0, 60, 2)), "minute": None, "hour": None}
    assert cron_fields(300) == {
        "second": 0,
        "minute": {0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55},
        "hour": None,
    }
    assert cron_fields(21600) == {"second": 0, "minute": 0, "hour": {0, 6, 12, 18}}
    with pytest.raises(ValueError, match="disabled"):
        cron_fields(0)
    with pytest.raises(ValueError, match="cannot be scheduled"):
        check_period(7)


def test_cron_ids_and_slots() -> None:
    assert scheduled_ms("log_cache_stats", "log_cache_stats:1700000000123") == 1700000000123
    assert scheduled_ms("log_cache_stats", "cleanup_stale_progress:1700000000123") is None
    assert scheduled_ms("log_cache_stats", "2f6c1d9e0a") is None
    assert scheduled_ms("log_cache_stats", None) is None
    # ARQ schedules at second boundaries + 123.456 ms: still the slot that starts there.
    assert slot_of(1700000100123, 300) == 1700000100 // 300
    assert slot_of(1700000100123, 300) != slot_of(1700000099999, 300)


def test_cron_jobs_follow_the_settings() -> None:
    settings = load_settings(maintenance={"cleanup_every": 120, "stats_every": 0, "timeout": 9})
    jobs = {j.name: j for j in build_cron_jobs(settings)}
    assert set(jobs) == {"cleanup_stale_progress", "warmup_cache", "repair_pending_progress"}
    assert jobs["repair_pending_progress"].second == 0
    cleanup = jobs["cleanup_stale_progress"]
    assert cleanup.minute == set(range(0, 60, 2)) and cleanup.second == 0
    assert cleanup.timeout_s == 9 and cleanup.unique and cleanup.keep_result_s == 0
    assert cleanup.max_tries == settings.maintenance.max_tries
