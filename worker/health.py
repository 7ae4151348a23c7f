"""The health verdict behind ``seen-worker health``, judged from the stores.

Heartbeats are stored by ``worker.heartbeat`` (one hash per worker plus an index, on the queue
store, which never evicts); this module only reads them.

Healthy = the stores answer, at least one worker (or the one named) has a fresh heartbeat, and
the oldest due job that no worker has started is younger than ``health.max_queue_age``.

A heartbeat that cannot be read (an id that breaks the id rule, a hash that is not a heartbeat)
is skipped, counted in ``unreadable`` and logged with its key; it is neither a store fault nor,
by itself, unhealthy. The verdict is judged on the readable heartbeats: with one fresh worker
beside a bad row the fleet is healthy (and the count says there is a bad row to clean up); with
only bad rows no worker has a readable heartbeat, which is unhealthy and says so.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis

from cache.client import create_client
from cache.errors import CacheError
from cache.manager import CacheManager
from cache.unreadable import Unreadable
from jobs.stats import QueueStats, queue_stats
from worker.heartbeat import now_ms, read_beats
from worker.outage import is_store_outage
from worker.settings import Settings


class HealthVerdict(BaseModel):
    """``seen-worker health --json``: the verdict, why, and what it looked at."""

    healthy: bool
    reasons: list[str]
    store: dict[str, Any] = {}
    workers: list[dict[str, Any]] = []
    queue: QueueStats | None = None
    checked_at_ms: int = 0
    unreadable: dict[str, int] = {}
    """Rows skipped because they could not be read, by kind (``heartbeat``)."""


async def evaluate(
    manager: CacheManager,
    queue: Redis,
    settings: Settings,
    *,
    worker_id: str | None = None,
    host: str | None = None,
    max_queue_age: float | None = None,
    stale_after: float | None = None,
) -> HealthVerdict:
    """Judge the fleet from the stores; never raises for store faults (they are reasons).

    ``worker_id`` or ``host`` narrow "a worker has a fresh heartbeat" to that worker, or to the
    workers of that host (a container's own worker: ``--this-host``).
    """
    now = now_ms()
    verdict = HealthVerdict(healthy=False, reasons=[], checked_at_ms=now)
    reasons = verdict.reasons
    report = await manager.health_check()
    verdict.store = {"cache": report.model_dump()}
    if not report.ok:
        reasons.append(f"cache store: {report.error}")
    separate = settings.queue_addr() != settings.cache.addr or settings.queue.db is not None
    stale = stale_after if stale_after is not None else settings.health.stale_after
    max_age = max_queue_age if max_queue_age is not None else settings.health.max_queue_age
    skipped = Unreadable()
    try:
        if separate:
            await queue.ping()
            verdict.store["queue"] = {"ok": True}
        beats = await read_beats(queue, manager.keys, unreadable=skipped)
        verdict.unreadable = skipped.by_kind()
        verdict.queue = await queue_stats(queue, settings.queue.key_layout(), now_ms=now)
    except Exception as exc:
        if not (isinstance(exc, CacheError) or is_store_outage(exc)):
            raise
        if separate:
            verdict.store["queue"] = {"ok": False, "error": str(exc)}
        reasons.append(f"queue store: {exc}")
        return verdict
    if host is not None:
        beats = [b for b in beats if b.host == host]
    fresh = [b for b in beats if b.age_s(now) <= stale]
    verdict.workers = [
        {**b.model_dump(), "age_s": round(b.age_s(now), 3), "fresh": b in fresh} for b in beats
    ]
    if worker_id is not None:
        mine = [b for b in beats if b.worker_id == worker_id]
        if not mine:
            reasons.append(f"worker {worker_id}: no heartbeat")
        elif mine[0] not in fresh:
            reasons.append(f"worker {worker_id}: heartbeat {mine[0].age_s(now):.1f}s old")
    elif not beats and skipped.total:
        reasons.append(
            "no worker has a readable heartbeat"
            + (f" on host {host}" if host else "")
            + f" ({unreadable_heartbeats(skipped.total)} skipped)"
        )
    elif not beats:
        reasons.append("no worker has a heartbeat" + (f" on host {host}" if host else ""))
    elif not fresh:
        oldest = min(b.age_s(now) for b in beats)
        reasons.append(f"no fresh heartbeat: newest is {oldest:.1f}s old (limit {stale:.1f}s)")
    age = verdict.queue.oldest_age_s
    if age is not None and age > max_age:
        reasons.append(
            f"queue backlog: oldest waiting job is {age:.1f}s old (limit {max_age:.1f}s)"
        )
    verdict.healthy = not reasons
    return verdict


def unreadable_heartbeats(count: int) -> str:
    return f"{count} unreadable heartbeat{'' if count == 1 else 's'}"


async def check(
    settings: Settings,
    *,
    worker_id: str | None = None,
    host: str | None = None,
    max_queue_age: float | None = None,
    stale_after: float | None = None,
) -> HealthVerdict:
    """Connect, evaluate, close; the whole check is bounded by ``health.timeout``."""
    timeout = settings.health.timeout
    quick = {"retries": 1, "connect_timeout": min(settings.cache.connect_timeout, timeout / 3)}
    config = settings.model_copy(update={"cache": settings.cache.model_copy(update=quick)})
    manager = await CacheManager.connect(config, verify=False)
    queue = create_client(settings.queue_cache_settings().model_copy(update=quick))
    try:
        return await asyncio.wait_for(
            evaluate(
                manager,
                queue,
                settings,
                worker_id=worker_id,
                host=host,
                max_queue_age=max_queue_age,
                stale_after=stale_after,
            ),
            timeout,
        )
    except TimeoutError:
        return HealthVerdict(
            healthy=False, reasons=[f"health check timed out after {timeout:.1f}s"]
        )
    finally:
        await queue.aclose()
        await manager.aclose()
