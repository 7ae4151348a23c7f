"""Locks and rate limits against the raw redis-py commands they replace, in the same run.

- lock acquire+release (Lua, token + fencing counter) vs ``SET NX PX`` + ``DEL``;
- GCRA and fixed-window checks (Lua, one key) vs a bare ``INCR``.

Every task uses its own lock name / user, so this measures the cost per operation, not
contention. Ratios are ours/raw throughput: 1.0 = no overhead.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from bench.common import BenchEnv, BenchResult, ops_per_second
from cache.manager import CacheManager

CONCURRENCY = 16


def _per_task(
    make: Callable[[int], Callable[[], Awaitable[object]]],
) -> Callable[[], Awaitable[object]]:
    """An operation that always runs on a key no other running operation uses.

    ``ops_per_second`` runs ``CONCURRENCY`` loops; each call borrows a free slot and gives it
    back, so two calls never work on the same lock or user at the same time.
    """
    ops = [make(i) for i in range(CONCURRENCY)]
    free = collections.deque(range(CONCURRENCY))

    async def op() -> None:
        slot = free.popleft()
        try:
            await ops[slot]()
        finally:
            free.append(slot)

    return op


def _result(name: str, ours: float, raw: float, baseline: str) -> BenchResult:
    return BenchResult(
        name=name,
        metrics={"ops_s": round(ours), "raw_ops_s": round(raw)},
        baseline=baseline,
        ratio=round(ours / raw, 3),
        ratio_meaning="ours/raw throughput (1.0 = no overhead)",
    )


async def run(env: BenchEnv) -> list[BenchResult]:
    total = env.scale(30_000, 4_000)
    raw = Redis.from_url(env.url)
    results: list[BenchResult] = []
    try:
        async with await CacheManager.from_url(env.url) as manager:
            await manager.warmup()

            def our_lock(i: int) -> Callable[[], Awaitable[object]]:
                async def cycle() -> None:
                    lock = await manager.locks.try_acquire(f"bench:{i}", ttl=30)
                    assert lock is not None
                    await lock.release()

                return cycle

            def raw_lock(i: int) -> Callable[[], Awaitable[object]]:
                async def cycle() -> None:
                    assert await raw.set(f"bench:rawlock:{i}", "token", nx=True, px=30_000)
                    await raw.delete(f"bench:rawlock:{i}")

                return cycle

            raw_ops = await ops_per_second(_per_task(raw_lock), total, CONCURRENCY)
            ours = await ops_per_second(_per_task(our_lock), total, CONCURRENCY)
            results.append(_result("locks.acquire_release", ours, raw_ops, "SET NX PX + DEL"))

            limiter = manager.ratelimit

            def raw_incr(i: int) -> Callable[[], Awaitable[object]]:
                return lambda: raw.incr(f"bench:rawcount:{i}")

            def gcra(i: int) -> Callable[[], Awaitable[object]]:
                return lambda: limiter.check(f"bench{i}", "op", 1_000_000, 1)

            def fixed(i: int) -> Callable[[], Awaitable[object]]:
                return lambda: limiter.check_fixed(f"bench{i}", "op", 1_000_000_000, 60)

            raw_ops = await ops_per_second(_per_task(raw_incr), total, CONCURRENCY)
            ours = await ops_per_second(_per_task(gcra), total, CONCURRENCY)
            results.append(_result("ratelimit.gcra_check", ours, raw_ops, "INCR"))
            ours = await ops_per_second(_per_task(fixed), total, CONCURRENCY)
            results.append(_result("ratelimit.fixed_check", ours, raw_ops, "INCR"))
            await manager.delete_keys_by_pattern("seen:ratelimit:*")
            await manager.delete_keys_by_pattern("seen:lock:*")
    finally:
        keys = [k async for k in raw.scan_iter("bench:raw*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
    return results
