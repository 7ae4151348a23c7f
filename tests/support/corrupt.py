"""Corrupt a stored key the way the audit found them: the wrong type, or a value a script
cannot use ("abc", "1.5", 2^63-1 where an integer is read). For the bad-key tests of every
Lua script (tests/integration/test_bad_keys_*.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

MAX_INT64 = "9223372036854775807"
"""2^63-1: an integer to Redis, beyond what our scripts ever write (they stay below 2^53)."""
BAD_NUMBERS = ("abc", "1.5", MAX_INT64)
"""Not an integer, not an integer, out of range."""


@dataclass(frozen=True)
class Corruption:
    """One way to break a key; ``name`` is the test id."""

    name: str
    apply: Callable[[Redis, str], Awaitable[None]]

    def __repr__(self) -> str:
        return self.name


async def _replace(raw: Redis, key: str, command: str, *args: Any) -> None:
    ttl = await raw.pttl(key)
    await raw.delete(key)
    await cast(Awaitable[Any], raw.execute_command(command, key, *args))  # type: ignore[no-untyped-call]
    if ttl > 0:
        await raw.pexpire(key, ttl)


def as_string(text: str = "not-a-hash") -> Corruption:
    """The key becomes a string (where a hash, a sorted set or a stream is expected)."""
    return Corruption("string", lambda raw, key: _replace(raw, key, "SET", text))


def as_hash() -> Corruption:
    """The key becomes a hash (where a string, a sorted set or a stream is expected)."""
    return Corruption("hash", lambda raw, key: _replace(raw, key, "HSET", "f", "v"))


def as_list() -> Corruption:
    """The key becomes a list (anything but a list is expected everywhere)."""
    return Corruption("list", lambda raw, key: _replace(raw, key, "RPUSH", "x"))


def value(text: str) -> Corruption:
    """A string key holds ``text`` (where a number or a token of a given form is expected)."""

    async def apply(raw: Redis, key: str) -> None:
        ttl = await raw.pttl(key)
        await raw.set(key, text)
        if ttl > 0:
            await raw.pexpire(key, ttl)

    return Corruption(f"value-{text}", apply)


def field(name: str, text: str) -> Corruption:
    """A hash field holds ``text`` (the other fields stay)."""

    async def apply(raw: Redis, key: str) -> None:
        await cast(Awaitable[int], raw.hset(key, name, text))

    return Corruption(f"{name}-{text}", apply)


def wrong_types(*kinds: str) -> list[Corruption]:
    """The wrong-type corruptions among ``string``, ``hash``, ``list``."""
    made = {"string": as_string(), "hash": as_hash(), "list": as_list()}
    return [made[k] for k in kinds]


def bad_numbers(make: Callable[[str], Corruption]) -> list[Corruption]:
    """``make`` applied to each of ``BAD_NUMBERS``."""
    return [make(text) for text in BAD_NUMBERS]


async def key_type(raw: Redis, key: str) -> str:
    """TYPE of ``key`` as text ("none" when absent)."""
    found = await cast(Awaitable[Any], raw.type(key))
    return found.decode() if isinstance(found, bytes) else str(found)


async def hget(raw: Redis, key: str, name: str) -> str | None:
    """One hash field (redis-py's types cannot tell sync from async here)."""
    return await cast(Awaitable[str | None], raw.hget(key, name))


async def hgetall(raw: Redis, key: str) -> dict[str, str]:
    """A whole hash."""
    return await cast(Awaitable[dict[str, str]], raw.hgetall(key))


async def hset(raw: Redis, key: str, mapping: dict[str, str]) -> None:
    """Set hash fields."""
    await cast(Awaitable[int], raw.hset(key, mapping=mapping))
