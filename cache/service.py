"""CacheService: the typed low-level operations every cache builds on.

Keys come from ``KeyBuilder``; values are text, bytes, numbers or JSON (pydantic models or
plain values, compressed above a threshold). Every redis-py error is translated into a
``CacheError`` naming the key. ``keys()`` is built on SCAN: the KEYS command is never sent
(Dragonfly truncates its answer at 8192 results).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar, overload

from pydantic import BaseModel
from redis.asyncio import Redis

from cache import codec
from cache.cluster import is_cluster, mget_per_slot, mset_per_slot, scan_primaries
from cache.codec import as_text
from cache.config import CacheSettings
from cache.errors import (
    InvalidArgumentError,
    InvalidKeyError,
    SerializationError,
    ValueTooLargeError,
    translate_errors,
)
from cache.numbers import MAX_SECONDS, seconds_arg

M = TypeVar("M", bound=BaseModel)
Scalar = str | bytes | int | float
TTL = int | float | timedelta

TTL_MISSING = -2
"""``ttl()`` result for a key that does not exist."""
TTL_PERSISTENT = -1
"""``ttl()`` result for a key without an expiry."""

MAX_TTL_SECONDS = MAX_SECONDS
"""Dragonfly caps expiry deadlines at about 8.5 years; longer TTLs are refused."""


def ttl_ms(ttl: TTL, name: str = "ttl") -> int:
    """A positive TTL in whole milliseconds; ``InvalidArgumentError`` (a ``ValueError``) for
    zero, negative, non-finite (inf, nan), too long and non-numbers."""
    ms = round(seconds_arg(ttl, name, maximum=MAX_TTL_SECONDS) * 1000)
    if ms <= 0:
        raise InvalidArgumentError(f"{name} must be at least 1 ms, got {ttl!r}")
    return ms


class CacheService:
    """Typed operations over one client. It does not own the client (the manager does)."""

    def __init__(self, client: Redis, settings: CacheSettings | None = None) -> None:
        self.client = client
        self.settings = settings or CacheSettings()
        self.cluster = is_cluster(client)

    # -- helpers -----------------------------------------------------------------------
    def _encode(self, key: str, value: Scalar) -> bytes:
        if isinstance(value, bool) or not isinstance(value, str | bytes | int | float):
            raise SerializationError(
                f"value must be str, bytes, int or float, got {type(value).__name__}", key=key
            )
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        self._check_size(key, len(data))
        return data

    def _check_size(self, key: str, size: int) -> None:
        if size > self.settings.max_value_bytes:
            raise ValueTooLargeError(
                f"value of {size} bytes exceeds cache.max_value_bytes="
                f"{self.settings.max_value_bytes}",
                key=key,
            )

    @staticmethod
    def _key(key: object) -> str:
        if not isinstance(key, str) or not key:
            raise InvalidKeyError(f"key must be a non-empty string, got {key!r}")
        return key

    # -- strings -------------------------------------------------------------------------
    async def get(self, key: str) -> str | None:
        """The value as text, or None when missing."""
        return as_text(await self.get_bytes(key))

    async def get_bytes(self, key: str) -> bytes | None:
        with translate_errors(self._key(key), operation="GET"):
            raw: bytes | None = await self.client.get(key)
        return raw

    async def set(self, key: str, value: Scalar, ttl: TTL | None = None) -> None:
        """Store ``value``; with ``ttl`` (seconds or timedelta) it expires."""
        data = self._encode(self._key(key), value)
        px = None if ttl is None else ttl_ms(ttl)
        with translate_errors(key, operation="SET"):
            await self.client.set(key, data, px=px)

    async def delete(self, *keys: str) -> int:
        """Delete keys; returns how many existed."""
        if not keys:
            return 0
        with translate_errors(keys[0] if len(keys) == 1 else None, operation="DEL"):
            return int(await self.client.delete(*(self._key(k) for k in keys)))

    async def exists(self, *keys: str) -> int:
        """How many of ``keys`` exist (a key named twice counts twice, as in Redis)."""
        if not keys:
            return 0
        with translate_errors(keys[0] if len(keys) == 1 else None, operation="EXISTS"):
            return int(await self.client.exists(*(self._key(k) for k in keys)))

    async def increment(self, key: str, amount: int = 1, ttl: TTL | None = None) -> int:
        """Atomically add ``amount``; with ``ttl`` the key gets it when the count is created."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise SerializationError("amount must be an int", key=key)
        self._key(key)
        with translate_errors(key, operation="INCRBY"):
            if ttl is None:
                return int(await self.client.incrby(key, amount))
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incrby(key, amount)
                pipe.pexpire(key, ttl_ms(ttl), nx=True)
                value, _ = await pipe.execute()
            return int(value)

    async def set_nx(self, key: str, value: Scalar, ttl: TTL | None = None) -> bool:
        """Store only when missing; True when this call stored it."""
        data = self._encode(self._key(key), value)
        px = None if ttl is None else ttl_ms(ttl)
        with translate_errors(key, operation="SET NX"):
            return bool(await self.client.set(key, data, px=px, nx=True))

    async def get_set(self, key: str, value: Scalar, ttl: TTL | None = None) -> str | None:
        """Store ``value`` and return the previous value (SET ... GET)."""
        data = self._encode(self._key(key), value)
        px = None if ttl is None else ttl_ms(ttl)
        with translate_errors(key, operation="SET GET"):
            old: bytes | None = await self.client.set(key, data, px=px, get=True)
        return as_text(old)

    async def mget(self, keys: Sequence[str]) -> list[str | None]:
        """Values of ``keys`` in order, None for each missing one."""
        return [as_text(v) for v in await self.mget_bytes(keys)]

    async def mget_bytes(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        with translate_errors(None, operation="MGET"):
            if self.cluster:  # one MGET per hash slot, pipelined
                return await mget_per_slot(self.client, [self._key(k) for k in keys])
            values: list[bytes | None] = await self.client.mget([self._key(k) for k in keys])
        return values

    async def mset(self, mapping: Mapping[str, Scalar], ttl: TTL | None = None) -> None:
        """Store every pair atomically (one MULTI/EXEC); with ``ttl`` each key expires.

        On a cluster the atomicity is per hash slot: keys sharing a ``{hashtag}`` are written
        together or not at all; keys of different slots cannot share a transaction there."""
        if not mapping:
            return
        data = {self._key(k): self._encode(k, v) for k, v in mapping.items()}
        await self._mset_raw(data, ttl)

    async def _mset_raw(self, data: Mapping[str, bytes], ttl: TTL | None) -> None:
        with translate_errors(None, operation="MSET"):
            if self.cluster:
                await mset_per_slot(self.client, data, None if ttl is None else ttl_ms(ttl))
                return
            if ttl is None:
                await self.client.mset(dict(data))
                return
            ms = ttl_ms(ttl)
            async with self.client.pipeline(transaction=True) as pipe:
                for key, value in data.items():
                    pipe.set(key, value, px=ms)
                await pipe.execute()

    # -- keyspace ------------------------------------------------------------------------
    async def scan(self, pattern: str = "*", count: int | None = None) -> AsyncIterator[str]:
        """Iterate keys matching ``pattern`` with SCAN (may yield a key twice, as SCAN does);
        on a cluster every primary is scanned."""
        cursor = 0
        hint = count or self.settings.scan_count
        if self.cluster:
            with translate_errors(pattern, operation="SCAN"):
                async for raw in scan_primaries(self.client, pattern, hint):
                    yield raw.decode("utf-8", errors="replace")
            return
        while True:
            with translate_errors(pattern, operation="SCAN"):
                cursor, batch = await self.client.scan(cursor, match=pattern, count=hint)
            for raw in batch:
                yield raw.decode("utf-8", errors="replace")
            if cursor == 0:
                return

    async def keys(self, pattern: str = "*", limit: int = 100_000) -> list[str]:
        """Distinct keys matching ``pattern``, via SCAN (never KEYS); at most ``limit``."""
        found: dict[str, None] = {}
        async for key in self.scan(pattern):
            found[key] = None
            if len(found) >= limit:
                break
        return list(found)

    async def expire(self, key: str, ttl: TTL) -> bool:
        """Set a TTL; False when the key does not exist."""
        self._key(key)
        with translate_errors(key, operation="PEXPIRE"):
            return bool(await self.client.pexpire(key, ttl_ms(ttl)))

    async def persist(self, key: str) -> bool:
        """Remove a TTL; False when the key is missing or had none."""
        with translate_errors(self._key(key), operation="PERSIST"):
            return bool(await self.client.persist(key))

    async def ttl(self, key: str) -> int:
        """Seconds left (rounded up), ``TTL_PERSISTENT`` (-1) or ``TTL_MISSING`` (-2)."""
        ms = await self.pttl(key)
        if ms < 0:
            return ms
        return -(-ms // 1000)

    async def pttl(self, key: str) -> int:
        """Milliseconds left, or -1 / -2 as ``ttl``."""
        with translate_errors(self._key(key), operation="PTTL"):
            return int(await self.client.pttl(key))

    # -- JSON ------------------------------------------------------------------------------
    @overload
    async def get_json(self, key: str, model: type[M]) -> M | None: ...
    @overload
    async def get_json(self, key: str, model: None = None) -> Any: ...
    async def get_json(self, key: str, model: type[M] | None = None) -> M | Any:
        """Decode a JSON value (into ``model`` when given); None when missing."""
        raw = await self.get_bytes(key)
        if raw is None:
            return None
        try:
            return codec.decode(raw, model)
        except SerializationError as exc:
            raise SerializationError(str(exc), key=key) from exc

    async def set_json(self, key: str, value: Any, ttl: TTL | None = None) -> None:
        """Store a model or plain JSON value, compressed above ``compress_threshold``."""
        data = self.encode_json(key, value)
        px = None if ttl is None else ttl_ms(ttl)
        with translate_errors(key, operation="SET"):
            await self.client.set(key, data, px=px)

    async def mget_json(self, keys: Sequence[str], model: type[M]) -> list[M | None]:
        """Decode many JSON values in one round trip."""
        out: list[M | None] = []
        for key, raw in zip(keys, await self.mget_bytes(keys), strict=True):
            if raw is None:
                out.append(None)
                continue
            try:
                out.append(codec.decode(raw, model))
            except SerializationError as exc:
                raise SerializationError(str(exc), key=key) from exc
        return out

    async def mset_json(self, mapping: Mapping[str, Any], ttl: TTL | None = None) -> None:
        """Store many JSON values atomically."""
        if mapping:
            await self._mset_raw(
                {self._key(k): self.encode_json(k, v) for k, v in mapping.items()}, ttl
            )

    def encode_json(self, key: str, value: Any) -> bytes:
        """The stored form of a JSON value, size-checked."""
        try:
            data = codec.encode(value, self.settings.compress_threshold)
        except SerializationError as exc:
            raise SerializationError(str(exc), key=key) from exc
        self._check_size(key, len(data))
        return data

    # -- bulk deletion -----------------------------------------------------------------
    async def unlink_many(self, keys: Iterable[str], batch: int | None = None) -> int:
        """UNLINK keys in bounded batches; returns how many existed."""
        size = batch or self.settings.delete_batch
        chunk: list[str] = []
        removed = 0
        for key in keys:
            chunk.append(key)
            if len(chunk) >= size:
                removed += await self._unlink(chunk)
                chunk = []
        if chunk:
            removed += await self._unlink(chunk)
        return removed

    async def _unlink(self, keys: list[str]) -> int:
        with translate_errors(None, operation="UNLINK"):
            return int(await self.client.unlink(*keys))
