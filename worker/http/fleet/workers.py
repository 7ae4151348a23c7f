"""Workers as their heartbeats show them (``worker.heartbeat`` writes and reads them).

A worker is alive while its heartbeat is at most ``health.stale_after`` old (the same rule as
``seen-worker health``); a stale one is shown until its index entry is pruned, also after its
heartbeat hash expired (``state="expired"``: killed, or cut off from the store).
"""

from __future__ import annotations

from redis.asyncio import Redis

from cache.keys import KeyBuilder
from cache.unreadable import Unreadable
from worker.heartbeat import WorkerBeat, read_beats
from worker.http.fleet.models import WorkerView


def worker_view(beat: WorkerBeat, now_ms: int, stale_after_s: float) -> WorkerView:
    age = beat.age_s(now_ms)
    return WorkerView(
        worker_id=beat.worker_id,
        host=beat.host,
        pid=beat.pid,
        queue=beat.queue,
        state=beat.state,
        heartbeat_age_s=round(age, 3),
        alive=beat.state != "expired" and age <= stale_after_s,
        running=beat.running,
        done=beat.done,
        failed=beat.failed,
        retried=beat.retried,
        started_ms=beat.started_ms,
    )


async def read_workers(
    queue: Redis,
    keys: KeyBuilder,
    now_ms: int,
    stale_after_s: float,
    limit: int,
    unreadable: Unreadable | None = None,
) -> list[WorkerView]:
    """Every worker in the heartbeat index (at most ``limit``), newest beat first; a heartbeat
    that cannot be read is skipped and noted in ``unreadable``."""
    beats = await read_beats(queue, keys, limit=limit, include_expired=True, unreadable=unreadable)
    return [worker_view(b, now_ms, stale_after_s) for b in beats]
