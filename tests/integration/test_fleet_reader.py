"""The fleet read model and its exporter after known work, on a real store with a real worker.

One ``seen-worker run`` process (``max_jobs = 1``) runs a slow warmup, so the pings enqueued
after it wait due; a deferred ping, a stale heartbeat and an expired one, dead letters of two
reasons written by the worker itself, slots of a periodic job run, claimed and missed, a lock,
and downloads in two shards complete the picture. Each view must show exactly that, and the
exporter's series (read with ``prometheus_client``'s parsers) the same figures.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from redis.asyncio import Redis

from cache.keys import shard_of
from cache.manager import CacheManager
from cache.scripts import ScriptRunner
from jobs import maintenance
from jobs.deadletter import letter_id
from jobs.schedule import SlotClaims, slot_of
from jobs.wire.layout import QueueLayout
from tests.conftest import TestServer
from tests.integration.test_maintenance import make_ctx
from tests.integration.test_worker_metrics import families, value
from tests.support.processes import Fleet
from tests.support.queue import TestQueue, producer
from tests.support.sources import SLOW_EVENTS
from tests.support.updates import upd
from tests.support.waiting import items, wait_until
from worker.heartbeat import WorkerBeat, add_beat, read_beats
from worker.http.fleet import FleetReader, render_fleet_metrics
from worker.settings import Settings, load_settings

pytestmark = pytest.mark.timeout(90)

PERIOD = 300  # log_cache_stats every 5 min in the reader's settings
STALE_AFTER = 5.0
SHARDS = 16


def reader_settings(addr: str, **sections: dict[str, Any]) -> Settings:
    base: dict[str, Any] = {
        "cache": {"addr": addr},
        "health": {"stale_after": STALE_AFTER},
        "maintenance": {"stats_every": PERIOD, "cleanup_every": 0, "warmup_every": 0},
    }
    base.update(sections)
    return load_settings(**base)


@pytest.fixture
def settings(server: TestServer) -> Settings:
    return reader_settings(server.addr)


@pytest.fixture
def workers(server: TestServer, tmp_path: Path) -> Iterator[Fleet]:
    sections: dict[str, dict[str, Any]] = {
        "worker": {"max_jobs": 1, "heartbeat_ttl": 60.0},  # planted beats stay indexed
        "warmup": {"callables": ["tests.support.sources:slow_source"]},
        "queue": {"layout": "arq"},  # the fleet reader reads ARQ's layout (for now)
    }
    with Fleet(tmp_path, server.addr, **sections) as fleet:
        yield fleet


@pytest.fixture
async def pool(server: TestServer) -> AsyncIterator[TestQueue]:
    pool = producer(server.addr, QueueLayout.arq())
    try:
        yield pool
    finally:
        await pool.aclose()


def ids_in_two_shards() -> tuple[list[str], list[str]]:
    """Three download ids: two in one shard, one in another."""
    by_shard: dict[int, list[str]] = {}
    for n in range(200):
        by_shard.setdefault(shard_of(f"dl-{n}", SHARDS), []).append(f"dl-{n}")
    first, second = sorted(by_shard)[:2]
    return by_shard[first][:2], by_shard[second][:1]


async def plant_beats(manager: CacheManager) -> None:
    """A stale heartbeat (30 s old, still stored) and an expired one (only its index entry)."""
    now = int(time.time() * 1000)
    old = WorkerBeat(  # up since long before the schedule window: its empty slots are missed
        worker_id="w-stale",
        host="h",
        pid=7,
        started_ms=now - 30 * 86_400_000,
        last_beat_ms=now - 30_000,
        done=4,
    )
    async with manager.client.pipeline(transaction=False) as pipe:
        add_beat(pipe, manager.keys, old, 120)
        await pipe.execute()
    await manager.client.zadd(manager.keys.workers_index(), {"w-gone": now - 20_000})


async def run_slots(manager: CacheManager, settings: Settings) -> int:
    """log_cache_stats: the current and the previous slot run (done), the one before claimed
    (its run owed), the older ones nothing: missed. Returns the current slot."""
    current = slot_of(int(time.time() * 1000), PERIOD)
    for slot in (current - 1, current):
        job_id = f"log_cache_stats:{slot * PERIOD * 1000 + 123}"
        result = await maintenance.log_cache_stats(make_ctx(manager, settings, job_id))
        assert "skipped" not in result
    claims = SlotClaims(ScriptRunner(manager.client), manager.keys)
    owed = f"log_cache_stats:{(current - 2) * PERIOD * 1000 + 50}"
    await claims.claim("log_cache_stats", current - 2, owed, PERIOD)
    return current


async def test_views_and_series_after_known_work(
    workers: Fleet,
    pool: ArqRedis,
    manager: CacheManager,
    raw: Redis,
    settings: Settings,
) -> None:
    reader = FleetReader(manager.client, manager, settings)
    (worker,) = workers.start(1, SEEN_TEST_SLOW_SECONDS="60")

    # a finished job (a result is kept), and dead letters of two reasons, by the worker
    await pool.enqueue_job("ping")
    await pool.enqueue_job("update_progress", {"job_id": "dl-x", "seq": "not a number"})
    record = {"t": 1, "f": "no_such_function", "a": [], "k": {}, "et": int(time.time() * 1000)}
    await raw.set("arq:job:unknown-1", json.dumps(record))
    await raw.zadd("arq:queue", {"unknown-1": int(time.time() * 1000)})

    async def settled() -> bool:
        assert worker.running, worker.log()
        dead = len(await items(raw, "seen:jobs:dead"))
        return dead == 2 and await raw.zcard("arq:queue") == 0

    await wait_until(settled, 30, "ping done and two jobs dead-lettered")

    # a running job: the slow warmup holds the worker's only slot, so later pings wait due
    warmup = await pool.enqueue_job("warmup_cache")
    assert warmup is not None

    async def warming() -> bool:
        if "start" not in " ".join(await items(raw, SLOW_EVENTS)):
            return False
        beats = await read_beats(manager.client, manager.keys)
        return [(b.state, b.running) for b in beats] == [("running", 1)]

    await wait_until(warming, 20, "the warmup running, in a heartbeat")
    due_at = time.time()
    for _ in range(3):
        await pool.enqueue_job("ping")
    await pool.enqueue_job("ping", _defer_by=3600)

    await plant_beats(manager)
    current = await run_slots(manager, settings)
    lock = await manager.locks.acquire("fleet-test", ttl=30)
    in_a, in_b = ids_in_two_shards()
    for job in in_a + in_b:
        await manager.download.set_progress(upd(job, 1))

    # -- overview ---------------------------------------------------------------------------
    overview = await reader.overview()
    by_id = {w.worker_id: w for w in overview.workers}
    assert len(by_id) == 3 and {"w-stale", "w-gone"} <= set(by_id)
    (live,) = [w for w in overview.workers if w.worker_id not in ("w-stale", "w-gone")]
    assert live.alive and live.pid == worker.pid and live.running == 1 and live.state == "running"
    assert live.heartbeat_age_s < STALE_AFTER
    assert not by_id["w-stale"].alive and 29 < by_id["w-stale"].heartbeat_age_s < 60
    assert by_id["w-stale"].done == 4 and by_id["w-stale"].state == "running"
    assert not by_id["w-gone"].alive and by_id["w-gone"].state == "expired"
    assert (overview.alive, overview.stale) == (1, 2)
    q = overview.queue
    results = len([k async for k in raw.scan_iter("arq:result:*")])
    assert results >= 1
    assert (q.due, q.deferred, q.in_progress, q.results) == (3, 1, 1, results)
    assert q.counted and q.results_complete
    assert q.oldest_due_age_s is not None and 0 <= q.oldest_due_age_s <= time.time() - due_at + 1
    assert (overview.jobs.done or 0) >= 1 and (overview.jobs.failed or 0) >= 1
    assert overview.store.ok and overview.store.used_memory > 0
    assert overview.dead_letters == 2

    # -- dead letters -----------------------------------------------------------------------
    dead = await reader.dead_letters(10, payload_chars=20)
    assert dead.total == 2
    assert sorted(g.kind for g in dead.groups) == ["invalid_payload", "unknown_function"]
    assert all(g.count == 1 for g in dead.groups)
    unknown = next(e for e in dead.entries if e.kind == "unknown_function")
    assert unknown.function == "no_such_function" and unknown.job_id == "unknown-1"
    assert len(unknown.payload) == 20 and unknown.truncated
    # each entry's id is the digest of its stored text: the same entry keeps its id
    stored = await items(raw, "seen:jobs:dead")
    assert [e.id for e in dead.entries] == [letter_id(x.encode()) for x in stored]
    assert len({e.id for e in dead.entries}) == 2
    again = await reader.dead_letters(1, payload_chars=5)
    assert again.entries[0].id == dead.entries[0].id
    assert dead.by_kind == {
        "invalid_payload": 1,
        "invalid_record": 0,
        "unknown_function": 1,
        "unreadable": 0,
    }

    # -- schedules --------------------------------------------------------------------------
    (schedule,) = await reader.schedules()
    assert schedule.name == "log_cache_stats" and schedule.period_s == PERIOD
    states = {s.slot: s.state for s in schedule.slots}
    assert min(states) == current - settings.fleet.schedule_slots + 1
    assert states[current + 1] == "expected"
    assert states[current] == states[current - 1] == "done"
    assert states[current - 2] == "claimed"
    assert {states[s] for s in range(min(states), current - 2)} == {"missed"}
    assert schedule.counts == {
        "expected": 1,
        "claimed": 1,
        "done": 2,
        "failed": 0,
        "skipped": 0,
        "missed": settings.fleet.schedule_slots - 3,
    }
    assert [r.slot for r in schedule.history] == [current, current - 1]
    assert all(r.outcome == "ok" for r in schedule.history)
    newest = schedule.history[0]
    assert schedule.last_success_ms is not None
    assert schedule.last_success_ms >= newest.started_ms

    # -- locks and leases -------------------------------------------------------------------
    views = await reader.locks(50)
    kinds = {(v.kind, v.name): v for v in views}
    lease = kinds[("lease", warmup.job_id)]
    assert lease.holder == live.worker_id and lease.ttl_s is not None and 0 < lease.ttl_s <= 2
    guard = kinds[("guard", "warmup_cache")]
    assert guard.holder == warmup.job_id and guard.store == "queue"
    held = kinds[("lock", "fleet-test")]
    assert held.fencing_token == lock.fence and held.holder == lock.token[:8] + "…"
    assert held.ttl_s is not None and 25 < held.ttl_s <= 30
    assert len(views) == 3
    assert lock.token not in json.dumps([v.holder for v in views])

    # -- downloads --------------------------------------------------------------------------
    shards = await reader.downloads()
    assert [s.shard for s in shards] == list(range(SHARDS))
    active = {s.shard: s.active for s in shards if s.active}
    assert active == {shard_of(in_a[0], SHARDS): 2, shard_of(in_b[0], SHARDS): 1}
    for s in shards:
        if s.active:
            assert s.events == s.active
            assert s.newest_event_age_s is not None and 0 <= s.newest_event_age_s < 30
        else:
            assert s.events == 0 and s.newest_event_age_s is None

    # -- every view is plain data: the dashboard serves it as JSON
    plain: list[Any] = [overview, dead, schedule, *views, *shards]
    for view in plain:
        assert json.loads(json.dumps(dataclasses.asdict(view)))
    assert dataclasses.asdict(overview)["stale"] == 2

    # -- the same through the exporter ------------------------------------------------------
    body, content_type = await render_fleet_metrics(reader, None)
    assert content_type.startswith("text/plain; version=0.0.4")
    series = families(body.decode())
    assert value(series["seen_fleet_up"]) == 1
    assert series["seen_fleet_queue_jobs"].type == "gauge"
    for state, expected in {"due": 3, "deferred": 1, "in_progress": 1, "results": results}.items():
        assert value(series["seen_fleet_queue_jobs"], queue="arq:queue", state=state) == expected
    assert value(series["seen_fleet_oldest_job_age_seconds"], queue="arq:queue") > 0
    assert value(series["seen_fleet_workers"], state="alive") == 1
    assert value(series["seen_fleet_workers"], state="stale") == 2
    assert value(series["seen_fleet_dead_letters"]) == 2
    by_reason = series["seen_fleet_dead_letters_by_reason"]
    assert value(by_reason, reason="unknown_function") == 1
    assert value(by_reason, reason="invalid_payload") == 1
    assert value(by_reason, reason="invalid_record") == 0
    assert series["seen_fleet_jobs"].type == "counter"
    assert value(series["seen_fleet_jobs"], "_total", outcome="done") == overview.jobs.done
    success = series["seen_fleet_cron_last_success_timestamp_seconds"]
    assert value(success, cron="log_cache_stats") == schedule.last_success_ms / 1000
    slots = series["seen_fleet_cron_slots"]
    assert value(slots, cron="log_cache_stats", state="done") == 2
    assert value(slots, cron="log_cache_stats", state="claimed") == 1
    assert value(slots, cron="log_cache_stats", state="expected") == 1
    assert value(slots, cron="log_cache_stats", state="failed") == 0
    active_series = series["seen_fleet_active_downloads"]
    for shard in range(SHARDS):
        assert value(active_series, shard=str(shard)) == active.get(shard, 0)
        age = value(series["seen_fleet_progress_event_age_seconds"], shard=str(shard))
        assert (age > 0) == (shard in active)
    assert series["seen_fleet_scrape_errors"].type == "counter"
    assert value(series["seen_fleet_scrape_errors"], "_total", kind="timeout") == 0
    assert 0 < value(series["seen_fleet_scrape_duration_seconds"]) < 2
    labels = {k for f in series.values() for s in f.samples for k in s.labels}
    assert labels <= {"queue", "state", "cron", "shard", "reason", "outcome", "result", "kind"}

    om_body, om_type = await render_fleet_metrics(reader, "application/openmetrics-text")
    assert om_type.startswith("application/openmetrics-text")
    om = families(om_body.decode(), openmetrics_families)
    assert value(om["seen_fleet_up"]) == 1
    assert om["seen_fleet_jobs"].type == "counter"
    assert value(om["seen_fleet_queue_jobs"], queue="arq:queue", state="due") == 3
    assert value(om["seen_fleet_workers"], state="stale") == 2

    await lock.release()


async def test_slots_before_a_fresh_fleet_are_not_missed(
    manager: CacheManager, settings: Settings
) -> None:
    """A worker that started a moment ago, no run recorded yet: the slots whose grace ran out
    before it are not judged (not "missed"); with a worker up for days they are."""
    now = int(time.time() * 1000)
    current = slot_of(now, PERIOD)
    beat = WorkerBeat(worker_id="w-new", host="h", pid=8, started_ms=now, last_beat_ms=now)
    async with manager.client.pipeline(transaction=False) as pipe:
        add_beat(pipe, manager.keys, beat, 60)
        await pipe.execute()
    (schedule,) = await FleetReader(manager.client, manager, settings).schedules()
    assert {s.slot for s in schedule.slots} <= {current, current + 1}
    assert {s.slot: s.state for s in schedule.slots}[current + 1] == "expected"
    assert schedule.counts["missed"] == 0

    old = WorkerBeat(worker_id="w-old", host="h", pid=9, started_ms=now - 30 * 86_400_000)
    async with manager.client.pipeline(transaction=False) as pipe:
        add_beat(pipe, manager.keys, old.model_copy(update={"last_beat_ms": now}), 60)
        await pipe.execute()
    (schedule,) = await FleetReader(manager.client, manager, settings).schedules()
    assert len(schedule.slots) == settings.fleet.schedule_slots + 1
    assert schedule.counts["missed"] >= settings.fleet.schedule_slots - 1
