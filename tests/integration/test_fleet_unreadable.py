"""One unreadable record never blanks a page (issue 18, item 3).

Next to good rows, every row reader of the fleet finds one it cannot read: a heartbeat under a
300-character worker id, one whose ``pid`` is not a number and one that is not a hash; a
download whose active-index member breaks the id rule, one whose progress hash has an unknown
status and one whose timestamp is out of range; a dead letter that is not JSON; a lock and a
job lease that are not strings; a run-history entry that is not JSON, a slot claim that is a
list and one that says nothing known; a job counter that is not a number. On a real store, the
dashboard's pages and JSON twins, its live stream, its ``/metrics``, and ``seen-worker health``,
``stats`` and ``watch`` show the good rows, count the bad ones by kind, name their keys in a
rate-limited log line, and never call it a store outage.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from cache.keys import shard_of
from cache.manager import CacheManager
from jobs.deadletter import make_dead_letter, push_dead_letters
from tests.conftest import TestServer
from tests.support.dashboard import running_dashboard, sse
from tests.support.processes import run_cli
from tests.support.updates import upd
from tests.support.waiting import wait_until
from worker.heartbeat import WorkerBeat, add_beat
from worker.http.fleet import FleetReader
from worker.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def client(raw: Redis) -> Redis:
    """The test's plain client on its clean database."""
    return raw


LONG_ID = "w" * 300
STATS_PERIOD = 300  # log_cache_stats, enabled by default


@dataclass(frozen=True)
class Planted:
    """What ``plant`` wrote: the good rows a reader must still show."""

    good_worker: str
    good_downloads: tuple[str, ...]
    good_lock: str
    good_lease: str
    good_run: str


async def plant(manager: CacheManager, client: Redis) -> Planted:
    raw: Any = client  # redis-py's stubs cannot tell its sync replies from its async ones
    keys = manager.keys
    now = int(time.time() * 1000)
    # heartbeats: one good, three unreadable
    good = WorkerBeat(worker_id="w-good", host="h", pid=7, started_ms=now, last_beat_ms=now)
    async with manager.client.pipeline(transaction=False) as pipe:
        add_beat(pipe, keys, good, 60)
        await pipe.execute()
    await raw.hset(f"seen:worker:{LONG_ID}", mapping={"worker_id": LONG_ID, "pid": "1"})
    await raw.hset("seen:worker:w-badpid", mapping={"worker_id": "w-badpid", "pid": "abc"})
    await raw.set("seen:worker:w-string", "not a hash")
    await raw.zadd(keys.workers_index(), {LONG_ID: now, "w-badpid": now, "w-string": now})
    # downloads: two good, three unreadable
    shards = manager.config.download.shards
    for job in ("dl-good-1", "dl-good-2"):
        await manager.download.set_progress(upd(job, 1))
    await raw.zadd(keys.download_active(0), {"bad id!:u1": now, f"{'d' * 300}:u1": now})
    for job, fields in (
        ("dl-badstatus", {"status": "exploded", "user": "u1", "updated": str(now)}),
        ("dl-badtime", {"status": "downloading", "user": "u1", "updated": str(10**20)}),
    ):
        shard = shard_of(job, shards)
        await raw.hset(keys.download_progress(job, shard), mapping=fields)
        await raw.zadd(keys.download_active(shard), {f"{job}:u1": now})
    # dead letters: one good, one not JSON
    letter = make_dead_letter(
        manager, job_id="j1", function="update_progress", reason="owner", payload={"x": 1}
    )
    await push_dead_letters(manager, [letter])
    await raw.lpush(keys.dead_letter(), "{not json")
    # locks and leases: one good of each, one of each that is not a string
    await manager.session.acquire_lock("good-lock", 60)
    await raw.hset(keys.lock("bad-lock"), mapping={"x": "1"})
    await raw.set("arq:in-progress:job-good", "w-good:abc", px=60_000)
    await raw.rpush("arq:in-progress:job-bad", "x")
    # schedules: a good run of log_cache_stats, an entry that is not JSON, two bad claims
    slot = now // (STATS_PERIOD * 1000)
    run_id = f"log_cache_stats:{slot * STATS_PERIOD * 1000}"
    entry = {"job_id": run_id, "slot": slot, "outcome": "ok", "started_ms": now, "seconds": 0.1}
    await raw.lpush(keys.cron_history("log_cache_stats"), json.dumps(entry), "{broken")
    await raw.rpush(keys.cron_slot("log_cache_stats", slot - 1), "a list")
    await raw.set(keys.cron_slot("log_cache_stats", slot - 2), "gibberish")
    # job counters: done is fine, failed is not a number
    await raw.hset(keys.job_stats(), mapping={"done": "5", "failed": "many"})
    return Planted("w-good", ("dl-good-1", "dl-good-2"), "good-lock", "job-good", run_id)


EXPORTED = {
    "heartbeat": 3,  # the overview's; the schedules' look at heartbeats is not counted twice
    "dead_letter": 1,
    "cron_history": 1,
    "cron_slot": 2,
    "job_counter": 1,
    "download": 0,  # the exporter counts downloads per shard, it reads no rows
    "lock": 0,  # nor locks and leases
    "lease": 0,
}


def notice(html: str) -> str:
    """The page's unreadable-rows notice."""
    assert 'id="unreadable"' in html, html[-2000:]
    return html.split('id="unreadable"', 1)[1].split("</p>", 1)[0]


async def test_pages_and_json_show_the_good_rows_and_count_the_bad(
    server: TestServer, manager: CacheManager, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    good = await plant(manager, raw)
    caplog.set_level(logging.WARNING)
    async with (
        running_dashboard(server.url) as dash,
        httpx.AsyncClient(base_url=dash.url, timeout=10) as c,
    ):
        r = await c.get("/api/overview")
        assert r.status_code == 200, r.text
        overview = r.json()
        assert [w["worker_id"] for w in overview["workers"]] == [good.good_worker]
        assert overview["jobs"]["done"] == 5
        assert overview["unreadable"]["by_kind"] == {"heartbeat": 3, "job_counter": 1}
        assert r.headers["x-seen-unreadable"] == "4"
        page = await c.get("/")
        assert page.status_code == 200 and good.good_worker in page.text
        assert "4 unreadable entries" in notice(page.text)
        assert "store unavailable" not in page.text

        r = await c.get("/api/downloads")
        assert r.status_code == 200, r.text
        data = r.json()
        assert sorted(d["job_id"] for d in data["downloads"]) == list(good.good_downloads)
        assert data["unreadable"] == {"total": 4, "by_kind": {"download": 4}}

        r = await c.get("/api/dead-letters")
        assert r.status_code == 200 and r.json()["total"] == 2
        assert r.json()["unreadable"]["by_kind"] == {"dead_letter": 1}
        assert "1 unreadable entry" in notice((await c.get("/dead-letters")).text)

        r = await c.get("/api/locks")
        assert r.status_code == 200, r.text
        names = {(x["kind"], x["name"]) for x in r.json()}
        assert names == {("lock", good.good_lock), ("lease", good.good_lease)}
        assert r.headers["x-seen-unreadable"] == "2"
        assert "2 unreadable entries" in notice((await c.get("/locks")).text)

        r = await c.get("/api/schedules")
        assert r.status_code == 200, r.text
        stats = next(s for s in r.json() if s["name"] == "log_cache_stats")
        assert [run["job_id"] for run in stats["history"]] == [good.good_run]
        assert r.headers["x-seen-unreadable"] == "3"
        html = (await c.get("/schedules")).text
        assert "3 unreadable entries" in notice(html) and good.good_run in html
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"seen:worker:{'w' * 20}" in logged or "seen:workers" in logged
    assert "seen:jobs:dead" in logged and "seen:cronlog:log_cache_stats" in logged


async def test_the_live_page_gets_its_snapshot(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    good = await plant(manager, raw)
    async with (
        running_dashboard(server.url) as dash,
        httpx.AsyncClient(base_url=dash.url, timeout=10) as c,
        sse(c) as stream,
    ):

        async def snapshot() -> bool:
            assert "error" not in stream.kinds(), stream.events
            return "snapshot" in stream.kinds()

        await wait_until(snapshot, 10, "the snapshot")
        first = next(e for e in stream.events if e.event == "snapshot")
        assert sorted(i["j"] for i in first.data["downloads"]) == list(good.good_downloads)
        assert first.data["unreadable"] == 4


async def test_exporter_counts_unreadable_records_by_kind(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    await plant(manager, raw)
    async with (
        running_dashboard(server.url) as dash,
        httpx.AsyncClient(base_url=dash.url, timeout=10) as c,
    ):
        r = await c.get("/metrics")
    assert r.status_code == 200, r.text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(r.text)
        for s in f.samples
    }
    assert samples[("seen_fleet_up", ())] == 1
    for kind, count in EXPORTED.items():
        assert samples[("seen_fleet_unreadable_records", (("kind", kind),))] == count, kind
    assert samples[("seen_fleet_workers", (("state", "alive"),))] == 1
    assert samples[("seen_fleet_jobs_total", (("outcome", "done"),))] == 5
    assert ("seen_fleet_jobs_total", (("outcome", "failed"),)) not in samples  # unknown


async def test_a_flood_of_bad_rows_is_counted_and_logged_a_few_times(
    server: TestServer, manager: CacheManager, client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    raw: Any = client
    now = int(time.time() * 1000)
    await raw.zadd(manager.keys.workers_index(), {f"bad id {n}": now for n in range(500)})
    caplog.set_level(logging.WARNING)
    settings = load_settings(cache={"addr": server.addr})
    reader = FleetReader(manager.client, manager, settings)
    from cache.unreadable import Unreadable

    skipped = Unreadable(reader.skip_log)
    overview = await reader.overview(skipped)
    assert overview.workers == [] and skipped.total == 500
    lines = [r for r in caplog.records if "unreadable heartbeat" in r.getMessage()]
    assert 1 <= len(lines) <= 10, len(lines)


def _cli(server: TestServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEEN_CACHE_ADDR": server.addr, "COLUMNS": "200"}
    env.pop("SEEN_SETTINGS_FILE", None)
    return run_cli(*args, env=env)


async def test_health_stats_and_watch_commands(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    good = await plant(manager, raw)
    health = _cli(server, "health", "--json")
    assert health.returncode == 0, health.stdout + health.stderr
    verdict = json.loads(health.stdout)
    assert verdict["healthy"] is True and verdict["reasons"] == []
    assert [w["worker_id"] for w in verdict["workers"]] == [good.good_worker]
    assert verdict["unreadable"] == {"heartbeat": 3}
    text = _cli(server, "health")
    assert text.returncode == 0 and "3 unreadable heartbeat" in text.stdout, text.stdout

    stats = _cli(server, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["jobs_done"] == 5 and figures["jobs_failed"] is None
    assert figures["unreadable_records"] == 1
    assert "seen:jobs:stats" in stats.stderr  # named, on stderr

    watch = _cli(server, "watch", "--once")
    assert watch.returncode == 0, watch.stdout + watch.stderr
    assert all(job in watch.stdout for job in good.good_downloads)
    assert "4 unreadable" in watch.stdout


async def test_health_with_only_unreadable_heartbeats_is_not_a_store_fault(
    server: TestServer, client: Redis
) -> None:
    raw: Any = client
    now = int(time.time() * 1000)
    await raw.hset(f"seen:worker:{LONG_ID}", mapping={"worker_id": LONG_ID})
    await raw.zadd("seen:workers", {LONG_ID: now})
    health = _cli(server, "health", "--json")
    assert health.returncode == 1
    reasons = json.loads(health.stdout)["reasons"]
    assert reasons == ["no worker has a readable heartbeat (1 unreadable heartbeat skipped)"]


async def test_errors_are_worded_by_their_kind(
    server: TestServer, manager: CacheManager, client: Redis
) -> None:
    raw: Any = client
    await raw.set(manager.keys.dead_letter(), "a string, not a list")
    async with (
        running_dashboard(server.url) as dash,
        httpx.AsyncClient(base_url=dash.url, timeout=10) as c,
    ):
        r = await c.get("/api/dead-letters")
        assert r.status_code == 502, r.text
        assert "store error" in r.json()["error"] and "WRONGTYPE" in r.json()["error"]
        assert "unavailable" not in r.text
        page = await c.get("/dead-letters")
        assert page.status_code == 502 and "unavailable" not in page.text
