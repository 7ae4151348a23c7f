"""get_or_compute against a real server: single flight across managers, dead holders,
bounded waits, lease renewal, XFetch early refresh, loader errors, store outages."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from cache.catalog import CatalogCache, FillTimeoutError
from cache.clock import wall_ms
from cache.config import CacheConfig, CatalogSettings
from cache.errors import CacheConnectionError, SerializationError
from cache.manager import CacheManager
from tests.conftest import TestServer, cache_config_for
from worker.embedded import EmbeddedServer


class Board(BaseModel):
    user_id: str
    version: int


class Loader:
    """A loader that counts its calls, records when they ran and can fail on demand."""

    def __init__(self, delay: float = 0.05, fail: Callable[[int], bool] = lambda n: False):
        self.delay = delay
        self.fail = fail
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self.spans: list[tuple[float, float]] = []

    async def __call__(self) -> Board:
        self.calls += 1
        number = self.calls
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        start = time.monotonic()
        try:
            await asyncio.sleep(self.delay)
            if self.fail(number):
                raise LookupError(f"database said no to call {number}")
            return Board(user_id="u1", version=number)
        finally:
            self.running -= 1
            self.spans.append((start, time.monotonic()))


def with_catalog(config: CacheConfig, **settings: Any) -> CacheConfig:
    return config.model_copy(update={"catalog": CatalogSettings(**settings)})


@pytest.fixture
async def second(cache_config: CacheConfig, raw: Redis) -> AsyncIterator[CacheManager]:
    """Another process's manager on the same store."""
    async with await CacheManager.connect(cache_config) as mgr:
        yield mgr


async def board_of(manager: CacheManager, loader: Callable[[], Awaitable[Board]]) -> Board:
    return await manager.catalog.get_or_compute("dashboard", loader, user_id="u1", model=Board)


async def test_cold_key_50_callers_2_managers_loader_runs_once(
    manager: CacheManager, second: CacheManager, raw: Redis
) -> None:
    loader = Loader(delay=0.1)
    results = await asyncio.gather(*(board_of(m, loader) for m in [manager, second] * 25))
    assert loader.calls == 1
    assert results == [Board(user_id="u1", version=1)] * 50
    stats = [manager.catalog.local_stats(), second.catalog.local_stats()]
    assert sum(s["loader_calls"] for s in stats) == 1
    assert sum(s["coalesced"] for s in stats) == 48  # one flight per manager
    assert sum(s["waits"] for s in stats) == 1  # the other manager's leader polled
    assert [k async for k in raw.scan_iter("*:fill")] == []
    assert await board_of(second, loader) == Board(user_id="u1", version=1)  # now a hit
    assert loader.calls == 1


async def test_every_kind_and_ttl(manager: CacheManager, raw: Redis) -> None:
    async def load() -> list[str]:
        return ["m1"]

    catalog = manager.catalog
    assert await catalog.get_or_compute("discover", load, section_id="new") == ["m1"]
    assert await catalog.get_or_compute("search", load, query="Heat ", filters={"y": 1}) == ["m1"]
    assert await catalog.get_search_results("heat", filters={"y": 1}) == ["m1"]
    assert await catalog.get_or_compute("watch_later", load, user_id="u1", ttl=20) == ["m1"]
    key = manager.keys.catalog_user_entry("watch_later", "u1", 0)
    assert 18 <= await raw.ttl(key) <= 20
    assert await catalog.get_or_compute("recommendations", load, user_id="u1") == ["m1"]
    assert await raw.ttl(manager.keys.catalog_user_entry("recommendations", "u1", 0)) > 3500


async def test_loader_error_reaches_every_caller_and_poisons_nothing(
    manager: CacheManager, raw: Redis
) -> None:
    loader = Loader(fail=lambda n: n == 1)
    results = await asyncio.gather(
        *(board_of(manager, loader) for _ in range(20)), return_exceptions=True
    )
    assert loader.calls == 1
    assert all(isinstance(r, LookupError) and "call 1" in str(r) for r in results)
    assert await raw.dbsize() == 0  # no value, no lock left behind
    assert await board_of(manager, loader) == Board(user_id="u1", version=2)
    assert manager.catalog.local_stats()["loader_errors"] == 1


async def test_waiter_takes_over_when_holders_loader_fails(
    manager: CacheManager, second: CacheManager
) -> None:
    loader = Loader(delay=0.1, fail=lambda n: n == 1)
    first = asyncio.create_task(board_of(manager, loader))
    await asyncio.sleep(0.03)  # the first manager holds the lock
    waiter = asyncio.create_task(board_of(second, loader))
    with pytest.raises(LookupError):
        await first
    assert await waiter == Board(user_id="u1", version=2)
    assert second.catalog.local_stats()["takeovers"] == 1
    assert loader.max_running == 1


async def test_waiter_takes_over_from_a_dead_holder(manager: CacheManager, raw: Redis) -> None:
    """A holder that died leaves its lock until the lease ends; then one waiter computes."""
    lock = manager.keys.catalog_fill_lock(manager.keys.catalog_user_entry("dashboard", "u1", 0))
    await raw.set(lock, "dead-holder", px=300)
    seen_lock: list[str | None] = []

    async def loader() -> Board:
        seen_lock.append(await raw.get(lock))
        return Board(user_id="u1", version=7)

    assert await board_of(manager, loader) == Board(user_id="u1", version=7)
    assert len(seen_lock) == 1 and seen_lock[0] not in (None, "dead-holder")  # our own lock
    stats = manager.catalog.local_stats()
    assert stats["waits"] == 1 and stats["takeovers"] == 1
    assert await raw.exists(lock) == 0


async def test_wait_is_bounded_while_holder_is_alive(manager: CacheManager, raw: Redis) -> None:
    lock = manager.keys.catalog_fill_lock(manager.keys.catalog_user_entry("dashboard", "u1", 0))
    await raw.set(lock, "slow-holder", px=10_000)
    loader = Loader()
    results = await asyncio.gather(
        *(
            manager.catalog.get_or_compute(
                "dashboard", loader, user_id="u1", model=Board, wait_timeout=0.2
            )
            for _ in range(5)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(r, FillTimeoutError) for r in results)
    assert loader.calls == 0
    assert manager.catalog.local_stats()["wait_timeouts"] == 1
    assert await raw.get(lock) == "slow-holder"


async def test_lease_is_renewed_while_a_slow_loader_runs(server: TestServer, raw: Redis) -> None:
    cfg = with_catalog(cache_config_for(server.url), fill_lock_ttl=0.2, poll_max=0.02)
    async with (
        await CacheManager.connect(cfg) as one,
        await CacheManager.connect(cfg) as two,
    ):
        loader = Loader(delay=0.8)
        first = asyncio.create_task(board_of(one, loader))
        await asyncio.sleep(0.5)  # well past one lease
        assert await board_of(two, loader) == Board(user_id="u1", version=1)
        assert await first == Board(user_id="u1", version=1)
        assert loader.calls == 1


async def test_cancelled_holder_releases_the_lock(
    manager: CacheManager, second: CacheManager, raw: Redis
) -> None:
    loader = Loader(delay=5)
    first = asyncio.create_task(board_of(manager, loader))
    await asyncio.sleep(0.05)
    assert [k async for k in raw.scan_iter("*:fill")] != []
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert [k async for k in raw.scan_iter("*:fill")] == []
    loader.delay = 0.01
    assert await board_of(second, loader) == Board(user_id="u1", version=2)


async def test_loader_value_checked_against_model(manager: CacheManager, raw: Redis) -> None:
    async def as_dict() -> Any:
        return {"user_id": "u1", "version": 3}

    async def wrong() -> Any:
        return {"nope": True}

    async def not_json() -> Any:
        return {"when": object()}

    assert await board_of(manager, as_dict) == Board(user_id="u1", version=3)
    await manager.catalog.invalidate_user_catalog("u1")
    with pytest.raises(SerializationError):
        await board_of(manager, wrong)
    with pytest.raises(SerializationError):
        await manager.catalog.get_or_compute("watch_later", not_json, user_id="u1")
    assert await manager.catalog.get_dashboard("u1") is None
    assert [k async for k in raw.scan_iter("seen:catalog:watch_later:*")] == []
    assert [k async for k in raw.scan_iter("*:fill")] == []


async def test_xfetch_refreshes_hot_key_before_expiry_once_per_refresh(
    server: TestServer, raw: Redis
) -> None:
    """Steady reads with fixed seeds: the loader runs again before the TTL elapses, never
    twice at once, and no reader ever meets an expired key."""
    ttl = 1.0
    cfg = with_catalog(cache_config_for(server.url), xfetch_beta=2.0)
    loader = Loader(delay=0.05)
    async with (
        await CacheManager.connect(cfg) as one,
        await CacheManager.connect(cfg) as two,
    ):
        caches = [
            CatalogCache(m.service, m.scripts, m.keys, cfg, rng=random.Random(seed))
            for m, seed in ((one, 11), (two, 22))
        ]

        async def read(catalog: CatalogCache) -> Board:
            return await catalog.get_or_compute(
                "dashboard", loader, user_id="u1", model=Board, ttl=ttl
            )

        await read(caches[0])
        stop = time.monotonic() + 2.6
        seen: set[int] = set()

        async def reader(catalog: CatalogCache) -> None:
            while time.monotonic() < stop:
                seen.add((await read(catalog)).version)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(reader(c) for c in caches for _ in range(4)))
    stats = [c.local_stats() for c in caches]
    assert sum(s["misses"] for s in stats) == 1  # only the very first read
    assert loader.calls >= 3  # 2.6 s at a 1 s TTL needs at least two refreshes
    assert loader.max_running == 1  # one refresh at a time
    assert sum(s["refreshes"] for s in stats) == loader.calls - 1
    for (_, ended), (started, _) in zip(loader.spans, loader.spans[1:], strict=False):
        assert started < ended + ttl  # refreshed before the previous value expired
    assert seen == set(range(1, loader.calls + 1)) or seen == set(range(1, loader.calls))


def shifted_clock(seconds: float) -> Callable[[], int]:
    return lambda: wall_ms() + round(seconds * 1000)


async def test_early_refresh_success_and_failure(manager: CacheManager, raw: Redis) -> None:
    loader = Loader(delay=0.01, fail=lambda n: n == 2)
    assert await board_of(manager, loader) == Board(user_id="u1", version=1)
    # a reader whose clock is past the entry's expiry: XFetch always fires for it
    late = CatalogCache(
        manager.service, manager.scripts, manager.keys, manager.config, clock_ms=shifted_clock(400)
    )

    def read() -> Awaitable[Board]:
        return late.get_or_compute("dashboard", loader, user_id="u1", model=Board)

    assert await read() == Board(user_id="u1", version=1)  # refresh failed: cached value served
    assert late.local_stats()["refresh_errors"] == 1
    assert await read() == Board(user_id="u1", version=3)  # refresh succeeded
    assert await manager.catalog.get_dashboard("u1", Board) == Board(user_id="u1", version=3)
    assert late.local_stats()["refreshes"] == 2
    assert [k async for k in raw.scan_iter("*:fill")] == []


async def test_store_outage_falls_back_to_the_loader(private_server: EmbeddedServer) -> None:
    cfg = cache_config_for(private_server.addr, retries=1)
    async with await CacheManager.connect(cfg) as manager:
        loader = Loader(delay=0.05)
        private_server.kill()
        results = await asyncio.gather(*(board_of(manager, loader) for _ in range(10)))
        assert results == [Board(user_id="u1", version=1)] * 10
        assert loader.calls == 1  # still one loader per key in this process
        assert manager.catalog.local_stats()["store_errors"] == 10  # each caller met it
        with pytest.raises(CacheConnectionError):
            await manager.catalog.get_dashboard("u1")
        with pytest.raises(LookupError):
            await board_of(manager, Loader(fail=lambda n: True))
