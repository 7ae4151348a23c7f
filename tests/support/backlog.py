"""A backlog of jobs written as any producer writes them (docs/wire-format.md, section 3): the
JSON record with its expiry, then the id in the queue's sorted set scored by when it is due,
in either queue layout (``jobs.wire.layout``: the keys of ARQ's layout or of the job's shard).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from jobs.wire.layout import QueueLayout

RECORD_TTL_MS = 86_400_000


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    function: str
    args: list[Any]
    due_ms: int


def progress_job(job_id: str, download: str, seq: int, due_ms: int) -> QueuedJob:
    """An ``update_progress`` job for ``download`` (valid: the worker applies it)."""
    update = {
        "job_id": download,
        "user_id": "u-1",
        "status": "downloading",
        "seq": seq,
        "bytes_done": seq * 1024,
        "bytes_total": 1_048_576,
    }
    return QueuedJob(job_id, "update_progress", [update], due_ms)


async def write_backlog(raw: Redis, layout: QueueLayout, jobs: Sequence[QueuedJob]) -> None:
    """Every job's record and queue entry, in one pipeline."""
    now = int(time.time() * 1000)
    async with raw.pipeline(transaction=False) as pipe:
        for job in jobs:
            shard = layout.for_job(job.job_id)
            record = {"t": 1, "f": job.function, "a": job.args, "k": {}, "et": now}
            pipe.set(shard.job(job.job_id), json.dumps(record), px=RECORD_TTL_MS)
            pipe.zadd(shard.queue, {job.job_id: job.due_ms})
        await pipe.execute()
