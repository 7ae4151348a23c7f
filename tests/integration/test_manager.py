"""CacheManager: life cycle, health, stats, pattern deletion, invalidation hooks."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from cache.config import CacheConfig
from cache.errors import CacheError, InvalidKeyError
from cache.manager import CacheManager
from tests.conftest import TestServer


async def test_connect_and_close(cache_config: CacheConfig) -> None:
    manager = await CacheManager.connect(cache_config)
    assert await manager.ping() > 0
    await manager.aclose()
    await manager.aclose()  # idempotent


async def test_from_url_and_context_manager(server: TestServer) -> None:
    async with await CacheManager.from_url(server.url, socket_timeout=1.0) as manager:
        assert manager.config.cache.socket_timeout == 1.0
        await manager.service.set("seen:t:x", "1")
        assert await manager.service.get("seen:t:x") == "1"


async def test_health_check(manager: CacheManager, raw: Redis) -> None:
    report = await manager.health_check()
    assert report.ok and report.write_read_ok
    assert report.latency_ms is not None and report.latency_ms >= 0
    assert report.server
    assert await raw.keys("seen:health:*") == []


async def test_stats(manager: CacheManager) -> None:
    for i in range(10):
        await manager.service.set(f"seen:t:{i}", "v")
    await manager.service.get("seen:t:1")
    await manager.service.get("seen:t:missing")
    stats = await manager.stats()
    assert stats.keys == 10
    assert stats.version != "unknown"
    assert stats.used_memory > 0
    assert stats.keyspace_hits >= 1 and stats.keyspace_misses >= 1
    assert stats.hit_rate is not None and 0 < stats.hit_rate < 1
    assert stats.connected_clients >= 1


async def test_stats_sources_are_merged(manager: CacheManager) -> None:
    async def counters() -> dict[str, int]:
        return {"hits": 3}

    manager.register_stats("catalog", counters)
    assert (await manager.stats()).extra["catalog.hits"] == 3


async def test_delete_keys_by_pattern(manager: CacheManager, raw: Redis) -> None:
    async with raw.pipeline(transaction=False) as pipe:
        for i in range(1234):
            pipe.set(f"seen:catalog:dashboard:u{i}:g0", "1")
        pipe.set("seen:session:s1", "1")
        pipe.set("arq:queue", "1")
        await pipe.execute()
    assert await manager.delete_keys_by_pattern("seen:catalog:*") == 1234
    assert await raw.exists("seen:session:s1", "arq:queue") == 2
    assert await manager.delete_keys_by_pattern("seen:catalog:*") == 0


@pytest.mark.parametrize("pattern", ["*", "arq:*", "", "other:seen:*"])
async def test_delete_outside_namespace_refused(
    manager: CacheManager, raw: Redis, pattern: str
) -> None:
    await raw.set("arq:queue", "1")
    with pytest.raises(InvalidKeyError):
        await manager.delete_keys_by_pattern(pattern)
    assert await raw.exists("arq:queue") == 1


async def test_invalidate_user_calls_every_registered_cache(manager: CacheManager) -> None:
    calls: list[str] = []

    async def sessions(user_id: str) -> int:
        calls.append(user_id)
        return 2

    manager.register_invalidator("sessions", sessions)
    assert (await manager.invalidate_user("u1"))["sessions"] == 2
    assert calls == ["u1"]
    with pytest.raises(InvalidKeyError):
        await manager.invalidate_user("*")
    assert calls == ["u1"]


async def test_warmup_loads_scripts(manager: CacheManager, raw: Redis) -> None:
    await raw.script_flush()
    done = await manager.warmup()
    assert done["scripts"] == len(manager.scripts.scripts) >= 1
    shas = [s.sha for s in manager.scripts.scripts.values()]
    assert all(await raw.script_exists(*shas))


async def test_script_reloaded_after_flush(manager: CacheManager, raw: Redis) -> None:
    await manager.warmup()
    await raw.script_flush()
    assert await manager.scripts.run("probe", ["seen:health:probe:x"], ["v", 1000]) == b"v"


async def test_script_key_rules_enforced(manager: CacheManager) -> None:
    with pytest.raises(CacheError, match="declares 1 keys"):
        await manager.scripts.run("probe", ["a", "b"], ["v", 1000])
    with pytest.raises(CacheError, match="no Lua script"):
        await manager.scripts.run("nope", [], [])
