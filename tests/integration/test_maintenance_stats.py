"""``log_cache_stats`` and the figures behind it: queue depth and age, counters, memory,
active downloads (also through ``seen-worker stats``)."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable
from typing import cast

import pytest
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.download import TERMINAL, ApplyOutcome, DownloadStatus
from cache.manager import CacheManager
from jobs import maintenance
from jobs.stats import JOB_OUTCOMES, collect, job_counters, logfmt, queue_stats
from tests.conftest import TestServer, cache_config_for
from tests.integration.test_health import _cli
from tests.integration.test_maintenance import make_ctx
from tests.support.updates import upd
from worker.embedded import EmbeddedServer
from worker.heartbeat import read_beats
from worker.runtime import WorkerRuntime
from worker.settings import load_settings

Q = "arq:queue"


async def real_downloads(manager: CacheManager) -> int:
    """Applies a mix of updates over several shards and users; returns how many stay active.

    Queued, downloading and paused downloads are active; completed, failed and cancelled ones
    are not, including downloads that were active first and a terminal one sent a later,
    ignored update.
    """
    last: dict[str, DownloadStatus] = {}
    statuses = list(DownloadStatus)
    for i in range(23):
        job, user, status = f"dl-{i}", f"u{i % 4}", statuses[(i // 2) % len(statuses)]
        await manager.download.set_progress(upd(job, 1, user=user))
        last[job] = DownloadStatus.DOWNLOADING
        if i % 2:  # every status once or twice, after a first "downloading"
            await manager.download.set_progress(upd(job, 2, status, user=user))
            last[job] = status
        if i == 7:  # completed: a later "downloading" is refused
            assert status in TERMINAL
            refused = await manager.download.set_progress(upd(job, 3, user=user))
            assert refused is ApplyOutcome.FINAL
    assert set(last.values()) == set(statuses)
    active = sum(1 for status in last.values() if status not in TERMINAL)
    assert 0 < active < len(last)
    assert len(await manager.download.get_active_downloads()) == active
    return active


async def test_queue_age_ignores_running_and_deferred_jobs(raw: Redis) -> None:
    now = int(time.time() * 1000)
    await raw.zadd(Q, {"running": now - 90_000, "waiting": now - 30_000, "later": now + 60_000})
    await raw.set("arq:in-progress:running", "1")
    stats = await queue_stats(raw, Q, now_ms=now)
    assert (stats.depth, stats.due) == (3, 2)
    assert stats.oldest_age_s == pytest.approx(30.0)
    assert stats.complete


async def test_queue_age_of_an_empty_or_all_running_queue(raw: Redis) -> None:
    assert (await queue_stats(raw, Q)).oldest_age_s is None
    now = int(time.time() * 1000)
    await raw.zadd(Q, {f"j{i}": now - 1000 - i for i in range(5)})
    for i in range(5):
        await raw.set(f"arq:in-progress:j{i}", "1")
    stats = await queue_stats(raw, Q, now_ms=now, scan_limit=3)
    assert stats.oldest_age_s is None and not stats.complete
    stats = await queue_stats(raw, Q, now_ms=now)
    assert stats.oldest_age_s is None and stats.complete


async def test_job_counters_add_up_across_workers(
    manager: CacheManager, raw: Redis, server: TestServer
) -> None:
    """Two workers' runtimes push their counts (a beat, then the last flush at stop)."""
    settings = load_settings(cache={"addr": server.addr})
    for complete, failed, retried, cancelled in ((3, 1, 0, 2), (2, 0, 4, 0)):
        runtime = WorkerRuntime(settings)
        counts = dict.fromkeys(JOB_OUTCOMES, 0)
        await runtime.start(raw, counts=functools.partial(dict, counts))
        counts.update(complete=complete, failed=failed, retried=retried, cancelled=cancelled)
        await runtime.stop()
    counters = await job_counters(raw, manager.keys)
    assert counters.model_dump() == {
        "complete": 5,
        "failed": 1,
        "retried": 4,
        "cancelled": 2,
        "stale": 0,
    }
    fields = await cast(Awaitable[list[str]], raw.hkeys(manager.keys.job_stats()))
    assert set(fields) <= set(JOB_OUTCOMES)


async def test_old_workers_done_counts_as_complete(manager: CacheManager, raw: Redis) -> None:
    """A rolling deploy: workers before the one vocabulary still add to ``done``; it is read
    as ``complete``, added to what the new workers counted, in the totals and heartbeats."""
    stats = manager.keys.job_stats()
    await cast(Awaitable[int], raw.hset(stats, mapping={"done": 7, "complete": 3, "failed": 1}))
    counters = await job_counters(raw, manager.keys)
    assert (counters.complete, counters.failed, counters.cancelled) == (10, 1, 0)
    beat_key = manager.keys.worker_heartbeat("old-1")
    await cast(Awaitable[int], raw.hset(beat_key, mapping={"worker_id": "old-1", "done": 4}))
    await raw.zadd(manager.keys.workers_index(), {"old-1": wall_ms()})
    (beat,) = await read_beats(raw, manager.keys)
    assert beat.complete == 4


async def test_collect_and_logfmt(manager: CacheManager, raw: Redis) -> None:
    active = await real_downloads(manager)
    await raw.zadd(Q, {"old": int(time.time() * 1000) - 5000})
    snapshot = await collect(manager, manager.client, Q)
    figures = snapshot.flat()
    assert figures["queue_depth"] == 1
    assert figures["oldest_job_age_s"] >= 5
    assert figures["active_downloads"] == active
    assert figures["keys"] >= 1 and figures["memory_used"] > 0
    line = logfmt(figures)
    assert "queue_depth=1" in line and "memory_ratio=-" in line and "\n" not in line


async def test_log_cache_stats_logs_one_structured_line(
    manager: CacheManager, server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(cache={"addr": server.addr})
    active = await real_downloads(manager)
    with caplog.at_level(logging.INFO, "seen.jobs.maintenance"):
        figures = await maintenance.log_cache_stats(make_ctx(manager, settings, "m1"))
    lines = [r for r in caplog.records if r.getMessage().startswith("cache stats ")]
    assert len(lines) == 1
    assert lines[0].stats == figures  # type: ignore[attr-defined]
    assert figures["active_downloads"] == active
    assert f" active_downloads={active}" in lines[0].getMessage()
    for name in ("memory_used", "hit_rate", "ops_per_sec", "evicted_keys", "clients", "keys"):
        assert f"{name}=" in lines[0].getMessage()
    names = ("queue_depth", "oldest_job_age_s", "jobs_complete", "jobs_failed", "jobs_retried")
    for name in (*names, "jobs_cancelled", "jobs_stale"):
        assert f"{name}=" in lines[0].getMessage()
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)


async def test_stats_command_prints_real_active_downloads(
    manager: CacheManager, server: TestServer
) -> None:
    empty = _cli(server, "stats", "--json")
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout)["active_downloads"] == 0
    active = await real_downloads(manager)
    as_json = _cli(server, "stats", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["active_downloads"] == active
    table = _cli(server, "stats")
    assert table.returncode == 0, table.stderr
    rows = dict(line.split(None, 1) for line in table.stdout.splitlines())
    assert rows["active_downloads"] == str(active)


async def test_memory_above_threshold_warns(
    private_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(
        cache={"addr": private_server.addr}, maintenance={"memory_warning": 0.001}
    )
    async with await CacheManager.connect(cache_config_for(private_server.addr)) as manager:
        await manager.client.config_set("maxmemory", str(64 * 1024 * 1024))
        with caplog.at_level(logging.INFO, "seen.jobs.maintenance"):
            figures = await maintenance.log_cache_stats(make_ctx(manager, settings, "m1"))
    assert figures["memory_warning"] is True
    assert figures["memory_max"] == 64 * 1024 * 1024
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "of maxmemory" in warnings[0].getMessage()
