"""The JSON helpers store strict JSON only: NaN and Infinity are refused
with a CacheError before anything is written (Go and JavaScript readers cannot parse them), and
nesting too deep for Python is a CacheError on write and on read, never a RecursionError."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from cache.errors import CacheError, SerializationError
from cache.manager import CacheManager

KEY = "seen:t:json"
DEPTH = 100_000
NON_FINITE = [math.nan, math.inf, -math.inf]


class Reading(BaseModel):
    label: str
    value: float
    extra: dict[str, Any] = {}
    maybe: float | None = None


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def shapes(bad: float) -> list[Any]:
    """``bad`` alone and buried in lists and objects."""
    return [
        bad,
        [bad],
        {"a": bad},
        {"a": [1, 2, {"b": [bad]}]},
        [{"x": "NaN"}, {"y": {"z": [0.5, bad]}}],
    ]


@pytest.mark.parametrize("bad", NON_FINITE, ids=["nan", "inf", "-inf"])
async def test_non_finite_plain_values_are_refused(
    manager: CacheManager, raw: Redis, bad: float
) -> None:
    for value in shapes(bad):
        with pytest.raises(CacheError, match="NaN and Infinity are not JSON") as caught:
            await manager.service.set_json(KEY, value, ttl=60)
        assert caught.value.key == KEY
        with pytest.raises(CacheError):
            await manager.service.mset_json({KEY: {"ok": 1}, f"{KEY}:2": value})
    assert await raw.exists(KEY, f"{KEY}:2") == 0


@pytest.mark.parametrize("bad", NON_FINITE, ids=["nan", "inf", "-inf"])
async def test_non_finite_floats_in_models_are_refused(
    manager: CacheManager, raw: Redis, bad: float
) -> None:
    # pydantic writes these as null; storing that would silently change the value
    models = [
        Reading(label="a", value=bad),
        Reading(label="a", value=1.0, extra={"deep": [{"x": bad}]}),
        Reading(label="a", value=1.0, maybe=bad),
    ]
    for model in models:
        with pytest.raises(SerializationError, match="NaN and Infinity"):
            await manager.service.set_json(KEY, model)
    with pytest.raises(CacheError):
        await manager.catalog.set("dashboard", models[1], user_id="u1")
    assert await raw.exists(KEY) == 0
    assert [k async for k in raw.scan_iter("seen:catalog:dashboard:*")] == []


async def test_finite_models_and_nulls_still_round_trip(manager: CacheManager) -> None:
    model = Reading(label="NaN Infinity null", value=1e308, extra={"n": None, "f": -0.0})
    await manager.service.set_json(KEY, model)
    assert await manager.service.get_json(KEY, Reading) == model
    await manager.service.set_json(KEY, {"a": None, "b": [1e-300, "Infinity"]})
    assert await manager.service.get_json(KEY) == {"a": None, "b": [1e-300, "Infinity"]}


@pytest.mark.parametrize("stored", [b'{"a": NaN}', b"[1, Infinity]", b"-Infinity"])
async def test_non_finite_values_written_by_others_are_refused_on_read(
    manager: CacheManager, raw: Redis, stored: bytes
) -> None:
    await raw.set(KEY, stored)
    with pytest.raises(SerializationError, match="NaN and Infinity") as caught:
        await manager.service.get_json(KEY)
    assert caught.value.key == KEY


async def test_deep_nesting_is_a_cache_error_on_write(manager: CacheManager, raw: Redis) -> None:
    deep = nested_list(DEPTH)
    with pytest.raises(CacheError, match="nested too deeply") as caught:
        await manager.service.set_json(KEY, deep)
    assert caught.value.key == KEY
    with pytest.raises(CacheError):
        await manager.service.set_json(KEY, Reading(label="a", value=1, extra={"d": deep}))
    assert await raw.exists(KEY) == 0


async def test_deep_nesting_is_a_cache_error_on_read(manager: CacheManager, raw: Redis) -> None:
    await raw.set(KEY, b"[" * DEPTH + b"]" * DEPTH)
    with pytest.raises(CacheError, match="nested too deeply") as caught:
        await manager.service.get_json(KEY)
    assert caught.value.key == KEY
    with pytest.raises(CacheError):
        await manager.service.get_json(KEY, Reading)
    await raw.set(
        KEY, b'{"label": "a", "value": 1, "extra": {"d": ' + b"[" * DEPTH + b"]" * DEPTH + b"}}"
    )
    with pytest.raises(CacheError):
        await manager.service.get_json(KEY, Reading)
