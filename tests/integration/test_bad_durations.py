"""Non-finite waits, TTLs, windows and timeouts are refused at once, naming the argument:
``locks.acquire(wait=nan)`` on a held lock used to wait forever, and an
infinite ``older_than`` crashed with OverflowError. Every call runs under a 5 s timeout so a
regression fails instead of hanging."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from cache.errors import CacheError, InvalidArgumentError
from cache.manager import CacheManager
from cache.session_cache import UserProfile

NON_FINITE: list[Any] = [math.nan, math.inf, -math.inf]
IDS = ["nan", "inf", "-inf"]


async def refused(call: Callable[[], Awaitable[Any]], name: str) -> None:
    """``call()`` raises an InvalidArgumentError (a CacheError and a ValueError) naming
    ``name``, well within 5 s."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(5):
        with pytest.raises(InvalidArgumentError, match=rf"\b{name}\b") as caught:
            await call()
    assert isinstance(caught.value, CacheError) and isinstance(caught.value, ValueError)
    assert loop.time() - start < 1


@pytest.mark.parametrize("bad", [*NON_FINITE, -1.0], ids=[*IDS, "negative"])
async def test_acquire_with_a_bad_wait_on_a_held_lock_fails_at_once(
    manager: CacheManager, bad: float
) -> None:
    held = await manager.locks.acquire("job", ttl=30)
    await refused(lambda: manager.locks.acquire("job", wait=bad), "wait")
    await refused(lambda: manager.locks.acquire("free", wait=bad), "wait")
    with pytest.raises(InvalidArgumentError, match="wait"):
        manager.locks.hold("job", wait=bad)
    assert await held.release()
    assert not await manager.locks.is_locked("free")


@pytest.mark.parametrize("bad", [*NON_FINITE, timedelta.max], ids=[*IDS, "timedelta.max"])
async def test_lock_ttls_must_be_finite(manager: CacheManager, raw: Redis, bad: Any) -> None:
    await refused(lambda: manager.locks.acquire("job", ttl=bad, wait=0), "ttl")
    await refused(lambda: manager.locks.try_acquire("job", ttl=bad), "ttl")
    await refused(lambda: manager.session.acquire_lock("job", ttl=bad), "ttl")
    with pytest.raises(InvalidArgumentError, match="ttl"):
        manager.locks.hold("job", ttl=bad)
    assert [k async for k in raw.scan_iter("*")] == []


@pytest.mark.parametrize("bad", NON_FINITE, ids=IDS)
async def test_store_ttls_must_be_finite(manager: CacheManager, raw: Redis, bad: float) -> None:
    svc = manager.service
    await raw.set("seen:t:old", "1")
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: svc.set("seen:t:k", "v", ttl=bad),
        lambda: svc.set_nx("seen:t:k", "v", ttl=bad),
        lambda: svc.get_set("seen:t:k", "v", ttl=bad),
        lambda: svc.increment("seen:t:k", 1, ttl=bad),
        lambda: svc.mset({"seen:t:k": "v"}, ttl=bad),
        lambda: svc.set_json("seen:t:k", {"a": 1}, ttl=bad),
        lambda: svc.mset_json({"seen:t:k": {"a": 1}}, ttl=bad),
        lambda: svc.expire("seen:t:old", bad),
        lambda: manager.catalog.set("dashboard", [1], user_id="u1", ttl=bad),
        lambda: manager.session.set_user_profile(UserProfile(user_id="u1"), ttl=bad),
        lambda: manager.download.set_download_list("u1", [], ttl=bad),
    ]
    for call in calls:
        await refused(call, "ttl")
    assert sorted([k async for k in raw.scan_iter("*")]) == ["seen:t:old"]
    assert await raw.ttl("seen:t:old") == -1


@pytest.mark.parametrize("bad", NON_FINITE, ids=IDS)
async def test_rate_limit_windows_must_be_finite(
    manager: CacheManager, raw: Redis, bad: float
) -> None:
    limiter = manager.ratelimit
    await refused(lambda: limiter.check("u1", "login", 5, bad), "window")
    await refused(lambda: limiter.check_fixed("u1", "login", 5, bad), "window")
    await refused(lambda: manager.session.rate_limit_check("u1", "login", 5, bad), "window")
    await refused(lambda: limiter.check("u1", "login", 2**63, 60), "limit")
    assert [k async for k in raw.scan_iter("*")] == []


@pytest.mark.parametrize("bad", [*NON_FINITE, -1.0], ids=[*IDS, "negative"])
async def test_catalog_wait_timeout_must_be_finite(
    manager: CacheManager, raw: Redis, bad: float
) -> None:
    calls = 0

    async def loader() -> list[int]:
        nonlocal calls
        calls += 1
        return [1]

    call = lambda: manager.catalog.get_or_compute(  # noqa: E731
        "dashboard", loader, user_id="u1", wait_timeout=bad
    )
    await refused(call, "wait_timeout")
    assert calls == 0
    assert [k async for k in raw.scan_iter("seen:catalog:*")] == []


@pytest.mark.parametrize("bad", NON_FINITE, ids=IDS)
async def test_download_maintenance_durations_must_be_finite(
    manager: CacheManager, bad: float
) -> None:
    download = manager.download
    await refused(lambda: download.cleanup_stale(older_than=bad), "older_than")
    await refused(lambda: download.drain(0, "d", budget=bad), "budget")
    await refused(lambda: download.cleanup_stale(batch=-5), "batch")
