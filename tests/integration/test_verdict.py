"""The verdict's levels (``worker.health``): green, amber with each warning (paused, dead
letters growing, store memory near its limit, a missed slot), red with each reason; the same
verdict in ``seen-worker health`` and on the dashboard's banner (``/api/health``)."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
from redis.asyncio import Redis

from cache.manager import CacheManager
from jobs.deadletter import make_dead_letter, push_dead_letters
from jobs.queue_control import pause
from tests.conftest import TestServer, cache_config_for
from tests.support.dashboard import running_dashboard
from tests.support.layout import LAYOUT, QUEUE_SECTION, put_job
from tests.support.processes import run_cli
from worker.embedded import EmbeddedServer
from worker.health import evaluate
from worker.heartbeat import WorkerBeat, add_beat
from worker.settings import Settings, load_settings

QUIET = {"cleanup_every": 0, "stats_every": 0, "warmup_every": 0, "repair_every": 0}


def quiet_settings(addr: str, **sections: Any) -> Settings:
    values: dict[str, Any] = {
        "cache": {"addr": addr},
        "queue": dict(QUEUE_SECTION),
        "maintenance": dict(QUIET),
    }
    for name, more in sections.items():
        values[name] = {**values.get(name, {}), **more}
    return load_settings(**values)


async def beat(manager: CacheManager, started_ms: int | None = None) -> None:
    now = int(time.time() * 1000)
    beat = WorkerBeat(
        worker_id="w1", host="h", pid=1, started_ms=started_ms or now, last_beat_ms=now
    )
    async with manager.client.pipeline(transaction=False) as pipe:
        add_beat(pipe, manager.keys, beat, 20)
        await pipe.execute()


async def test_green_then_each_amber_warning(
    manager: CacheManager, raw: Redis, server: TestServer
) -> None:
    settings = quiet_settings(server.addr)
    await beat(manager)
    verdict = await evaluate(manager, manager.client, settings)
    assert (verdict.level, verdict.reasons, verdict.warnings) == ("green", [], [])

    await pause(manager.client, LAYOUT, by="alice", reason="maintenance")
    verdict = await evaluate(manager, manager.client, settings)
    assert verdict.healthy and verdict.level == "amber"
    assert verdict.warnings == [
        f"queue {LAYOUT.name} is paused by alice (maintenance): workers claim nothing"
    ]
    await raw.delete(LAYOUT.paused_key)

    letter = make_dead_letter(
        manager, job_id="j", function="update_progress", reason="not <b>valid</b>", payload={}
    )
    await push_dead_letters(manager, [letter])
    verdict = await evaluate(manager, manager.client, settings)
    assert verdict.level == "amber"
    (warning,) = verdict.warnings
    assert warning.startswith("dead letters growing: 1 written in the last 15 minutes")
    old = letter.model_copy(update={"at_ms": letter.at_ms - 3_600_000})
    await raw.delete(manager.keys.dead_letter())
    await push_dead_letters(manager, [old])  # an hour old: not growing
    assert (await evaluate(manager, manager.client, settings)).level == "green"

    # a periodic job whose recent slots nobody claimed, with a worker up for a day
    await beat(manager, started_ms=int(time.time() * 1000) - 86_400_000)
    cron = quiet_settings(server.addr, maintenance={"stats_every": 60})
    verdict = await evaluate(manager, manager.client, cron)
    assert verdict.level == "amber"
    assert any(w.startswith("periodic job log_cache_stats missed") for w in verdict.warnings)


async def test_red_wins_over_amber(manager: CacheManager, raw: Redis, server: TestServer) -> None:
    settings = quiet_settings(server.addr)
    await pause(manager.client, LAYOUT, by="bob")
    verdict = await evaluate(manager, manager.client, settings)
    assert verdict.level == "red" and not verdict.healthy
    assert verdict.reasons == ["no worker has a heartbeat"] and verdict.warnings
    await beat(manager)
    await put_job(raw, "old", b"{}", int(time.time() * 1000) - 120_000)
    verdict = await evaluate(manager, manager.client, settings)
    assert verdict.level == "red"
    assert verdict.reasons[0].startswith("queue backlog: oldest waiting job is 12")


async def test_store_memory_near_its_limit_is_amber(private_server: EmbeddedServer) -> None:
    settings = quiet_settings(private_server.addr, maintenance={"memory_warning": 0.5})
    client = Redis.from_url(private_server.url)
    async with await CacheManager.connect(cache_config_for(private_server.url)) as manager:
        await beat(manager)
        used = int((await client.info("memory"))["used_memory"])
        await client.config_set("maxmemory", str(int(used / 0.6)))  # warning at 0.5
        try:
            verdict = await evaluate(manager, manager.client, settings)
        finally:
            await client.config_set("maxmemory", "0")
            await client.aclose()
    assert verdict.level == "amber", verdict
    assert any(
        w.startswith("cache store memory at ") and "(warning at 50%)" in w for w in verdict.warnings
    )


async def test_the_same_verdict_in_the_cli_and_on_the_banner(
    manager: CacheManager, server: TestServer
) -> None:
    await beat(manager)
    await pause(manager.client, LAYOUT, by="carol", reason="<script>x</script>")
    env = {
        **os.environ,
        "SEEN_CACHE_ADDR": server.addr,
        "SEEN_QUEUE_LAYOUT": LAYOUT.kind,
        "SEEN_QUEUE_SHARDS": str(LAYOUT.count),
        **{f"SEEN_MAINTENANCE_{k.upper()}": "0" for k in QUIET},
    }
    env.pop("SEEN_SETTINGS_FILE", None)
    done = run_cli("health", env=env)
    assert done.returncode == 0, done.stdout + done.stderr  # amber is healthy
    assert "warning: queue" in done.stdout and "paused by carol" in done.stdout
    async with (
        running_dashboard(server.url) as dash,
        httpx.AsyncClient(base_url=dash.url, timeout=10) as client,
    ):
        api = (await client.get("/api/health")).json()
        page = (await client.get("/")).text
    assert api["level"] == "amber" and api["warnings"][0].startswith(f"queue {LAYOUT.name}")
    assert 'class="banner amber"' in page and "paused by carol" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
