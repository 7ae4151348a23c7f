"""CacheManager: owns the client and the caches built on it.

One per process (or per test). ``connect()`` creates the pool and checks the store answers;
``aclose()`` (or leaving ``async with``) closes it. The specialised caches share the manager's
service, keys and script runner; nothing here creates a connection at import time.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from cache.catalog import CatalogCache
from cache.client import create_client
from cache.config import CacheConfig, CacheSettings
from cache.coordination import HolderIdentity, LockService, RateLimiter
from cache.counts import ReadCounts
from cache.download import DownloadCache
from cache.errors import CacheError, InvalidKeyError, translate_errors
from cache.keys import KeyBuilder, validate_id
from cache.scripts import ScriptRunner
from cache.service import CacheService
from cache.session_cache import SessionCache
from cache.stats import CacheStats, merge_info, parse_info

Invalidator = Callable[[str], Awaitable[int]]
StatsSource = Callable[[], Awaitable[dict[str, int]]]


class HealthReport(BaseModel):
    """Result of ``health_check``: a verdict plus what it is based on."""

    ok: bool
    latency_ms: float | None = None
    write_read_ok: bool = False
    server: str | None = None
    error: str | None = None


class CacheManager:
    """Owner of the store connection and every cache on it."""

    def __init__(self, client: Redis, config: CacheConfig, *, holder: str | None = None) -> None:
        """Prefer ``connect``/``from_url``; this adopts ``client`` and will close it.
        ``holder`` names this process in its lock tokens (a worker: its worker id; default:
        the program's name), with its host and pid (``cache.coordination.HolderIdentity``)."""
        self.client = client
        self.config = config
        self.keys = KeyBuilder(config.cache.namespace)
        self.service = CacheService(client, config.cache)
        self.scripts = ScriptRunner(client)
        self._invalidators: dict[str, Invalidator] = {}
        self._stats_sources: dict[str, StatsSource] = {}
        self._closed = False
        self.locks = LockService(
            self.scripts,
            self.service,
            self.keys,
            config.ttl.lock,
            config.locks,
            HolderIdentity.of_process(holder),
        )
        self.ratelimit = RateLimiter(self.scripts, self.service, self.keys)
        self.reads = ReadCounts()
        """Reads by cache kind and result in this process (every cache below counts here)."""
        self.session = SessionCache(
            self.service, self.keys, config.ttl, self.locks, self.ratelimit, self.reads
        )
        self.register_invalidator("sessions", self.session.invalidate_user)
        self.register_stats("locks", self.locks.stats)
        self.register_stats("ratelimit", self.ratelimit.stats)
        self.catalog = CatalogCache(self.service, self.scripts, self.keys, config, reads=self.reads)
        self.register_invalidator("catalog", self.catalog.invalidate_user_catalog)
        self.register_stats("catalog", self.catalog.stats)
        self.download = DownloadCache(
            client, self.service, self.keys, self.scripts, config, reads=self.reads
        )
        self.register_invalidator("download", self.download.invalidate_user_downloads)
        self.register_stats("download", self.download.stats)

    # -- life cycle -------------------------------------------------------------------
    @classmethod
    async def connect(
        cls, config: CacheConfig | None = None, *, verify: bool = True, holder: str | None = None
    ) -> Self:
        """Create the pool; with ``verify`` fail fast (``CacheConnectionError``) if unreachable.
        ``holder``: who this process's lock tokens name (``__init__``)."""
        config = config or CacheConfig()
        manager = cls(create_client(config.cache), config, holder=holder)
        if verify:
            try:
                await manager.ping()
            except BaseException:
                await manager.aclose()
                raise
        return manager

    @classmethod
    async def from_url(cls, url: str, *, verify: bool = True, **cache_settings: Any) -> Self:
        """Connect to ``url`` (redis://, rediss://) with optional ``CacheSettings`` overrides."""
        config = CacheConfig(cache=CacheSettings(addr=url, **cache_settings))
        return await cls.connect(config, verify=verify)

    async def aclose(self) -> None:
        """Close the pool. Safe to call twice."""
        if not self._closed:
            self._closed = True
            await self.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- extension points for the specialised caches --------------------------------
    def register_invalidator(self, name: str, invalidator: Invalidator) -> None:
        """``invalidate_user`` calls ``invalidator(user_id)`` and reports its count as ``name``."""
        self._invalidators[name] = invalidator

    def register_stats(self, name: str, source: StatsSource) -> None:
        """``stats()`` merges ``source()``'s counters into ``extra`` under ``name.``."""
        self._stats_sources[name] = source

    # -- operations -----------------------------------------------------------------------
    async def ping(self) -> float:
        """Round-trip time in milliseconds; raises ``CacheConnectionError`` when unreachable."""
        start = time.perf_counter()
        with translate_errors(None, operation="PING"):
            await self.client.ping()
        return (time.perf_counter() - start) * 1000

    async def health_check(self) -> HealthReport:
        """PING, then a write/read/delete probe in one script; never raises for store faults."""
        try:
            latency = await self.ping()
            nonce = secrets.token_hex(8)
            key = self.keys.health_probe(nonce)
            echoed = await self.scripts.run("probe", [key], [nonce, 10_000])
            ok = echoed in (nonce, nonce.encode())
            info = await self.info("server")
            server = f"{info.get('server_name', 'redis')} {info.get('redis_version', '?')}"
            return HealthReport(
                ok=ok,
                latency_ms=round(latency, 3),
                write_read_ok=ok,
                server=server,
                error=None if ok else "probe read back a different value",
            )
        except CacheError as exc:
            return HealthReport(ok=False, error=str(exc))

    async def info(self, section: str | None = None) -> dict[str, Any]:
        """INFO of the store as one: of a cluster, every primary's merged (``stats.merge_info``;
        a bare INFO on the cluster client would answer for some nodes, each on its own)."""
        with translate_errors(None, operation="INFO"):
            if self.service.cluster:
                args = (section,) if section else ()
                replies = await self.client.info(*args, target_nodes=RedisCluster.PRIMARIES)
                return merge_info(replies.values())
            info: dict[str, Any] = await (
                self.client.info(section) if section else self.client.info()
            )
        return info

    async def stats(self) -> CacheStats:
        """Parsed INFO plus the counters the specialised caches registered."""
        info = await self.info()
        with translate_errors(None, operation="DBSIZE"):
            if self.service.cluster:  # redis-py sums the primaries' replies
                dbsize = int(await self.client.dbsize(target_nodes=RedisCluster.PRIMARIES))
            else:
                dbsize = int(await self.client.dbsize())
        stats = parse_info(info, dbsize)
        for name, source in self._stats_sources.items():
            for counter, value in (await source()).items():
                stats.extra[f"{name}.{counter}"] = value
        return stats

    async def delete_keys_by_pattern(self, pattern: str) -> int:
        """SCAN + UNLINK in bounded batches, within our namespace only; returns the count."""
        if not isinstance(pattern, str) or not self.keys.owns(pattern):
            raise InvalidKeyError(
                f"pattern {pattern!r} must start with {self.keys.namespace + ':'!r}; "
                "deleting outside the namespace (e.g. the job queue) is refused"
            )
        batch_size = self.config.cache.delete_batch
        removed = 0
        batch: list[str] = []
        async for key in self.service.scan(pattern):
            batch.append(key)
            if len(batch) >= batch_size:
                removed += await self.service.unlink_many(batch)
                batch = []
        if batch:
            removed += await self.service.unlink_many(batch)
        return removed

    async def invalidate_user(self, user_id: str) -> dict[str, int]:
        """Drop everything cached for one user, cache by cache; returns counts per cache."""
        validate_id(user_id, "user_id")
        return {name: await fn(user_id) for name, fn in self._invalidators.items()}

    async def warmup(self) -> dict[str, int]:
        """Load the Lua scripts and open a first connection; returns what was done."""
        loaded = await self.scripts.load_all()
        await self.ping()
        return {"scripts": loaded}
