"""Locks under faults: a paused holder, a restarted store, a store that is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from cache.config import CacheConfig
from cache.coordination import Lock, LockLost
from cache.manager import CacheManager
from tests.conftest import cache_config_for
from worker.embedded import EmbeddedServer


@pytest.fixture
async def second(cache_config: CacheConfig, raw: Redis) -> AsyncIterator[CacheManager]:
    async with await CacheManager.connect(cache_config) as mgr:
        yield mgr


async def test_paused_holder_is_fenced_off(
    manager: CacheManager, second: CacheManager, raw: Redis
) -> None:
    stale = await manager.locks.try_acquire("paused", ttl=0.2)
    assert stale is not None
    await asyncio.sleep(0.3)  # a GC pause, a stalled VM: the lease runs out meanwhile
    fresh = await second.locks.acquire("paused", ttl=10, wait=2)
    pttl = await raw.pttl("seen:lock:{paused}")

    # The stale holder wakes up: everything it tries is refused and changes nothing.
    assert not await stale.extend(ttl=60)
    assert not await stale.release()
    with pytest.raises(LockLost):
        stale.check()
    assert await raw.get("seen:lock:{paused}") == fresh.token
    assert await raw.pttl("seen:lock:{paused}") <= pttl
    # A resource that keeps the highest fence it has seen refuses the stale writer.
    assert stale.fence < fresh.fence
    assert await second.locks.current_fence("paused") == fresh.fence
    assert await fresh.release()


async def test_restart_is_reported_to_the_holder(private_server: EmbeddedServer) -> None:
    """No persistence: the lock is gone after the restart; the next renewal finds out."""
    config = cache_config_for(private_server.addr, retries=5, retry_cap=0.2)
    finished = False
    held: list[Lock] = []

    async def body(manager: CacheManager) -> None:
        nonlocal finished
        async with manager.locks.hold("restarted", ttl=1.0) as lock:
            held.append(lock)
            await asyncio.sleep(0.1)
            private_server.restart(hard=True)
            await asyncio.sleep(5)
            finished = True

    async with await CacheManager.connect(config) as manager:
        with pytest.raises(LockLost, match="expired or was taken over") as info:
            await body(manager)
        assert not finished and held[0].lost
        assert info.value.key == "seen:lock:{restarted}"
        # The fence counter was lost with the data, yet tokens still go up.
        again = await manager.locks.try_acquire("restarted", ttl=1)
        assert again is not None and again.fence > held[0].fence


async def test_store_gone_is_reported_before_the_lease_ends(
    private_server: EmbeddedServer,
) -> None:
    config = cache_config_for(private_server.addr, retries=1, retry_cap=0.05)
    finished = False
    marks: dict[str, float] = {}
    held: list[Lock] = []

    async def body(manager: CacheManager) -> None:
        nonlocal finished
        async with manager.locks.hold("orphaned", ttl=1.0) as lock:
            held.append(lock)
            private_server.kill()
            marks["killed"] = time.monotonic()
            marks["lease_end"] = lock.renewed_at + 1.0
            await asyncio.sleep(5)
            finished = True

    async with await CacheManager.connect(config) as manager:
        with pytest.raises(LockLost, match="lease ran out"):
            await body(manager)
        lost_at = time.monotonic()
    assert not finished and held[0].lost
    # Cancelled while the server-side lease could still be running, not long after it.
    assert marks["killed"] < lost_at <= marks["lease_end"] + 0.25
