"""Heartbeats and health verdicts: no workers, stale heartbeat, store down, queue backlog."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest
from redis.asyncio import Redis

from cache.manager import CacheManager
from tests.conftest import TestServer
from tests.support.processes import run_cli
from worker.embedded import free_port
from worker.health import check, evaluate
from worker.heartbeat import WorkerBeat, add_beat, read_beats, remove_beat
from worker.settings import Settings, load_settings


@pytest.fixture
def settings(server: TestServer) -> Settings:
    return load_settings(cache={"addr": server.addr})


async def beat(manager: CacheManager, worker_id: str, age_s: float = 0.0, ttl: float = 20) -> None:
    record = WorkerBeat(
        worker_id=worker_id,
        host="h",
        pid=1,
        last_beat_ms=int((time.time() - age_s) * 1000),
        complete=3,
    )
    async with manager.client.pipeline(transaction=False) as pipe:
        add_beat(pipe, manager.keys, record, ttl)
        await pipe.execute()


async def test_no_workers(manager: CacheManager, settings: Settings) -> None:
    verdict = await evaluate(manager, manager.client, settings)
    assert not verdict.healthy
    assert verdict.reasons == ["no worker has a heartbeat"]
    assert verdict.store["cache"]["ok"]


async def test_fresh_heartbeat_is_healthy(manager: CacheManager, settings: Settings) -> None:
    await beat(manager, "w1")
    verdict = await evaluate(manager, manager.client, settings)
    assert verdict.healthy, verdict.reasons
    (worker,) = verdict.workers
    assert worker["worker_id"] == "w1" and worker["fresh"] and worker["complete"] == 3


async def test_stale_heartbeat(manager: CacheManager, settings: Settings) -> None:
    await beat(manager, "w1", age_s=settings.health.stale_after + 5)
    verdict = await evaluate(manager, manager.client, settings)
    assert not verdict.healthy
    assert verdict.reasons[0].startswith("no fresh heartbeat")
    assert (await evaluate(manager, manager.client, settings, stale_after=60)).healthy


async def test_named_worker(manager: CacheManager, settings: Settings) -> None:
    await beat(manager, "w1")
    await beat(manager, "w2", age_s=60)
    assert (await evaluate(manager, manager.client, settings, worker_id="w1")).healthy
    other = await evaluate(manager, manager.client, settings, worker_id="w2")
    assert other.reasons[0].startswith("worker w2: heartbeat 6")
    gone = await evaluate(manager, manager.client, settings, worker_id="w3")
    assert gone.reasons == ["worker w3: no heartbeat"]


async def test_workers_of_one_host(manager: CacheManager, settings: Settings) -> None:
    await beat(manager, "w1")  # host "h"
    assert (await evaluate(manager, manager.client, settings, host="h")).healthy
    other = await evaluate(manager, manager.client, settings, host="elsewhere")
    assert other.reasons == ["no worker has a heartbeat on host elsewhere"]


async def test_queue_backlog(manager: CacheManager, raw: Redis, settings: Settings) -> None:
    await beat(manager, "w1")
    old = int(time.time() * 1000) - 120_000
    await raw.zadd(settings.queue.name, {"stuck": old})
    verdict = await evaluate(manager, manager.client, settings)
    assert not verdict.healthy
    assert verdict.reasons[0].startswith("queue backlog: oldest waiting job is 12")
    assert verdict.queue is not None and verdict.queue.due == 1
    assert (await evaluate(manager, manager.client, settings, max_queue_age=300)).healthy
    await raw.set("arq:in-progress:stuck", "1")  # a long job that is running is no backlog
    assert (await evaluate(manager, manager.client, settings)).healthy


async def test_store_down_is_unhealthy_within_the_timeout() -> None:
    settings = load_settings(cache={"addr": f"127.0.0.1:{free_port()}"}, health={"timeout": 3})
    start = time.monotonic()
    verdict = await check(settings)
    assert time.monotonic() - start < 3.5
    assert not verdict.healthy
    assert verdict.reasons[0].startswith("cache store:")
    assert any(r.startswith("queue store:") for r in verdict.reasons)


async def test_heartbeat_ttl_and_removal_of_only_its_own(manager: CacheManager, raw: Redis) -> None:
    await beat(manager, "w1", ttl=4)
    await beat(manager, "w2", ttl=4)
    assert 3000 < await raw.pttl("seen:worker:w1") <= 4000
    await remove_beat(manager.client, manager.keys, "w1")
    assert [b.worker_id for b in await read_beats(manager.client, manager.keys)] == ["w2"]
    assert await raw.zrange("seen:workers", 0, -1) == ["w2"]


async def test_index_drops_long_dead_workers(manager: CacheManager, raw: Redis) -> None:
    await raw.zadd("seen:workers", {"ghost": int(time.time() * 1000) - 3_600_000})
    await beat(manager, "w1")
    assert await raw.zrange("seen:workers", 0, -1) == ["w1"]


def _cli(server: TestServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEEN_CACHE_ADDR": server.addr}
    env.pop("SEEN_SETTINGS_FILE", None)
    return run_cli(*args, env=env)


async def test_health_and_stats_commands(manager: CacheManager, server: TestServer) -> None:
    down = _cli(server, "health", "--json")
    assert down.returncode == 1, down.stderr
    assert json.loads(down.stdout)["reasons"] == ["no worker has a heartbeat"]
    await beat(manager, "w1")
    up = _cli(server, "health")
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.startswith("healthy (1 worker")
    here = _cli(server, "health", "--this-host")  # the beat above claims host "h"
    assert here.returncode == 1
    assert f"no worker has a heartbeat on host {socket.gethostname()}" in here.stdout
    stats = _cli(server, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert {"memory_used", "hit_rate", "queue_depth", "oldest_job_age_s", "jobs_complete"} <= set(
        figures
    )
    table = _cli(server, "stats")
    assert table.returncode == 0 and "queue_depth" in table.stdout
