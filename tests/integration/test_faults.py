"""A server that is down or restarts: clear errors, bounded time, recovery."""

from __future__ import annotations

import time

import pytest

from cache.errors import CacheConnectionError
from cache.manager import CacheManager
from tests.conftest import cache_config_for
from worker.embedded import EmbeddedServer, free_port


async def test_server_down_gives_clear_error_quickly() -> None:
    cfg = cache_config_for(f"127.0.0.1:{free_port()}")
    start = time.monotonic()
    with pytest.raises(CacheConnectionError, match="unreachable"):
        await CacheManager.connect(cfg)
    assert time.monotonic() - start < 5


async def test_unreachable_without_verify_fails_per_call() -> None:
    cfg = cache_config_for(f"127.0.0.1:{free_port()}")
    async with await CacheManager.connect(cfg, verify=False) as manager:
        with pytest.raises(CacheConnectionError) as info:
            await manager.service.get("seen:t:k")
        assert info.value.key == "seen:t:k"
        report = await manager.health_check()
        assert not report.ok and report.error


async def test_restart_between_calls_recovers(private_server: EmbeddedServer) -> None:
    cfg = cache_config_for(private_server.addr, retries=5, retry_cap=0.2)
    async with await CacheManager.connect(cfg) as manager:
        await manager.service.set("seen:t:k", "v")
        private_server.restart(hard=True)  # no persistence: data is gone, pool is stale
        assert await manager.service.get("seen:t:k") is None
        await manager.service.set("seen:t:k", "again")
        assert await manager.service.get("seen:t:k") == "again"


async def test_down_then_back(private_server: EmbeddedServer) -> None:
    cfg = cache_config_for(private_server.addr)
    async with await CacheManager.connect(cfg) as manager:
        private_server.kill()
        with pytest.raises(CacheConnectionError):
            await manager.service.set("seen:t:k", "v")
        private_server.start()
        await manager.service.set("seen:t:k", "v")
        assert await manager.service.get("seen:t:k") == "v"
        assert (await manager.health_check()).ok


async def test_wrong_password_is_a_clear_error(private_server: EmbeddedServer) -> None:
    cfg = cache_config_for(private_server.addr, password="wrong")
    with pytest.raises(Exception, match=r"(?i)auth|password"):
        await CacheManager.connect(cfg)


def test_embedded_server_leaves_nothing_behind() -> None:
    server = EmbeddedServer().start()
    folder = server._dir
    assert folder is not None
    server.stop()
    import os

    assert not os.path.exists(folder)
    assert not server.running
