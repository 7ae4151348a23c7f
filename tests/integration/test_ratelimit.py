"""Rate limiting on a real server: the contract under concurrency, honest retry_after, TTLs."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from cache.config import CacheConfig
from cache.coordination import RateLimitResult
from cache.manager import CacheManager
from tests.conftest import ROOT, TestServer


@pytest.fixture
async def second(cache_config: CacheConfig, raw: Redis) -> AsyncIterator[CacheManager]:
    async with await CacheManager.connect(cache_config) as mgr:
        yield mgr


async def server_us(raw: Redis) -> int:
    seconds, micros = await raw.time()
    return int(seconds) * 1_000_000 + int(micros)


@pytest.mark.parametrize(
    ("limit", "window"),
    [(0, 60), (-1, 60), (5, 0), (5, -1), (5, float("nan")), (5, float("inf")), (True, 60)],
)
async def test_bad_limit_or_window_is_a_value_error(
    manager: CacheManager, raw: Redis, limit: int, window: float
) -> None:
    with pytest.raises(ValueError, match=r"limit|window"):
        await manager.ratelimit.check("u1", "login", limit, window)
    with pytest.raises(ValueError, match=r"limit|window"):
        await manager.ratelimit.check_fixed("u1", "login", limit, window)
    with pytest.raises(ValueError, match=r"limit|window"):
        await manager.session.rate_limit_check("u1", "login", limit, window)
    assert await raw.dbsize() == 0


@pytest.mark.parametrize(("user_id", "action"), [("", "a"), ("u 1", "a"), ("u*", "a"), ("u", "")])
async def test_bad_ids_are_value_errors(
    manager: CacheManager, raw: Redis, user_id: str, action: str
) -> None:
    with pytest.raises(ValueError, match=r"user_id|action"):
        await manager.session.rate_limit_check(user_id, action, 5, 60)
    assert await raw.dbsize() == 0


async def test_bad_burst_or_cost(manager: CacheManager) -> None:
    limiter = manager.ratelimit
    with pytest.raises(ValueError, match="burst"):
        await limiter.check("u1", "a", 5, 60, burst=6)
    with pytest.raises(ValueError, match="burst"):
        await limiter.check("u1", "a", 5, 60, burst=0)
    with pytest.raises(ValueError, match="cost"):
        await limiter.check("u1", "a", 5, 60, burst=2, cost=3)
    with pytest.raises(ValueError, match="cost"):
        await limiter.check_fixed("u1", "a", 5, 60, cost=6)


async def test_burst_then_denied(manager: CacheManager) -> None:
    results = [await manager.ratelimit.check("u1", "upload", 5, 60) for _ in range(7)]
    assert [r.allowed for r in results] == [True] * 5 + [False] * 2
    assert [r.remaining for r in results] == [4, 3, 2, 1, 0, 0, 0]
    assert all(r.limit == 5 for r in results)
    denied = results[-1]
    assert 11.9 < denied.retry_after <= 12.0  # one request every 60/5 s
    assert 59 < denied.reset_after <= 60
    assert not denied and results[0]
    assert denied.headers()["Retry-After"] == "12"
    assert results[0].headers() == {
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "4",
        "RateLimit-Reset": "12",
    }


async def test_users_and_actions_are_independent(manager: CacheManager) -> None:
    check = manager.session.rate_limit_check
    assert await check("u1", "login", 1, 60)
    assert not await check("u1", "login", 1, 60)
    assert await check("u2", "login", 1, 60)
    assert await check("u1", "search", 1, 60)


async def test_burst_and_cost(manager: CacheManager) -> None:
    limiter = manager.ratelimit
    first = await limiter.check("u1", "a", 10, 1, burst=2)
    second = await limiter.check("u1", "a", 10, 1, burst=2)
    third = await limiter.check("u1", "a", 10, 1, burst=2)
    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)
    assert 0 < third.retry_after <= 0.1
    big = await limiter.check("u2", "a", 10, 1, cost=4)
    assert big.allowed and big.remaining == 6
    too_big = await limiter.check("u2", "a", 10, 1, cost=7)
    assert not too_big.allowed and too_big.remaining == 6


@pytest.mark.parametrize("mode", ["gcra", "fixed"])
async def test_retry_after_is_honest(manager: CacheManager, mode: str) -> None:
    def call() -> Awaitable[RateLimitResult]:
        if mode == "gcra":
            return manager.ratelimit.check("u1", "honest", 2, 2.0)
        return manager.ratelimit.check_fixed("u1", "honest", 2, 1.0)

    assert (await call()).allowed and (await call()).allowed
    denied = await call()
    assert not denied.allowed and 0.9 < denied.retry_after <= 1.002
    await asyncio.sleep(denied.retry_after / 2)
    again = await call()
    assert not again.allowed  # not early
    await asyncio.sleep(again.retry_after)
    assert (await call()).allowed  # and not late


async def test_keys_expire_within_the_window(manager: CacheManager, raw: Redis) -> None:
    limiter = manager.ratelimit
    result = await limiter.check("u1", "ttl", 4, 0.4)
    key = "seen:ratelimit:u1:ttl"
    assert 0 < await raw.pttl(key) <= 100 + 2  # one interval of debt, 2 ms rounding
    for _ in range(5):
        result = await limiter.check("u1", "ttl", 4, 0.4)
    assert 250 < await raw.pttl(key) <= 400 + 2  # never more than the window
    pttl = await raw.pttl(key)
    assert not (await limiter.check("u1", "ttl", 4, 0.4)).allowed
    assert await raw.pttl(key) <= pttl  # a denied call writes nothing
    await limiter.check_fixed("u1", "ttl", 2, 0.3)
    assert 200 < await raw.pttl(key + ":fixed") <= 300
    await asyncio.sleep(max(result.reset_after, 0.3) + 0.05)
    assert await raw.exists(key, key + ":fixed") == 0
    assert (await limiter.check("u1", "ttl", 4, 0.4)).remaining == 3  # full again


async def test_window_as_timedelta_and_reset(manager: CacheManager, raw: Redis) -> None:
    limiter = manager.ratelimit
    assert (await limiter.check("u1", "td", 1, timedelta(minutes=1))).allowed
    assert not (await limiter.check("u1", "td", 1, timedelta(minutes=1))).allowed
    await limiter.check_fixed("u1", "td", 1, timedelta(minutes=1))
    assert await limiter.reset("u1", "td") == 2
    assert (await limiter.check("u1", "td", 1, timedelta(minutes=1))).allowed
    extra = (await manager.stats()).extra
    assert extra["ratelimit.allowed"] == 3 and extra["ratelimit.denied"] == 1


@pytest.mark.parametrize("mode", ["gcra", "fixed"])
async def test_concurrent_callers_never_exceed_the_contract(
    manager: CacheManager, second: CacheManager, raw: Redis, mode: str
) -> None:
    limit, window, seconds = 10, 0.5, 0.8
    allowed = 0

    async def caller(mgr: CacheManager) -> None:
        nonlocal allowed
        check: Callable[..., Awaitable[RateLimitResult]]
        check = mgr.ratelimit.check if mode == "gcra" else mgr.ratelimit.check_fixed
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if (await check("u1", "hammer", limit, window)).allowed:
                allowed += 1

    start = await server_us(raw)
    await asyncio.gather(*(caller(m) for m in [manager, second] * 10))
    span = await server_us(raw) - start
    if mode == "gcra":
        bound = limit + span // (int(window * 1e6) // limit)  # burst + span / interval
    else:
        bound = limit * (span // int(window * 1e6) + 1)  # windows that can start in the span
    assert limit <= allowed <= bound


_PROCESS = """
import asyncio, json, sys, time
from cache.manager import CacheManager

async def main(url: str, seconds: float) -> None:
    async with await CacheManager.from_url(url) as m:
        await m.client.incr("seen:test:ready")
        while not await m.client.exists("seen:test:go"):
            await asyncio.sleep(0.005)
        t = await m.client.time()
        start = int(t[0]) * 1_000_000 + int(t[1])
        allowed = 0
        async def caller() -> None:
            nonlocal allowed
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if (await m.ratelimit.check("u1", "multi", 20, 1.0)).allowed:
                    allowed += 1
        await asyncio.gather(*(caller() for _ in range(6)))
        t = await m.client.time()
        print(json.dumps({"allowed": allowed, "start": start,
                          "end": int(t[0]) * 1_000_000 + int(t[1])}))

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


async def test_several_processes_never_exceed_the_contract(server: TestServer, raw: Redis) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PROCESS,
            server.url,
            "1.0",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    try:
        deadline = time.monotonic() + 20
        while int(await raw.get("seen:test:ready") or 0) < len(procs):
            assert time.monotonic() < deadline, "worker processes did not start"
            assert all(p.returncode is None for p in procs), "a worker process died"
            await asyncio.sleep(0.02)
        await raw.set("seen:test:go", "1")
        outputs = []
        for proc in procs:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
            assert proc.returncode == 0, err.decode()
            outputs.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    allowed = sum(o["allowed"] for o in outputs)
    span = max(o["end"] for o in outputs) - min(o["start"] for o in outputs)
    interval = 1_000_000 // 20
    assert all(o["allowed"] > 0 for o in outputs)
    assert 20 <= allowed <= 20 + span // interval
