"""Connection cuts, black holes and refusals between us and the store: every operation
either succeeds after a retry or fails with a clear CacheError, and none hangs past its
timeout budget."""

from __future__ import annotations

import asyncio
import time

import pytest

from cache.errors import CacheConnectionError, CacheTimeoutError
from cache.manager import CacheManager
from tests.conftest import TestServer, cache_config_for
from tests.reliability.proxy import FaultProxy


def port_of(server: TestServer) -> int:
    return int(server.addr.rpartition(":")[2])


async def test_cut_between_calls_is_retried(server: TestServer, raw: object) -> None:
    async with FaultProxy(port_of(server)) as proxy:
        cfg = cache_config_for(proxy.addr)
        async with await CacheManager.connect(cfg) as manager:
            await manager.service.set("seen:t:k", "v")
            for _ in range(5):
                proxy.cut()
                assert await manager.service.get("seen:t:k") == "v"
            assert proxy.accepted >= 5


async def test_cuts_under_concurrent_load(server: TestServer, raw: object) -> None:
    async with FaultProxy(port_of(server)) as proxy:
        cfg = cache_config_for(proxy.addr, retries=4)
        async with await CacheManager.connect(cfg) as manager:
            stop = asyncio.Event()

            async def cutter() -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.02)
                    proxy.cut()

            task = asyncio.create_task(cutter())
            outcomes: list[str] = []

            async def worker(n: int) -> None:
                for _ in range(30):
                    try:
                        await manager.service.increment(f"seen:t:c{n}")
                        outcomes.append("ok")
                    except CacheConnectionError:
                        outcomes.append("error")
                    await asyncio.sleep(0)

            await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(8))), timeout=30)
            stop.set()
            await task
            assert len(outcomes) == 240
            assert outcomes.count("ok") > 0
            assert set(outcomes) <= {"ok", "error"}


async def test_black_hole_times_out_within_budget(server: TestServer, raw: object) -> None:
    async with FaultProxy(port_of(server)) as proxy:
        cfg = cache_config_for(proxy.addr, socket_timeout=0.3, retries=2)
        async with await CacheManager.connect(cfg) as manager:
            proxy.blackhole = True
            start = time.monotonic()
            with pytest.raises(CacheTimeoutError) as info:
                await manager.service.get("seen:t:k")
            elapsed = time.monotonic() - start
            # 3 attempts x 0.3 s + small backoff; generous slack for a loaded machine
            assert elapsed < 3.0
            assert info.value.key == "seen:t:k"
            proxy.blackhole = False
            proxy.cut()
            assert await manager.service.get("seen:t:k") is None


async def test_refused_then_back(server: TestServer, raw: object) -> None:
    proxy = await FaultProxy(port_of(server)).start()
    try:
        cfg = cache_config_for(proxy.addr)
        async with await CacheManager.connect(cfg) as manager:
            await proxy.refuse()
            start = time.monotonic()
            with pytest.raises(CacheConnectionError):
                await manager.service.set("seen:t:k", "v")
            assert time.monotonic() - start < 3.0
            await proxy.start(proxy.port)
            await manager.service.set("seen:t:k", "v")
            assert await manager.service.get("seen:t:k") == "v"
    finally:
        await proxy.stop()
