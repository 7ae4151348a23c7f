"""CacheService GET/SET against raw redis-py in the same run."""

from __future__ import annotations

from redis.asyncio import Redis

from bench.common import BenchEnv, BenchResult, ops_per_second
from cache.manager import CacheManager


async def run(env: BenchEnv) -> list[BenchResult]:
    total = env.scale(40_000, 6_000)
    concurrency = 16
    raw = Redis.from_url(env.url)
    results: list[BenchResult] = []
    async with await CacheManager.from_url(env.url) as manager:
        svc = manager.service
        await raw.set("seen:bench:raw", "v" * 100)
        await svc.set("seen:bench:ours", "v" * 100)
        raw_get = await ops_per_second(lambda: raw.get("seen:bench:raw"), total, concurrency)
        our_get = await ops_per_second(lambda: svc.get("seen:bench:ours"), total, concurrency)
        raw_set = await ops_per_second(
            lambda: raw.set("seen:bench:raw", "v" * 100, px=60_000), total, concurrency
        )
        our_set = await ops_per_second(
            lambda: svc.set("seen:bench:ours", "v" * 100, ttl=60), total, concurrency
        )
    await raw.aclose()
    results.append(
        BenchResult(
            name="service.get",
            metrics={"ops_s": round(our_get), "raw_ops_s": round(raw_get)},
            baseline="redis-py GET",
            ratio=round(our_get / raw_get, 3),
            ratio_meaning="ours/raw throughput (1.0 = no overhead)",
        )
    )
    results.append(
        BenchResult(
            name="service.set_ttl",
            metrics={"ops_s": round(our_set), "raw_ops_s": round(raw_set)},
            baseline="redis-py SET PX",
            ratio=round(our_set / raw_set, 3),
            ratio_meaning="ours/raw throughput (1.0 = no overhead)",
        )
    )
    return results
