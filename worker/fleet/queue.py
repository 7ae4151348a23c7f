"""The ARQ queue by state: due, deferred, in progress, results.

ARQ keeps every job in one sorted set (``arq:queue``, score = when it is due, ms) until it
finishes, marks a started one with ``arq:in-progress:<id>`` and keeps its result in
``arq:result:<id>``. The due/deferred/running split and the oldest waiting job come from
``jobs.stats.queue_stats`` (shared with ``seen-worker health`` and ``stats``); results are
counted with a bounded SCAN.
"""

from __future__ import annotations

from arq.constants import result_key_prefix
from redis.asyncio import Redis

from jobs.stats import queue_stats
from worker.fleet.bounds import count_keys
from worker.fleet.models import QueueView


async def read_queue(
    queue: Redis, name: str, now_ms: int, *, queue_scan: int, scan_count: int, scan_keys_max: int
) -> QueueView:
    stats = await queue_stats(queue, name, now_ms=now_ms, scan_limit=queue_scan)
    results = await count_keys(
        queue, result_key_prefix + "*", count=scan_count, max_keys=scan_keys_max
    )
    return QueueView(
        name=name,
        due=stats.waiting,
        deferred=stats.deferred,
        in_progress=stats.running,
        results=results.matched,
        oldest_due_age_s=None if stats.oldest_age_s is None else round(stats.oldest_age_s, 3),
        counted=stats.counted,
        results_complete=results.complete,
    )
