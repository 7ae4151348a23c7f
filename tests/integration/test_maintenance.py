"""Maintenance jobs in-process on the test server: slot claims, run guard, cleanup, stats."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Unpack

import pytest
from redis.asyncio import Redis

from cache.download import ProgressUpdate
from cache.manager import CacheManager
from cache.scripts import ScriptRunner
from jobs import maintenance
from jobs.context import JobContext
from jobs.guard import RunGuard
from jobs.schedule import ClaimState, SlotClaims, slot_of
from tests.conftest import TestServer
from tests.support.layout import QUEUE_SECTION
from tests.support.sources import SLOW_EVENTS
from tests.support.waiting import items
from worker.settings import Settings, load_settings

SCHEDULED = "log_cache_stats:1700000000123"  # ARQ's cron id for a slot of log_cache_stats
PERIOD = 300
SLOT = slot_of(1700000000123, PERIOD)


@pytest.fixture
def settings(server: TestServer) -> Settings:
    return load_settings(queue=QUEUE_SECTION, cache={"addr": server.addr})


def make_ctx(
    manager: CacheManager, settings: Settings, job_id: str, /, **extra: Unpack[JobContext]
) -> JobContext:
    ctx: JobContext = {
        "cache": manager,
        "redis": manager.client,
        "settings": settings,
        "worker_id": "w-test",
        "job_id": job_id,
        "job_try": 1,
    }
    ctx.update(extra)
    return ctx


async def history(raw: Redis, job: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in await items(raw, f"seen:cronlog:{job}")]


async def test_late_copy_of_a_finished_slot_is_skipped(
    manager: CacheManager, raw: Redis, settings: Settings
) -> None:
    """python-arq/arq#196: the same cron id enqueued again after the first run finished."""
    ctx = make_ctx(manager, settings, SCHEDULED)
    first = await maintenance.log_cache_stats(ctx)
    second = await maintenance.log_cache_stats(ctx)
    assert "memory_used" in first
    assert second == {"skipped": "slot already ran", "slot": SLOT}
    runs = await history(raw, "log_cache_stats")
    assert [(r["slot"], r["outcome"], r["job_id"]) for r in runs] == [(SLOT, "ok", SCHEDULED)]
    assert await raw.get(f"seen:cron:log_cache_stats:{SLOT}") == f"done:{SCHEDULED}"
    ttl = await raw.ttl(f"seen:cron:log_cache_stats:{SLOT}")
    assert PERIOD <= ttl <= 2 * PERIOD + 60


async def test_retry_of_the_same_job_resumes_its_slot(
    manager: CacheManager, raw: Redis, settings: Settings
) -> None:
    claims = SlotClaims(ScriptRunner(manager.client), manager.keys)
    # A first try claimed the slot and its worker died before finishing.
    assert await claims.claim("log_cache_stats", SLOT, SCHEDULED, PERIOD) is ClaimState.CLAIMED
    result = await maintenance.log_cache_stats(make_ctx(manager, settings, SCHEDULED, job_try=2))
    assert "skipped" not in result
    (run,) = await history(raw, "log_cache_stats")
    assert run["try"] == 2 and run["outcome"] == "ok"


async def test_another_copy_of_a_claimed_slot_is_skipped(
    manager: CacheManager, raw: Redis, settings: Settings
) -> None:
    claims = SlotClaims(ScriptRunner(manager.client), manager.keys)
    assert await claims.claim("log_cache_stats", SLOT, SCHEDULED, PERIOD) is ClaimState.CLAIMED
    other = "log_cache_stats:1700000001123"  # a skewed worker's time, same slot
    result = await maintenance.log_cache_stats(make_ctx(manager, settings, other))
    assert result["skipped"] == "slot already ran"
    assert await history(raw, "log_cache_stats") == []


async def test_manual_runs_take_no_slot(
    manager: CacheManager, raw: Redis, settings: Settings
) -> None:
    for job_id in ("manual-a", "manual-b"):
        assert "skipped" not in await maintenance.log_cache_stats(
            make_ctx(manager, settings, job_id)
        )
    runs = await history(raw, "log_cache_stats")
    assert [r["slot"] for r in runs] == [None, None]
    assert [k async for k in raw.scan_iter("seen:cron:log_cache_stats:*")] == []


async def test_scheduled_run_defers_while_a_manual_run_holds_the_guard(
    manager: CacheManager, raw: Redis, settings: Settings
) -> None:
    guard = RunGuard(ScriptRunner(manager.client), manager.keys)
    assert await guard.acquire("log_cache_stats", "manual-1", 30)
    result = await maintenance.log_cache_stats(make_ctx(manager, settings, SCHEDULED))
    assert result == {"skipped": "another run in progress"}
    # The slot is not closed as skipped: its work stays owed (to the retry of this id or to the
    # next run that finishes), and no other copy of the slot may take it meanwhile.
    assert await raw.get(f"seen:cron:log_cache_stats:{SLOT}") == f"run:{SCHEDULED}"
    other = "log_cache_stats:1700000001123"  # a skewed worker's copy of the same slot
    assert (await maintenance.log_cache_stats(make_ctx(manager, settings, other)))[
        "skipped"
    ] == "slot already ran"
    assert await guard.release("log_cache_stats", "manual-1")
    assert not await guard.release("log_cache_stats", "manual-1")
    (run,) = await history(raw, "log_cache_stats")
    assert run["outcome"] == "deferred"


async def test_concurrent_manual_and_scheduled_runs_never_overlap(
    manager: CacheManager, raw: Redis, server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEEN_TEST_SLOW_SECONDS", "0.3")
    settings = load_settings(
        queue=QUEUE_SECTION,
        cache={"addr": server.addr},
        warmup={"callables": ["tests.support.sources:slow_source"]},
    )
    scheduled = "warmup_cache:1700000000123"
    manual, timed = await asyncio.gather(
        maintenance.warmup_cache(make_ctx(manager, settings, "manual-x")),
        maintenance.warmup_cache(make_ctx(manager, settings, scheduled)),
    )
    outcomes = sorted(["skipped" in manual, "skipped" in timed])
    assert outcomes == [False, True]
    # Both primed their own process (scripts, pool); only one filled the catalog.
    assert manual["scripts"] == timed["scripts"] >= 1
    events = await items(raw, SLOW_EVENTS)
    assert len(events) == 2 and events[0].startswith("start:") and events[1].startswith("done:")
    assert not await raw.exists("seen:lock:{maintenance:warmup_cache}")


async def test_guard_of_a_dead_try_is_taken_over_by_its_retry(
    manager: CacheManager, settings: Settings
) -> None:
    guard = RunGuard(ScriptRunner(manager.client), manager.keys)
    assert await guard.acquire("log_cache_stats", SCHEDULED, 30)  # the dead first try
    result = await maintenance.log_cache_stats(make_ctx(manager, settings, SCHEDULED, job_try=2))
    assert "skipped" not in result


async def add_stale(manager: CacheManager, count: int, age_s: int, user: str = "u1") -> None:
    """``count`` downloads whose last update was ``age_s`` seconds ago."""
    then = int(time.time() * 1000) - age_s * 1000
    for i in range(count):
        update = ProgressUpdate(
            job_id=f"{user}-job{i}", user_id=user, status="downloading", seq=1, bytes_total=10
        )
        await manager.download.set_progress(update, now=then)


async def test_cleanup_removes_idle_progress(manager: CacheManager, settings: Settings) -> None:
    await add_stale(manager, 7, age_s=settings.maintenance.cleanup_older_than + 60)
    await add_stale(manager, 3, age_s=120, user="u2")
    result = await maintenance.cleanup_stale_progress(make_ctx(manager, settings, "m1"))
    assert result == {"removed": 7}
    assert len(await manager.download.get_active_downloads()) == 3
    result = await maintenance.cleanup_stale_progress(make_ctx(manager, settings, "m2"), 60)
    assert result == {"removed": 3}


async def test_failing_run_releases_guard_and_closes_its_slot(
    manager: CacheManager, raw: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(older_than: float = 0) -> int:
        raise RuntimeError("cleanup broke")

    monkeypatch.setattr(manager.download, "cleanup_stale", broken)
    job_id = "cleanup_stale_progress:1700000000123"
    with pytest.raises(RuntimeError, match="cleanup broke"):
        await maintenance.cleanup_stale_progress(make_ctx(manager, settings, job_id))
    assert not await raw.exists("seen:lock:{maintenance:cleanup_stale_progress}")
    assert await raw.get(f"seen:cron:cleanup_stale_progress:{SLOT}") == f"done:{job_id}"
    (run,) = await history(raw, "cleanup_stale_progress")
    assert run["outcome"] == "error: RuntimeError"


async def test_history_is_capped(manager: CacheManager, raw: Redis, server: TestServer) -> None:
    settings = load_settings(
        queue=QUEUE_SECTION, cache={"addr": server.addr}, maintenance={"history": 3}
    )
    for i in range(5):
        await maintenance.log_cache_stats(make_ctx(manager, settings, f"manual-{i}"))
    runs = await history(raw, "log_cache_stats")
    assert [r["job_id"] for r in runs] == ["manual-4", "manual-3", "manual-2"]
