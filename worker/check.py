"""``seen-worker check``: a non-destructive smoke test of the configured store for operators.

Every check runs in a temporary namespace (``seencheck-<random>``) that is removed at the end,
so it is safe against production. One line per check; exit 1 when any fails.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel, SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError

from cache.clock import utc_now
from cache.config import CacheConfig
from cache.download import DownloadStatus, ProgressUpdate
from cache.errors import CacheError
from cache.manager import CacheManager
from cache.session_cache import SessionData
from jobs.wire.layout import QueueLayout
from worker.queue_check import check_queue

Check = Callable[[CacheManager], Awaitable[str]]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    ms: float


class _Probe(BaseModel):
    id: str
    items: list[int]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def check_connectivity(manager: CacheManager) -> str:
    return f"PING {await manager.ping():.2f} ms"


async def check_basic(manager: CacheManager) -> str:
    key = manager.keys.key("check", "basic")
    await manager.service.set(key, "value")
    _require(await manager.service.get(key) == "value", "GET did not return what SET wrote")
    _require(await manager.service.exists(key) == 1, "EXISTS did not see the key")
    _require(await manager.service.delete(key) == 1, "DEL did not remove the key")
    return "SET/GET/EXISTS/DEL"


async def check_ttl(manager: CacheManager) -> str:
    key = manager.keys.key("check", "ttl")
    await manager.service.set(key, "v", ttl=30)
    ttl = await manager.service.ttl(key)
    _require(0 < ttl <= 30, f"TTL {ttl} not in (0, 30]")
    _require(await manager.service.expire(key, 60), "EXPIRE failed")
    return f"TTL {ttl}s, EXPIRE ok"


async def check_atomic(manager: CacheManager) -> str:
    key = manager.keys.key("check", "counter")
    await asyncio.gather(*(manager.service.increment(key, ttl=60) for _ in range(50)))
    value = await manager.service.get(key)
    _require(value == "50", f"50 concurrent INCRs gave {value}")
    nx = manager.keys.key("check", "nx")
    wins = await asyncio.gather(*(manager.service.set_nx(nx, "x", ttl=60) for _ in range(10)))
    _require(wins.count(True) == 1, f"SET NX won {wins.count(True)} times")
    old = await manager.service.get_set(nx, "y", ttl=60)
    _require(old == "x", "GETSET returned the wrong old value")
    return "INCR x50, SET NX, GETSET"


async def check_json(manager: CacheManager) -> str:
    key = manager.keys.key("check", "json")
    probe = _Probe(id="p", items=list(range(2000)))
    await manager.service.set_json(key, probe, ttl=60)
    _require(await manager.service.get_json(key, _Probe) == probe, "JSON round trip differs")
    return "model round trip (compressed)"


async def check_bulk(manager: CacheManager) -> str:
    keys = [manager.keys.key("check", f"bulk{i}") for i in range(20)]
    await manager.service.mset({k: str(i) for i, k in enumerate(keys)}, ttl=60)
    values = await manager.service.mget(keys)
    _require(values == [str(i) for i in range(20)], "MGET differs from MSET")
    return "MSET/MGET x20"


async def check_scan(manager: CacheManager) -> str:
    found = {key async for key in manager.service.scan(manager.keys.pattern("check"))}
    _require(len(found) >= 20, f"SCAN found only {len(found)} keys")
    return f"SCAN found {len(found)} keys"


async def check_info(manager: CacheManager) -> str:
    stats = await manager.stats()
    return f"{stats.server} {stats.version}, {stats.used_memory} bytes used, {stats.keys} keys"


async def check_scripts(manager: CacheManager) -> str:
    loaded = await manager.scripts.load_all()
    report = await manager.health_check()
    _require(report.write_read_ok, f"script probe failed: {report.error}")
    return f"{loaded} scripts loaded, probe ok"


async def check_session(manager: CacheManager) -> str:
    token = secrets.token_urlsafe(24)
    session = SessionData(
        session_id="check-session",
        user_id="check-user",
        refresh_token=SecretStr(token),
        expires_at=utc_now() + timedelta(minutes=5),
    )
    ttl = await manager.session.set_session(session)
    found = await manager.session.get_session_by_refresh_token(token)
    _require(found is not None and found.session_id == session.session_id, "token lookup failed")
    removed = await manager.session.invalidate_user_sessions("check-user")
    _require(removed == 1, f"invalidation removed {removed} sessions")
    _require(await manager.session.get_session("check-session") is None, "session survived")
    return f"set (ttl {ttl:.0f}s), refresh-token lookup, invalidation"


async def check_progress(manager: CacheManager) -> str:
    base = {"job_id": "check-job", "user_id": "check-user", "bytes_total": 1000}
    await manager.download.set_progress(
        ProgressUpdate(**base, status=DownloadStatus.DOWNLOADING, seq=2, bytes_done=500)
    )
    stale = ProgressUpdate(**base, status=DownloadStatus.DOWNLOADING, seq=1, bytes_done=100)
    await manager.download.set_progress(stale)
    progress = await manager.download.get_progress("check-job")
    _require(progress is not None and progress.seq == 2, "a stale update regressed progress")
    return f"applied seq 2, ignored seq 1, {progress.progress_percent if progress else 0}%"


async def check_rate_limit(manager: CacheManager) -> str:
    allowed = [
        await manager.session.rate_limit_check("check-user", "check", 3, 60) for _ in range(4)
    ]
    _require(allowed == [True, True, True, False], f"3/60s limiter answered {allowed}")
    return "3 allowed, 4th refused"


async def check_lock(manager: CacheManager) -> str:
    lock_id, acquired = await manager.session.acquire_lock("check", 10)
    _require(acquired, "lock not acquired")
    _, again = await manager.session.acquire_lock("check", 10)
    _require(not again, "lock acquired twice")
    _require(
        not await manager.session.release_lock("check", "wrong-token"), "wrong token released it"
    )
    _require(await manager.session.release_lock("check", lock_id), "holder could not release")
    return "acquire, exclusion, token-checked release"


CHECKS: list[tuple[str, Check]] = [
    ("connectivity", check_connectivity),
    ("basic ops", check_basic),
    ("ttl", check_ttl),
    ("atomic ops", check_atomic),
    ("json", check_json),
    ("bulk ops", check_bulk),
    ("scan", check_scan),
    ("info", check_info),
    ("lua scripts", check_scripts),
    ("session", check_session),
    ("progress", check_progress),
    ("rate limit", check_rate_limit),
    ("lock", check_lock),
]


async def run_queue_check(client: Redis, layout: QueueLayout) -> list[CheckResult]:
    """The queue part (``worker.queue_check``): one job through each shard; on Dragonfly, how
    the scripts ran (io-coordinated calls on the sharded layout fail the check)."""
    start = time.perf_counter()
    try:
        detail, path = await check_queue(client, layout)
    except (CacheError, AssertionError, ValueError, RedisError) as exc:
        return [CheckResult("job queue", False, f"{type(exc).__name__}: {exc}", 0.0)]
    results = [CheckResult("job queue", True, detail, (time.perf_counter() - start) * 1000)]
    if path is not None:
        text = f"{path.shard_local} shard-local, {path.io_coordinated} io-coordinated script runs"
        slow = layout.kind == "sharded" and path.io_coordinated > 0
        if slow:
            text += ": start Dragonfly with --lock_on_hashtags (docs/dragonfly.md)"
        elif layout.kind == "arq":
            text += ' (ARQ\'s layout; queue.layout = "sharded" runs them shard-local)'
        results.append(CheckResult("dragonfly path", not slow, text, 0.0))
    return results


async def run_checks(config: CacheConfig) -> list[CheckResult]:
    """Run every check in a temporary namespace, then remove it."""
    namespace = f"seencheck-{secrets.token_hex(4)}"
    scoped = config.model_copy(
        update={"cache": config.cache.model_copy(update={"namespace": namespace})}
    )
    results: list[CheckResult] = []
    try:
        manager = await CacheManager.connect(scoped)
    except CacheError as exc:
        return [CheckResult("connectivity", False, str(exc), 0.0)]
    async with manager:
        try:
            for name, check in CHECKS:
                start = time.perf_counter()
                try:
                    detail = await check(manager)
                    ok = True
                except (CacheError, AssertionError, ValueError) as exc:
                    detail, ok = f"{type(exc).__name__}: {exc}", False
                results.append(CheckResult(name, ok, detail, (time.perf_counter() - start) * 1000))
        finally:
            removed = await manager.delete_keys_by_pattern(manager.keys.all_pattern())
            results.append(CheckResult("cleanup", True, f"removed {removed} keys", 0.0))
    return results


def render(results: list[CheckResult]) -> str:
    lines = [
        f"{'ok  ' if r.ok else 'FAIL'} {r.name:<14} {r.ms:7.1f} ms  {r.detail}" for r in results
    ]
    failed = sum(not r.ok for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)
