"""The fleet exporter's scrape at dashboard load: 10k active downloads over 16 shards, a full
dead-letter list, 50 workers, 5,000 queued jobs and a keyspace of 100k other keys.

Measured: the time one ``render_fleet_metrics`` takes (every read the series need, encoding
included) and the size of its body, against the same run's ``jobs.stats.collect`` (what
``seen-worker stats`` and ``log_cache_stats`` read: INFO, DBSIZE, queue, counters, active
downloads). The ratio is scrape / stats latency (p50); the target is a scrape well inside the
default ``fleet.scrape_timeout`` of 2 s.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from bench.common import BenchEnv, BenchResult, percentile
from cache.download import DownloadStatus, ProgressUpdate
from cache.manager import CacheManager
from dashboard.exporter import render_fleet_metrics
from jobs.deadletter import make_dead_letter, push_dead_letters
from jobs.stats import collect
from worker.fleet import FleetReader
from worker.heartbeat import WorkerBeat, add_beat
from worker.settings import load_settings

QUEUE = "bench:fleet:queue"
FILLER = "bench:fleet:filler:"


async def _fill(manager: CacheManager, raw: Redis, downloads: int, filler: int) -> None:
    now = int(time.time() * 1000)
    for start in range(0, downloads, 500):
        updates = [
            ProgressUpdate(
                job_id=f"bench-fleet-{n}",
                user_id=f"u{n % 97}",
                status=DownloadStatus.DOWNLOADING,
                seq=1,
                bytes_done=n,
                bytes_total=10 * downloads,
            )
            for n in range(start, min(downloads, start + 500))
        ]
        await manager.download.bulk_update_progress(updates)
    letter = make_dead_letter(
        manager, job_id="j", function="update_progress", reason="seq: bad", payload="x" * 3000
    )
    await push_dead_letters(manager, [letter] * manager.config.deadletter.max_entries)
    async with raw.pipeline(transaction=False) as pipe:
        for n in range(50):
            beat = WorkerBeat(worker_id=f"bench-w{n}", host="h", pid=n, last_beat_ms=now)
            add_beat(pipe, manager.keys, beat, 3600)
        pipe.zadd(QUEUE, {f"bench-job-{n}": now - n for n in range(5000)})
        await pipe.execute()
    for start in range(0, filler, 5000):
        async with raw.pipeline(transaction=False) as pipe:
            for n in range(start, min(filler, start + 5000)):
                pipe.set(f"{FILLER}{n}", "x", ex=3600)
            await pipe.execute()


async def _clean(manager: CacheManager, raw: Redis) -> None:
    for pattern in ("seen:{dl:*", "seen:jobs:*", "seen:worker*", "seen:download:*"):
        keys = [k async for k in raw.scan_iter(pattern, count=1000)]
        for start in range(0, len(keys), 1000):
            await raw.unlink(*keys[start : start + 1000])
    filler = [k async for k in raw.scan_iter(FILLER + "*", count=5000)]
    for start in range(0, len(filler), 5000):
        await raw.unlink(*filler[start : start + 5000])
    await raw.unlink(QUEUE)


async def run(env: BenchEnv) -> list[BenchResult]:
    rounds = env.scale(40, 8)
    downloads = env.scale(10_000, 2_000)
    filler = env.scale(100_000, 20_000)
    settings = load_settings(cache={"addr": env.addr}, queue={"name": QUEUE})
    raw = Redis.from_url(env.url)
    try:
        async with await CacheManager.connect(settings) as manager:
            await manager.warmup()
            await _fill(manager, raw, downloads, filler)
            reader = FleetReader(manager.client, manager, settings)
            scrape: list[float] = []
            stats: list[float] = []
            size = 0
            for _ in range(rounds):  # interleaved, so both see the same server state
                start = time.perf_counter()
                body, _ = await render_fleet_metrics(reader, None)
                scrape.append(time.perf_counter() - start)
                size = len(body)
                assert b"seen_fleet_up 1" in body, body[:200]
                start = time.perf_counter()
                await collect(manager, manager.client, QUEUE)
                stats.append(time.perf_counter() - start)
            await _clean(manager, raw)
    finally:
        await raw.aclose()
    p50, p50_stats = percentile(scrape, 50), percentile(stats, 50)
    return [
        BenchResult(
            name="fleet.scrape",
            metrics={
                "p50_ms": round(p50 * 1000, 1),
                "p99_ms": round(percentile(scrape, 99) * 1000, 1),
                "stats_p50_ms": round(p50_stats * 1000, 1),
                "body_bytes": size,
            },
            baseline="seen-worker stats (jobs.stats.collect)",
            ratio=round(p50 / p50_stats, 2) if p50_stats else None,
            ratio_meaning="scrape p50 / stats p50 latency (the scrape reads far more)",
            target="p99 < 2000 ms (fleet.scrape_timeout)",
            notes={"downloads": downloads, "filler_keys": filler, "rounds": rounds},
        )
    ]
