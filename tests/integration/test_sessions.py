"""Session cache on a real server: TTLs, refresh-token lookup, invalidation, profiles."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from cache.errors import InvalidKeyError
from cache.manager import CacheManager
from cache.session_cache import ExpiredSessionError, SessionData, UserProfile

HOUR = 3600 * 1000


def make(
    session_id: str, user_id: str = "u1", token: str | None = None, hours: float = 1.0
) -> SessionData:
    return SessionData(
        session_id=session_id,
        user_id=user_id,
        refresh_token=token if token is not None else f"rt-{session_id}-secret",
        expires_at=datetime.now(UTC) + timedelta(hours=hours),
        metadata={"ip": "10.0.0.1", "device": "tv"},
    )


def token_key(token: str) -> str:
    return "seen:session:refresh:" + hashlib.sha256(token.encode()).hexdigest()


async def test_roundtrip_and_ttl(manager: CacheManager, raw: Redis) -> None:
    session = make("s1")
    ttl = await manager.session.set_session(session)
    assert 3599 < ttl <= 3600
    assert await manager.session.get_session("s1") == session
    assert HOUR - 2000 < await raw.pttl("seen:session:s1") <= HOUR
    assert HOUR - 2000 < await raw.pttl(token_key("rt-s1-secret")) <= HOUR
    assert await raw.pttl("seen:user:u1:sessions") > 23 * HOUR  # outlives its sessions
    assert await manager.session.get_session("missing") is None


async def test_ttl_is_capped_at_24_hours(manager: CacheManager, raw: Redis) -> None:
    assert await manager.session.set_session(make("long", hours=72)) == 24 * 3600
    assert 23 * HOUR < await raw.pttl("seen:session:long") <= 24 * HOUR


async def test_expired_session_is_rejected(manager: CacheManager, raw: Redis) -> None:
    session = make("old")
    session.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(ExpiredSessionError, match="expired") as info:
        await manager.session.set_session(session)
    assert isinstance(info.value, ValueError) and info.value.key == "seen:session:old"
    assert await raw.dbsize() == 0


async def test_session_ends_with_its_expiry(manager: CacheManager, raw: Redis) -> None:
    session = make("brief")
    session.expires_at = datetime.now(UTC) + timedelta(milliseconds=300)
    await manager.session.set_session(session)
    assert await raw.pttl("seen:session:brief") <= 300
    await asyncio.sleep(0.35)
    assert await manager.session.get_session("brief") is None
    assert await manager.session.get_session_by_refresh_token("rt-brief-secret") is None


@pytest.mark.parametrize(
    "fields",
    [
        {"session_id": "a b"},
        {"session_id": "*"},
        {"user_id": "u:1"},
        {"expires_at": datetime.now() + timedelta(hours=1)},  # naive
        {"refresh_token": ""},
    ],
)
def test_invalid_session_data(fields: dict[str, object]) -> None:
    data: dict[str, object] = {
        "session_id": "s1",
        "user_id": "u1",
        "refresh_token": "t",
        "expires_at": datetime.now(UTC) + timedelta(hours=1),
    }
    data.update(fields)
    with pytest.raises(ValidationError):
        SessionData.model_validate(data)


async def test_refresh_token_lookup_never_exposes_the_token(
    manager: CacheManager, raw: Redis
) -> None:
    token = "rt-very-secret-value"
    session = make("s1", token=token)
    await manager.session.set_session(session)
    found = await manager.session.get_session_by_refresh_token(token)
    assert found is not None and found.session_id == "s1"
    assert found.refresh_token is not None and found.refresh_token.get_secret_value() == token
    assert await manager.session.get_session_by_refresh_token("rt-wrong") is None
    keys = [k async for k in raw.scan_iter("*")]
    assert all(token not in k for k in keys)
    assert token_key(token) in keys
    assert token not in repr(found) and token not in str(found)
    assert token not in found.model_dump_json()
    with pytest.raises(InvalidKeyError):
        await manager.session.get_session_by_refresh_token("")


async def test_rotating_the_refresh_token_drops_the_old_lookup(
    manager: CacheManager, raw: Redis
) -> None:
    await manager.session.set_session(make("s1", token="old-token"))
    await manager.session.set_session(make("s1", token="new-token"))
    assert await manager.session.get_session_by_refresh_token("old-token") is None
    assert await raw.exists(token_key("old-token")) == 0
    found = await manager.session.get_session_by_refresh_token("new-token")
    assert found is not None and found.session_id == "s1"


async def test_stale_lookup_entry_is_not_trusted(manager: CacheManager, raw: Redis) -> None:
    await manager.session.set_session(make("s1", token="token-1"))
    await raw.set(token_key("forged"), "s1")  # points at a session with another token
    assert await manager.session.get_session_by_refresh_token("forged") is None


async def test_delete_session(manager: CacheManager, raw: Redis) -> None:
    await manager.session.set_session(make("s1"))
    await manager.session.set_session(make("s2"))
    assert await manager.session.delete_session("s1")
    assert not await manager.session.delete_session("s1")
    assert await raw.exists("seen:session:s1", token_key("rt-s1-secret")) == 0
    assert await raw.zrange("seen:user:u1:sessions", 0, -1) == ["s2"]
    assert await manager.session.get_session("s2") is not None


async def test_invalidate_user_sessions_removes_all_and_nothing_else(
    manager: CacheManager, raw: Redis
) -> None:
    for sid in ("a1", "a2", "a3"):
        await manager.session.set_session(make(sid, user_id="alice"))
    for sid in ("b1", "b2"):
        await manager.session.set_session(make(sid, user_id="bob"))
    await manager.session.set_user_profile(UserProfile(user_id="bob", username="bob"))
    await raw.set("seen:unrelated", "1")
    before = await raw.dbsize()
    await raw.config_resetstat()

    assert await manager.session.invalidate_user_sessions("alice") == 3

    commands = await raw.info("commandstats")
    assert not any(c in commands for c in ("cmdstat_scan", "cmdstat_keys"))
    assert before - await raw.dbsize() == 3 * 2 + 1  # sessions, token lookups, index
    for sid in ("a1", "a2", "a3"):
        assert await manager.session.get_session(sid) is None
        assert await manager.session.get_session_by_refresh_token(f"rt-{sid}-secret") is None
    for sid in ("b1", "b2"):
        assert await manager.session.get_session(sid) is not None
        assert await manager.session.get_session_by_refresh_token(f"rt-{sid}-secret")
    assert await manager.session.get_user_profile("bob") is not None
    assert await manager.session.invalidate_user_sessions("alice") == 0


async def test_a_session_moved_to_another_user_is_not_invalidated_with_the_first(
    manager: CacheManager,
) -> None:
    await manager.session.set_session(make("s1", user_id="alice"))
    await manager.session.set_session(make("s1", user_id="bob"))
    assert await manager.session.invalidate_user_sessions("alice") == 0
    assert await manager.session.get_session("s1") is not None
    assert await manager.session.invalidate_user_sessions("bob") == 1


async def test_manager_invalidate_user(manager: CacheManager, raw: Redis) -> None:
    await manager.session.set_session(make("s1"))
    await manager.session.set_session(make("s2"))
    await manager.session.set_user_profile(UserProfile(user_id="u1", username="x"))
    assert (await manager.invalidate_user("u1"))["sessions"] == 2
    left = [k async for k in raw.scan_iter("*")]
    # only the catalog's bumped generation counter remains
    assert left == [manager.keys.catalog_user_generation("u1")]


async def test_index_prunes_long_ended_entries(manager: CacheManager, raw: Redis) -> None:
    long_ago = int((datetime.now(UTC) - timedelta(hours=2)).timestamp() * 1000)
    await raw.zadd("seen:user:u1:sessions", {"ended": long_ago})
    await manager.session.set_session(make("s1"))
    assert await raw.zrange("seen:user:u1:sessions", 0, -1) == ["s1"]


async def test_corrupt_session_value(manager: CacheManager, raw: Redis) -> None:
    await manager.session.set_session(make("s1"))
    await raw.set("seen:session:s1", "{not json")
    with pytest.raises(ValueError, match="session"):
        await manager.session.get_session("s1")
    assert await manager.session.invalidate_user_sessions("u1") == 1
    assert await raw.exists("seen:session:s1") == 0


async def test_user_profile(manager: CacheManager, raw: Redis) -> None:
    profile = UserProfile(user_id="u1", username="ann", preferences={"lang": "fr"}, plan="pro")
    await manager.session.set_user_profile(profile)
    got = await manager.session.get_user_profile("u1")
    assert got == profile and got is not None and got.model_extra == {"plan": "pro"}
    assert 899_000 < await raw.pttl("seen:user:u1:profile") <= 900_000
    assert await manager.session.get_user_profile("u2") is None
    assert await manager.session.delete_user_profile("u1")
    assert await manager.session.get_user_profile("u1") is None
