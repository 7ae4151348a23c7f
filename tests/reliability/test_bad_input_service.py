"""Random bad input through the Python API: a clear error or a faithful round trip, and no
other data changes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from cache.errors import CacheError, InvalidKeyError
from cache.keys import KeyBuilder
from cache.manager import CacheManager

K = KeyBuilder()
SENTINEL = "seen:t:sentinel"
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=50),
    st.binary(max_size=50),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FAST
@given(user_id=st.one_of(st.text(max_size=140), anything))
def test_any_user_id_is_valid_or_rejected(user_id: Any) -> None:
    try:
        key = K.user_profile(user_id)
    except InvalidKeyError:
        return
    assert key == f"seen:user:{user_id}:profile"
    assert not set(user_id) & set("*?[]\\:{} ")


@pytest.fixture
async def guarded(manager: CacheManager, raw: Redis) -> CacheManager:
    await raw.set(SENTINEL, "untouched")
    return manager


async def check_sentinel(raw: Redis) -> None:
    assert await raw.get(SENTINEL) == "untouched"


@FAST
@given(value=anything, ttl=st.one_of(st.none(), anything))
async def test_set_any_value_and_ttl(
    guarded: CacheManager, raw: Redis, value: Any, ttl: Any
) -> None:
    svc = guarded.service
    try:
        await svc.set("seen:t:v", value, ttl=ttl)
    except (CacheError, ValueError):
        assert await svc.exists("seen:t:v") == 0
    else:
        stored = await svc.get_bytes("seen:t:v")
        expected = value if isinstance(value, bytes) else str(value).encode()
        assert stored == expected
    finally:
        await raw.delete("seen:t:v")
    await check_sentinel(raw)


@FAST
@given(
    value=st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.text(max_size=20)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
async def test_json_round_trip(guarded: CacheManager, raw: Redis, value: Any) -> None:
    await guarded.service.set_json("seen:t:j", value)
    assert await guarded.service.get_json("seen:t:j") == value
    await check_sentinel(raw)


@FAST
@given(amount=anything)
async def test_increment_any_amount(guarded: CacheManager, raw: Redis, amount: Any) -> None:
    try:
        result = await guarded.service.increment("seen:t:n", amount)
    except (CacheError, ValueError):
        pass
    else:
        assert isinstance(amount, int)
        assert result == int(await raw.get("seen:t:n") or 0)
    finally:
        await raw.delete("seen:t:n")
    await check_sentinel(raw)
