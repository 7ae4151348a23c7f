"""Per-worker heartbeats and the health verdict behind ``seen-worker health``.

ARQ keeps one health key per queue that every worker overwrites and any stopping worker deletes
(python-arq/arq#276, #291). Instead each worker keeps its own hash ``seen:worker:<id>`` (who,
since when, last beat, jobs running/done/failed/retried) with a TTL a few beats long, plus its
entry in the ``seen:workers`` index (scored by last beat); on shutdown it removes only its own.
Both live on the queue store, which never evicts.

Healthy = the stores answer, at least one worker (or the one named) has a fresh heartbeat, and
the oldest due job that no worker has started is younger than ``health.max_queue_age``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from cache.client import create_client
from cache.clock import wall_ms
from cache.codec import as_text
from cache.errors import CacheError, translate_errors
from cache.keys import KeyBuilder
from cache.manager import CacheManager
from jobs.stats import QueueStats, queue_stats
from worker.outage import is_store_outage
from worker.settings import Settings

INDEX_PRUNE_FACTOR = 3
"""Index entries whose last beat is older than this many heartbeat TTLs are dropped."""


class WorkerBeat(BaseModel):
    """One worker's heartbeat as stored (all fields also readable with HGETALL)."""

    worker_id: str
    host: str = ""
    pid: int = 0
    queue: str = ""
    state: str = "running"
    started_ms: int = 0
    last_beat_ms: int = 0
    running: int = 0
    done: int | None = None
    failed: int | None = None
    retried: int | None = None

    def age_s(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.last_beat_ms) / 1000)


now_ms = wall_ms


def add_beat(pipe: Pipeline, keys: KeyBuilder, beat: WorkerBeat, ttl_s: float) -> None:
    """Queue the commands that write ``beat`` (hash + TTL + index) on ``pipe``."""
    key = keys.worker_heartbeat(beat.worker_id)
    fields = {k: str(v) for k, v in beat.model_dump().items() if v is not None}
    pipe.hset(key, mapping=fields)
    pipe.pexpire(key, max(1, round(ttl_s * 1000)))
    pipe.zadd(keys.workers_index(), {beat.worker_id: beat.last_beat_ms})
    oldest_kept = beat.last_beat_ms - round(INDEX_PRUNE_FACTOR * ttl_s * 1000)
    pipe.zremrangebyscore(keys.workers_index(), "-inf", oldest_kept)


async def remove_beat(client: Redis, keys: KeyBuilder, worker_id: str) -> None:
    """Delete one worker's heartbeat and index entry; nobody else's."""
    key = keys.worker_heartbeat(worker_id)
    with translate_errors(key, operation="remove heartbeat"):
        async with client.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            pipe.zrem(keys.workers_index(), worker_id)
            await pipe.execute()


async def read_beats(client: Redis, keys: KeyBuilder) -> list[WorkerBeat]:
    """Every heartbeat still present, newest first (expired ones are simply absent)."""
    with translate_errors(keys.workers_index(), operation="read heartbeats"):
        ids = [as_text(i) for i in await client.zrevrange(keys.workers_index(), 0, 999)]
        if not ids:
            return []
        async with client.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.hgetall(keys.worker_heartbeat(worker_id))
            hashes = await pipe.execute()
    beats = []
    for raw in hashes:
        if raw:
            beats.append(
                WorkerBeat.model_validate({as_text(k): as_text(v) for k, v in raw.items()})
            )
    return beats


class HealthVerdict(BaseModel):
    """``seen-worker health --json``: the verdict, why, and what it looked at."""

    healthy: bool
    reasons: list[str]
    store: dict[str, Any] = {}
    workers: list[dict[str, Any]] = []
    queue: QueueStats | None = None
    checked_at_ms: int = 0


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
    try:
        if separate:
            await queue.ping()
            verdict.store["queue"] = {"ok": True}
        beats = await read_beats(queue, manager.keys)
        verdict.queue = await queue_stats(queue, settings.queue.name, now_ms=now)
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
