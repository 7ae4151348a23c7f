"""The fleet's history in the store (``jobs.history``): what workers add with their beats, what
one dashboard samples each minute, what the graphs read, and that a restarted dashboard still
shows the last hour (it lives in the store, not in the process)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.keys import KeyBuilder
from cache.manager import CacheManager
from jobs.history import (
    DURATION_BUCKETS,
    MINUTE,
    SLOT,
    Activity,
    QueueSample,
    add_activity,
    quantile,
    read_history,
    record_sample,
    take_minute,
)
from tests.conftest import TestServer
from tests.support.dashboard import running_dashboard
from tests.support.processes import Fleet
from tests.support.queue import producer
from tests.support.waiting import fresh_beats, wait_until

pytestmark = pytest.mark.timeout(120)
KEYS = KeyBuilder()


def test_quantiles_interpolate_within_a_bucket() -> None:
    counts = [0] * (len(DURATION_BUCKETS) + 1)
    assert quantile(counts, 0.5) is None
    counts[DURATION_BUCKETS.index(0.1)] = 10  # ten runs between 0.05 and 0.1 s
    assert quantile(counts, 0.5) == pytest.approx(0.075)
    counts[-1] = 90  # ninety above the largest bound
    assert quantile(counts, 0.95) == DURATION_BUCKETS[-1]


async def test_activity_and_samples_round_trip(raw: Redis) -> None:
    now = wall_ms()
    durations = [0] * (len(DURATION_BUCKETS) + 1)
    durations[2] = 4  # four runs of 10..25 ms
    activity = Activity({"complete": 3, "failed": 1}, durations, 60_000)
    async with raw.pipeline(transaction=False) as pipe:
        add_activity(pipe, KEYS, activity, now)
        add_activity(pipe, KEYS, Activity({"complete": 2}), now)
        await pipe.execute()
    sample = QueueSample(12, 7, 2, 3, 4500, 5, 2, True)
    await record_sample(raw, KEYS, sample, now)
    await record_sample(raw, KEYS, QueueSample(1, 1, 0, 0, 900, 5, 2, False), now)  # the max stays
    hour = await read_history(raw, KEYS, "hour", now)
    assert hour.step_s == MINUTE and len(hour.points) == 60
    last = hour.points[-1]
    assert last.ended["complete"] == 5 and last.ended["failed"] == 1
    assert last.duration_mean_s == pytest.approx(0.015)
    assert last.duration_p50_s is not None and 0.01 <= last.duration_p50_s <= 0.025
    assert (last.depth, last.due, last.oldest_s, last.paused) == (1, 1, 0.9, False)
    assert all(p.depth is None and p.ended["complete"] == 0 for p in hour.points[:-1])
    day = await read_history(raw, KEYS, "day", now)
    assert day.step_s == SLOT and len(day.points) == 144
    assert day.points[-1].ended["complete"] == 5 and day.points[-1].oldest_s == 4.5  # the max
    ttl = await raw.ttl(KEYS.history_bucket(MINUTE, now // 60_000))
    assert 0 < ttl <= 3 * 3600
    with pytest.raises(ValueError, match="range must be"):
        await read_history(raw, KEYS, "week", now)


async def test_one_dashboard_samples_each_minute(raw: Redis) -> None:
    now = wall_ms()
    assert await take_minute(raw, KEYS, now)
    assert not await take_minute(raw, KEYS, now)  # another process already did
    assert await take_minute(raw, KEYS, now + 60_000)


async def test_a_restarted_dashboard_shows_the_last_hour(
    server: TestServer, raw: Redis, manager: CacheManager, tmp_path: Path
) -> None:
    """A real worker runs known work; the graphs' data (``/api/history``) has it, with a queue
    sample, and a dashboard started afterwards reads the same hour."""
    # an earlier minute of this hour, as workers and a dashboard left it 30 minutes ago
    earlier = wall_ms() - 30 * 60_000
    async with raw.pipeline(transaction=False) as pipe:
        add_activity(pipe, KEYS, Activity({"complete": 40, "retried": 2}), earlier)
        await pipe.execute()
    await record_sample(raw, KEYS, QueueSample(9, 9, 0, 0, 61_000, 0, 1, False), earlier)
    queue = producer(server.addr)
    sections = {"worker": {"job_modules": ["tests.support.jobs"]}}
    try:
        with Fleet(tmp_path, server.addr, **sections) as fleet:
            fleet.start(1)
            await wait_until(lambda: _one_beat(raw), 30, "a worker")
            for n in range(12):
                await queue.enqueue_job("ping", _job_id=f"hist-ok-{n}")
            for n in range(3):
                await queue.enqueue_job("test_fail", "no", _job_id=f"hist-bad-{n}")

            async def recorded() -> bool:
                history = await read_history(raw, KEYS, "hour", wall_ms())
                return history.total("complete") >= 52 and history.total("failed") >= 3

            await wait_until(recorded, 30, "the worker's beats adding the jobs to the history")
            async with (
                running_dashboard(server.url) as dash,
                httpx.AsyncClient(base_url=dash.url, timeout=10) as client,
            ):

                async def sampled() -> bool:
                    points = (await client.get("/api/history")).json()["points"]
                    return points[-1]["depth"] is not None

                await wait_until(sampled, 20, "this minute sampled by the dashboard")
                first = (await client.get("/api/history?range=hour")).json()
        # the dashboard is gone; a new one reads the same hour from the store
        async with (
            running_dashboard(server.url) as dash,
            httpx.AsyncClient(base_url=dash.url, timeout=10) as client,
        ):
            again = (await client.get("/api/history?range=hour")).json()
            day = (await client.get("/api/history?range=day")).json()
            bad = await client.get("/api/history?range=year")
    finally:
        await queue.aclose()
    before = {p["at_ms"]: p["ended"] for p in first["points"][:-2]}
    after = {p["at_ms"]: p["ended"] for p in again["points"]}
    assert all(after[at] == ended for at, ended in before.items() if at in after)
    complete = sum(p["ended"]["complete"] for p in again["points"])
    failed = sum(p["ended"]["failed"] for p in again["points"])
    assert complete >= 52 and failed >= 3
    old = next(p for p in again["points"] if p["ended"]["complete"] == 40)
    assert old["oldest_s"] == 61.0 and old["depth"] == 9 and old["ended"]["retried"] == 2
    assert any(p["duration_p50_s"] is not None for p in again["points"])
    assert sum(p["ended"]["complete"] for p in day["points"]) == complete
    assert bad.status_code == 400 and "range must be" in bad.json()["error"]


async def _one_beat(raw: Redis) -> bool:
    return len(await fresh_beats(raw)) == 1
