"""The fleet reads stay bounded: item caps and SCAN walks on a huge keyspace, a deadline on a
store that does not answer, and an exporter that then still answers with ``seen_fleet_up 0``.
Also: every labelled fleet series exists at zero from the first scrape of an empty store."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from cache.client import create_client
from cache.errors import CacheConnectionError
from cache.manager import CacheManager
from dashboard.exporter import render_fleet_metrics
from jobs.deadletter import make_dead_letter, push_dead_letters
from jobs.outcome import OUTCOMES
from tests.conftest import TestServer, cache_config_for
from tests.integration.test_fleet_reader import SHARDS, reader_settings
from tests.integration.test_worker_metrics import families, value
from tests.support.layout import LAYOUT, lease_key, queue_of, result_key
from worker.embedded import EmbeddedServer, free_port
from worker.fleet import FleetReader, FleetTimeout
from worker.fleet.deadletters import DEAD_LETTER_KINDS
from worker.fleet.models import QUEUE_STATES, SLOT_STATES


async def fill(raw: Redis, count: int, make: str | Callable[[str], str], value: str = "x") -> None:
    """``count`` keys ``make.format(n=n)``, or ``make(f"job-{n}")`` (a layout's per-job key)."""
    async with raw.pipeline(transaction=False) as pipe:
        for n in range(count):
            key = make.format(n=n) if isinstance(make, str) else make(f"job-{n}")
            pipe.set(key, value, ex=600)
        await pipe.execute()


async def test_a_huge_keyspace_does_not_blow_the_caps(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    settings = reader_settings(server.addr, fleet={"scan_keys": 2000, "queue_scan": 100})
    reader = FleetReader(manager.client, manager, settings)
    await fill(raw, 3000, "seen:lock:{{bulk-{n}}}", "token-of-a-lock")
    await fill(raw, 3000, lease_key, "w1:abcd")
    await fill(raw, 3000, result_key)
    now = int(time.time() * 1000)
    async with raw.pipeline(transaction=False) as pipe:
        for n in range(3000):
            pipe.zadd(queue_of(f"job-{n}"), {f"job-{n}": now - 1000 - n})
        await pipe.execute()
    letter = make_dead_letter(manager, job_id="j", function="f", reason="bad", payload={"a": 1})
    await push_dead_letters(manager, [letter] * 1500)  # capped at deadletter.max_entries

    locks = await reader.locks(40)
    assert len([v for v in locks if v.kind == "lock"]) == 40
    assert len([v for v in locks if v.kind == "lease"]) == 40
    assert len(locks) == 80

    queue = (await reader.overview()).queue
    assert not queue.counted  # only the oldest 100 due jobs were checked for a marker
    # the oldest 100 due jobs (shared among the shards) were checked, every one running
    assert 100 - LAYOUT.count < queue.in_progress <= 100
    assert queue.due == 3000 - queue.in_progress
    assert not queue.results_complete and 0 < queue.results < 3000

    dead = await reader.dead_letters(25)
    assert dead.total == settings.deadletter.max_entries and len(dead.entries) == 25
    assert [(g.reason, g.count) for g in dead.groups] == [("bad", 25)]


async def test_a_store_that_does_not_answer_gives_up_at_the_deadline(
    private_server: EmbeddedServer,
) -> None:
    settings = reader_settings(
        private_server.addr, fleet={"read_timeout": 0.5, "scrape_timeout": 0.7}
    )
    async with await CacheManager.connect(cache_config_for(private_server.url)) as manager:
        reader = FleetReader(manager.client, manager, settings)
        await reader.overview()  # connections are open
        pid = private_server.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(FleetTimeout, match=r"'overview' did not finish within 0\.5s"):
                await reader.overview()
            assert time.monotonic() - start < 1.5
            start = time.monotonic()
            body, _ = await render_fleet_metrics(reader, None)
            assert time.monotonic() - start < 1.5
        finally:
            os.kill(pid, signal.SIGCONT)
    series = families(body.decode())
    assert value(series["seen_fleet_up"]) == 0
    assert value(series["seen_fleet_scrape_errors"], "_total", kind="timeout") == 1
    assert value(series["seen_fleet_scrape_errors"], "_total", kind="error") == 0
    assert "seen_fleet_queue_jobs" not in series  # nothing the store did not vouch for


@pytest.fixture
async def nowhere() -> AsyncIterator[tuple[CacheManager, Redis, str]]:
    addr = f"127.0.0.1:{free_port()}"
    manager = await CacheManager.connect(cache_config_for(addr), verify=False)
    queue = create_client(manager.config.cache)
    try:
        yield manager, queue, addr
    finally:
        await queue.aclose()
        await manager.aclose()


async def test_a_store_that_is_down_gives_up_at_once(
    nowhere: tuple[CacheManager, Redis, str],
) -> None:
    manager, queue, addr = nowhere
    reader = FleetReader(queue, manager, reader_settings(addr, fleet={"scrape_timeout": 2.0}))
    with pytest.raises(CacheConnectionError):  # the store's own error, not an ExceptionGroup
        await reader.overview()
    start = time.monotonic()
    body, content_type = await render_fleet_metrics(reader, "application/openmetrics-text")
    assert time.monotonic() - start < 2.5
    assert content_type.startswith("application/openmetrics-text")
    assert b"seen_fleet_up 0" in body
    body, _ = await render_fleet_metrics(reader, None)
    series = families(body.decode())
    errors = series["seen_fleet_scrape_errors"]
    assert value(errors, "_total", kind="timeout") + value(errors, "_total", kind="error") == 2


async def test_every_series_exists_at_zero_on_an_empty_store(
    server: TestServer, manager: CacheManager
) -> None:
    schedules = {"stats_every": 300, "warmup_every": 3600, "cleanup_every": 0}
    settings = reader_settings(server.addr, maintenance=schedules)
    reader = FleetReader(manager.client, manager, settings)
    body, _ = await render_fleet_metrics(reader, None)
    series = families(body.decode())
    assert value(series["seen_fleet_up"]) == 1
    for state in QUEUE_STATES:
        assert value(series["seen_fleet_queue_jobs"], queue="arq:queue", state=state) == 0
    assert value(series["seen_fleet_oldest_job_age_seconds"], queue="arq:queue") == 0
    assert value(series["seen_fleet_workers"], state="alive") == 0
    assert value(series["seen_fleet_workers"], state="stale") == 0
    assert value(series["seen_fleet_dead_letters"]) == 0
    for kind in DEAD_LETTER_KINDS:
        assert value(series["seen_fleet_dead_letters_by_reason"], reason=kind) == 0
    for outcome in OUTCOMES:
        assert value(series["seen_fleet_jobs"], "_total", outcome=outcome) == 0
    for cron, period in (("log_cache_stats", 300), ("warmup_cache", 3600)):
        assert value(series["seen_fleet_cron_last_success_timestamp_seconds"], cron=cron) == 0
        assert value(series["seen_fleet_cron_period_seconds"], cron=cron) == period
        for state in SLOT_STATES:
            value(series["seen_fleet_cron_slots"], cron=cron, state=state)  # present
    crons = {s.labels["cron"] for s in series["seen_fleet_cron_period_seconds"].samples}
    assert crons == {"log_cache_stats", "warmup_cache"}  # cleanup_every = 0: not scheduled
    for shard in range(SHARDS):
        for name in (
            "seen_fleet_active_downloads",
            "seen_fleet_pending_updates",
            "seen_fleet_progress_events",
            "seen_fleet_progress_event_age_seconds",
        ):
            assert value(series[name], shard=str(shard)) == 0
