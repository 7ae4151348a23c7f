"""CacheService against a real server: every documented call plus bad input."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from cache.errors import CacheResponseError, SerializationError, ValueTooLargeError
from cache.manager import CacheManager
from cache.service import TTL_MISSING, TTL_PERSISTENT
from tests.conftest import TestServer, cache_config_for


class Movie(BaseModel):
    id: str
    title: str
    year: int
    tags: list[str] = []


async def test_connectivity(manager: CacheManager) -> None:
    assert await manager.ping() >= 0


async def test_basic_get_set_delete_exists(manager: CacheManager) -> None:
    svc = manager.service
    assert await svc.get("seen:t:a") is None
    await svc.set("seen:t:a", "hello")
    assert await svc.get("seen:t:a") == "hello"
    await svc.set("seen:t:n", 42)
    assert await svc.get("seen:t:n") == "42"
    await svc.set("seen:t:b", b"\x00\xff")
    assert await svc.get_bytes("seen:t:b") == b"\x00\xff"
    assert await svc.exists("seen:t:a", "seen:t:b", "seen:t:missing") == 2
    assert await svc.delete("seen:t:a", "seen:t:missing") == 1
    assert await svc.exists("seen:t:a") == 0
    assert await svc.delete() == 0


async def test_unicode_round_trip(manager: CacheManager) -> None:
    await manager.service.set("seen:t:u", "héllo 🎬")
    assert await manager.service.get("seen:t:u") == "héllo 🎬"


async def test_ttl_expire_persist(manager: CacheManager, raw: Redis) -> None:
    svc = manager.service
    await svc.set("seen:t:ttl", "v", ttl=30)
    assert 29 <= await svc.ttl("seen:t:ttl") <= 30
    await svc.set("seen:t:td", "v", ttl=timedelta(minutes=2))
    assert 119 <= await svc.ttl("seen:t:td") <= 120
    await svc.set("seen:t:plain", "v")
    assert await svc.ttl("seen:t:plain") == TTL_PERSISTENT
    assert await svc.ttl("seen:t:none") == TTL_MISSING
    assert await svc.expire("seen:t:plain", 10) is True
    assert 9 <= await svc.ttl("seen:t:plain") <= 10
    assert await svc.expire("seen:t:none", 10) is False
    assert await svc.persist("seen:t:plain") is True
    assert await svc.ttl("seen:t:plain") == TTL_PERSISTENT


async def test_short_ttl_really_expires(manager: CacheManager) -> None:
    await manager.service.set("seen:t:short", "v", ttl=0.05)
    assert 0 < await manager.service.pttl("seen:t:short") <= 50
    await asyncio.sleep(0.12)
    assert await manager.service.get("seen:t:short") is None


@pytest.mark.parametrize("bad", [0, -1, -0.5, "10", True, [5]])
async def test_bad_ttl_rejected(manager: CacheManager, bad: object) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await manager.service.set("seen:t:x", "v", ttl=bad)  # type: ignore[arg-type]
    assert await manager.service.exists("seen:t:x") == 0


async def test_increment(manager: CacheManager) -> None:
    svc = manager.service
    assert await svc.increment("seen:t:c") == 1
    assert await svc.increment("seen:t:c", 10) == 11
    assert await svc.increment("seen:t:c", -3) == 8
    assert await svc.ttl("seen:t:c") == TTL_PERSISTENT


async def test_increment_ttl_set_on_create_only(manager: CacheManager) -> None:
    svc = manager.service
    assert await svc.increment("seen:t:w", ttl=60) == 1
    await svc.expire("seen:t:w", 5)
    assert await svc.increment("seen:t:w", ttl=60) == 2
    assert await svc.ttl("seen:t:w") <= 5


async def test_increment_concurrent_is_atomic(manager: CacheManager) -> None:
    await asyncio.gather(*(manager.service.increment("seen:t:par") for _ in range(200)))
    assert await manager.service.get("seen:t:par") == "200"


async def test_increment_wrong_type(manager: CacheManager) -> None:
    await manager.service.set("seen:t:s", "not a number")
    with pytest.raises(CacheResponseError) as info:
        await manager.service.increment("seen:t:s")
    assert info.value.key == "seen:t:s"
    assert await manager.service.get("seen:t:s") == "not a number"


async def test_set_nx(manager: CacheManager) -> None:
    svc = manager.service
    assert await svc.set_nx("seen:t:nx", "first", ttl=10) is True
    assert await svc.set_nx("seen:t:nx", "second") is False
    assert await svc.get("seen:t:nx") == "first"
    results = await asyncio.gather(*(svc.set_nx("seen:t:race", str(i)) for i in range(50)))
    assert results.count(True) == 1


async def test_get_set(manager: CacheManager) -> None:
    svc = manager.service
    assert await svc.get_set("seen:t:gs", "one") is None
    assert await svc.get_set("seen:t:gs", "two", ttl=30) == "one"
    assert await svc.get("seen:t:gs") == "two"
    assert 29 <= await svc.ttl("seen:t:gs") <= 30


async def test_mget_mset(manager: CacheManager) -> None:
    svc = manager.service
    await svc.mset({"seen:t:m1": "a", "seen:t:m2": 2})
    assert await svc.mget(["seen:t:m1", "seen:t:none", "seen:t:m2"]) == ["a", None, "2"]
    assert await svc.mget([]) == []
    await svc.mset({})
    await svc.mset({"seen:t:m3": "c", "seen:t:m4": "d"}, ttl=20)
    assert 19 <= await svc.ttl("seen:t:m3") <= 20
    assert 19 <= await svc.ttl("seen:t:m4") <= 20


async def test_mset_is_all_or_nothing_on_bad_value(manager: CacheManager) -> None:
    with pytest.raises(SerializationError):
        await manager.service.mset({"seen:t:ok": "a", "seen:t:bad": [1]})  # type: ignore[dict-item]
    assert await manager.service.exists("seen:t:ok") == 0


async def test_json_models_and_plain_values(manager: CacheManager) -> None:
    svc = manager.service
    movie = Movie(id="m1", title="Heat", year=1995, tags=["crime"])
    await svc.set_json("seen:t:movie", movie, ttl=60)
    assert await svc.get_json("seen:t:movie", Movie) == movie
    assert await svc.get_json("seen:t:movie") == movie.model_dump()
    await svc.set_json("seen:t:plain", {"a": [1, 2.5, None, "x"]})
    assert await svc.get_json("seen:t:plain") == {"a": [1, 2.5, None, "x"]}
    assert await svc.get_json("seen:t:missing", Movie) is None
    await svc.mset_json({"seen:t:j1": movie, "seen:t:j2": movie}, ttl=5)
    assert await svc.mget_json(["seen:t:j1", "seen:t:x", "seen:t:j2"], Movie) == [
        movie,
        None,
        movie,
    ]


async def test_json_large_values_are_compressed(manager: CacheManager, raw: Redis) -> None:
    movies = [Movie(id=f"m{i}", title=f"Title {i}", year=2000 + i % 20) for i in range(500)]
    payload = [m.model_dump() for m in movies]
    await manager.service.set_json("seen:t:big", payload)
    stored = await raw.strlen("seen:t:big")
    plain = len(manager.service.encode_json("k", []) + b"") + len(str(payload))
    assert stored < plain / 3
    assert await manager.service.get_json("seen:t:big") == payload


async def test_json_bad_input(manager: CacheManager, raw: Redis) -> None:
    with pytest.raises(SerializationError):
        await manager.service.set_json("seen:t:obj", object())
    await raw.set("seen:t:garbage", "{not json")
    with pytest.raises(SerializationError) as info:
        await manager.service.get_json("seen:t:garbage")
    assert info.value.key == "seen:t:garbage"
    await manager.service.set_json("seen:t:wrong", {"id": 1})
    with pytest.raises(SerializationError):
        await manager.service.get_json("seen:t:wrong", Movie)


@pytest.mark.parametrize("bad", [None, [1], {"a": 1}, True, object()])
async def test_set_wrong_value_types(manager: CacheManager, bad: object) -> None:
    with pytest.raises(SerializationError):
        await manager.service.set("seen:t:bad", bad)  # type: ignore[arg-type]
    assert await manager.service.exists("seen:t:bad") == 0


@pytest.mark.parametrize("bad", ["", None, 5])
async def test_bad_keys(manager: CacheManager, bad: object) -> None:
    with pytest.raises(ValueError, match="key"):
        await manager.service.get(bad)  # type: ignore[arg-type]


async def test_oversized_value_refused(server: TestServer, raw: Redis) -> None:
    cfg = cache_config_for(server.url, max_value_bytes=1024)
    async with await CacheManager.connect(cfg) as mgr:
        await mgr.service.set("seen:t:keep", "kept")
        with pytest.raises(ValueTooLargeError) as info:
            await mgr.service.set("seen:t:huge", "x" * 2048)
        assert info.value.key == "seen:t:huge"
        with pytest.raises(ValueTooLargeError):
            await mgr.service.set_json("seen:t:huge", {"blob": secrets.token_hex(4096)})
        assert await mgr.service.exists("seen:t:huge") == 0
        assert await mgr.service.get("seen:t:keep") == "kept"


async def test_scan_and_keys(manager: CacheManager, raw: Redis) -> None:
    async with raw.pipeline(transaction=False) as pipe:
        for i in range(1200):
            pipe.set(f"seen:catalog:dashboard:u{i}:g0", "1")
        for i in range(30):
            pipe.set(f"seen:session:s{i}", "1")
        await pipe.execute()
    keys = await manager.service.keys("seen:catalog:*")
    assert len(keys) == 1200 == len(set(keys))
    assert await manager.service.keys("seen:catalog:*", limit=10) != []
    assert len(await manager.service.keys("seen:catalog:*", limit=10)) == 10
    seen = {k async for k in manager.service.scan("seen:session:*", count=7)}
    assert len(seen) == 30


async def test_keys_beyond_dragonfly_keys_limit(manager: CacheManager, raw: Redis) -> None:
    """Dragonfly truncates KEYS at 8192; our keys() is SCAN-based and sees them all."""
    async with raw.pipeline(transaction=False) as pipe:
        for i in range(9000):
            pipe.set(f"seen:many:{i}", "1")
        await pipe.execute()
    assert len(await manager.service.keys("seen:many:*")) == 9000


async def test_glob_characters_in_stored_keys_are_literal(manager: CacheManager) -> None:
    from cache.keys import escape_glob

    await manager.service.set("seen:t:a*b", "1")
    await manager.service.set("seen:t:axb", "1")
    assert await manager.service.keys("seen:t:" + escape_glob("a*b")) == ["seen:t:a*b"]
