"""The figures operators watch: cache store, job queue, fleet-wide job counters.

``log_cache_stats`` logs them and ``seen-worker stats`` prints them; both call ``collect``.
The cache figures come from the cache store, the queue figures and job counters from the queue
store (they may be two instances). Queue age is measured on due jobs that no worker is running:
ARQ keeps a running job in the queue's sorted set until it finishes, so a long job is not a
backlog.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, cast

from pydantic import BaseModel
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.codec import as_text
from cache.errors import translate_errors
from cache.keys import KeyBuilder
from cache.manager import CacheManager
from cache.unreadable import Unreadable
from jobs.wire.layout import QueueLayout, QueueShard

JOB_OUTCOMES = ("done", "failed", "retried")
"""Fields of the ``seen:jobs:stats`` hash, incremented by every worker."""

ACTIVE_DOWNLOADS_STAT = "download.active"
"""``CacheStats.extra`` figure for active downloads: ``DownloadCache.stats()``'s ``active``
(registered as ``download``), counted from the shards' active indexes."""

_PAGE = 100


class QueueStats(BaseModel):
    """The job queue: how many jobs, how many due now, how old the oldest waiting one is.

    ``running`` counts the due jobs (among the oldest ``scan_limit``) that a worker has started;
    ``counted`` says every due job was looked at, so ``running`` is exact. ``deferred`` jobs
    are scheduled for later (a future score: ``_defer_by``, retries, cron jobs enqueued early).
    """

    name: str
    depth: int = 0
    due: int = 0
    deferred: int = 0
    running: int = 0
    oldest_age_s: float | None = None
    complete: bool = True
    counted: bool = True

    @property
    def waiting(self) -> int:
        """Due jobs no worker has started (exact when ``counted``)."""
        return max(0, self.due - self.running)


class JobCounters(BaseModel):
    """Fleet-wide totals since the counters were created; None: that counter is unreadable
    (not an integer), which is unknown, not zero."""

    done: int | None = 0
    failed: int | None = 0
    retried: int | None = 0


class SystemStats(BaseModel):
    """One snapshot of everything ``log_cache_stats`` reports."""

    used_memory: int
    max_memory: int
    memory_ratio: float | None
    hit_rate: float | None
    ops_per_sec: int
    evicted_keys: int
    connected_clients: int
    keys: int
    queue: QueueStats
    jobs: JobCounters
    active_downloads: int | None = None
    unreadable_records: int = 0
    """Rows skipped because they could not be read (``cache.unreadable``)."""

    def flat(self) -> dict[str, Any]:
        """Flat name -> value, the order operators read them in."""
        return {
            "memory_used": self.used_memory,
            "memory_max": self.max_memory,
            "memory_ratio": _round(self.memory_ratio),
            "hit_rate": _round(self.hit_rate),
            "ops_per_sec": self.ops_per_sec,
            "evicted_keys": self.evicted_keys,
            "clients": self.connected_clients,
            "keys": self.keys,
            "queue_depth": self.queue.depth,
            "queue_due": self.queue.due,
            "oldest_job_age_s": _round(self.queue.oldest_age_s, 3),
            "jobs_done": self.jobs.done,
            "jobs_failed": self.jobs.failed,
            "jobs_retried": self.jobs.retried,
            "active_downloads": self.active_downloads,
            "unreadable_records": self.unreadable_records,
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def logfmt(figures: Mapping[str, Any]) -> str:
    """``name=value`` pairs on one line; None prints as ``-``."""
    return " ".join(f"{k}={'-' if v is None else v}" for k, v in figures.items())


async def queue_stats(
    client: Redis,
    queue: str | QueueLayout,
    *,
    now_ms: int | None = None,
    scan_limit: int = 1000,
) -> QueueStats:
    """Depth, due and deferred counts, running jobs and the age of the oldest due job that no
    worker has started, over every shard of the queue (``queue``: its layout, or the name of a
    queue on ARQ's layout).

    Looks at no more than ``scan_limit`` due entries in all (shared among the shards), oldest
    first; ``complete`` is False when every one of those was running and more were left unseen
    (the age is then unknown).
    """
    layout = queue if isinstance(queue, QueueLayout) else QueueLayout.arq(queue)
    now = wall_ms() if now_ms is None else now_ms
    with translate_errors(layout.shards[0].queue, operation="queue stats"):
        async with client.pipeline(transaction=False) as pipe:
            for shard in layout.shards:
                pipe.zcard(shard.queue)
                pipe.zcount(shard.queue, "-inf", now)
            counts = await pipe.execute()
        depths, dues = counts[0::2], counts[1::2]
        per_shard = max(1, scan_limit // layout.count)
        seen = [
            await _oldest_unstarted(client, shard, now, min(int(due), per_shard))
            for shard, due in zip(layout.shards, dues, strict=True)
            if int(due)
        ]
    ages = [age for age, _, _ in seen if age is not None]
    running = sum(r for _, r, _ in seen)
    looked = sum(n for _, _, n in seen)
    depth, due = sum(int(d) for d in depths), sum(int(d) for d in dues)
    oldest = max(ages) if ages else None
    return QueueStats(
        name=layout.name,
        depth=depth,
        due=due,
        deferred=max(0, depth - due),
        running=running,
        oldest_age_s=oldest,
        complete=oldest is not None or looked >= due,
        counted=looked >= due,
    )


async def _oldest_unstarted(
    client: Redis, shard: QueueShard, now: int, limit: int
) -> tuple[float | None, int, int]:
    """(age of the shard's oldest due job no worker holds, running jobs seen, entries seen)."""
    oldest: float | None = None
    running = 0
    offset = 0
    while offset < limit:
        page = await client.zrangebyscore(
            shard.queue,
            "-inf",
            now,
            start=offset,
            num=min(_PAGE, limit - offset),
            withscores=True,
        )
        if not page:
            break
        async with client.pipeline(transaction=False) as pipe:
            for job_id, _ in page:
                pipe.exists(shard.in_progress(as_text(job_id)))
            flags = await pipe.execute()
        for (_, score), busy in zip(page, flags, strict=True):
            if busy:
                running += 1
            elif oldest is None:
                oldest = max(0.0, (now - float(score)) / 1000)
        offset += len(page)
    return oldest, running, offset


async def job_counters(
    client: Redis, keys: KeyBuilder, unreadable: Unreadable | None = None
) -> JobCounters:
    """The fleet's job totals; a counter that is not an integer is None, skipped and noted in
    ``unreadable`` (kind ``job_counter``) with the hash's key, the others are still read."""
    skipped = unreadable if unreadable is not None else Unreadable()
    key = keys.job_stats()
    with translate_errors(key, operation="HGETALL"):
        raw = await cast(Awaitable[dict[bytes, bytes]], client.hgetall(key))
    values = {as_text(k): as_text(v) for k, v in raw.items()}
    counts: dict[str, int | None] = {}
    for name in JOB_OUTCOMES:
        text = values.get(name, "0")
        try:
            counts[name] = int(text)
        except ValueError:
            counts[name] = None
            skipped.skip("job_counter", f"{key} field {name!r}", f"not an integer: {text[:50]!r}")
    return JobCounters(**counts)


async def collect(
    manager: CacheManager,
    queue: Redis,
    queue_name: str | QueueLayout,
    unreadable: Unreadable | None = None,
) -> SystemStats:
    """Everything in one snapshot: cache store INFO, queue, counters, active downloads."""
    skipped = unreadable if unreadable is not None else Unreadable()
    cache = await manager.stats()
    return SystemStats(
        used_memory=cache.used_memory,
        max_memory=cache.max_memory,
        memory_ratio=cache.memory_ratio,
        hit_rate=cache.hit_rate,
        ops_per_sec=cache.ops_per_sec,
        evicted_keys=cache.evicted_keys,
        connected_clients=cache.connected_clients,
        keys=cache.keys,
        queue=await queue_stats(queue, queue_name),
        jobs=await job_counters(queue, manager.keys, skipped),
        active_downloads=cache.extra.get(ACTIVE_DOWNLOADS_STAT),
        unreadable_records=skipped.total,
    )
