"""The queue by state: due, deferred, in progress, results; and whether it is paused.

Every shard of the queue's layout is read: its sorted set (score = when a job is due, ms), the
lease marking a started job, and the kept results. The due/deferred/running split and the oldest
waiting job come from ``jobs.stats.queue_stats`` (shared with ``seen-worker health`` and
``stats``); results are counted with one bounded SCAN over every shard's result keys; the pause
flag is ``jobs.queue_control``'s.
"""

from __future__ import annotations

from redis.asyncio import Redis

from jobs.queue_control import pause_state
from jobs.stats import queue_stats
from jobs.wire.layout import QueueLayout
from worker.fleet.bounds import count_keys
from worker.fleet.models import QueueView


async def read_queue(
    queue: Redis,
    layout: QueueLayout,
    now_ms: int,
    *,
    queue_scan: int,
    scan_count: int,
    scan_keys_max: int,
) -> QueueView:
    stats = await queue_stats(queue, layout, now_ms=now_ms, scan_limit=queue_scan)
    results = await count_keys(
        queue, layout.pattern("result"), count=scan_count, max_keys=scan_keys_max
    )
    paused = await pause_state(queue, layout)
    return QueueView(
        name=layout.name,
        due=stats.waiting,
        deferred=stats.deferred,
        in_progress=stats.running,
        results=results.matched,
        oldest_due_age_s=None if stats.oldest_age_s is None else round(stats.oldest_age_s, 3),
        counted=stats.counted,
        results_complete=results.complete,
        layout=layout.kind,
        shards=layout.count,
        paused=paused.paused,
        paused_by=paused.by,
        paused_at_ms=paused.at_ms,
        paused_reason=paused.reason,
    )
