"""The batch finish: every job that ends while a finish is on its way goes in the next one.

Each job's part is ARQ's ``finish_job``/``finish_failed_job`` (result record, lease deleted or
kept, try counter and record deleted, off the queue and the abort set; or a retry's score
increment), applied only while the lease still holds the run's token: a job whose lease was lost,
and which another worker may now run, changes nothing (``finish.lua``). One script call per
shard, every shard's call in one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cache.errors import CacheResponseError
from cache.scripts import ScriptArg, ScriptCall, ScriptRunner
from jobs.wire.layout import QueueShard
from worker.engine.claim import RETRY_TTL_S

FINISH = "queue_finish"

KEEP_TRIES = -1
"""``Finish.retry_to``: leave the try counter as the claim left it."""


@dataclass(frozen=True, slots=True)
class Finish:
    """One job's finish, as ARQ would write it."""

    job_id: str
    shard: QueueShard
    token: bytes
    keep_lease_ms: int | None
    """None deletes the lease; n keeps it n ms more (periodic jobs)."""
    over: bool
    """True settles the job (result, record, counter, queue); False leaves it queued (retry)."""
    result: bytes | None = None
    result_ttl_ms: int | None = None
    """None keeps the result forever."""
    incr_score_ms: int = 0
    """A retry's deferral added to the job's score, when not over."""
    retry_to: int = KEEP_TRIES
    """When not over: 0 deletes the try counter, n sets it (a try given back)."""


@dataclass(frozen=True, slots=True)
class Finished:
    """What the store said of one finish."""

    finish: Finish
    done: bool
    """False: refused, the lease is not held with the run's token (the run is stale)."""
    result_error: str | None = None
    """Finished, but the result record was not written (the store's reason)."""


def finish_call(shard: QueueShard, items: Sequence[Finish]) -> ScriptCall:
    keys = [shard.queue, shard.abort]
    args: list[ScriptArg] = [RETRY_TTL_S]
    for f in items:
        job_id = f.job_id
        keys += (shard.in_progress(job_id), shard.result(job_id))
        keys += (shard.retry(job_id), shard.job(job_id))
        last = (f.result_ttl_ms or 0) if f.over else f.incr_score_ms
        args += (
            job_id,
            f.token,
            -1 if f.keep_lease_ms is None else max(1, f.keep_lease_ms),
            1 if f.over else 0,
            (f.result or b"") if f.over else b"",
            last,
            KEEP_TRIES if f.over else f.retry_to,
        )
    return keys, args


async def finish(
    scripts: ScriptRunner, items: Sequence[Finish], *, single_hashtag: bool
) -> tuple[list[Finished], list[tuple[list[Finish], CacheResponseError]]]:
    """Finish ``items`` (any shards): one call per shard, one round trip. Returns what each
    finish became, and the finishes of shards whose call the store refused (to try again)."""
    by_shard: dict[int, tuple[QueueShard, list[Finish]]] = {}
    for f in items:
        by_shard.setdefault(f.shard.index, (f.shard, []))[1].append(f)
    groups = list(by_shard.values())
    calls = [finish_call(shard, group) for shard, group in groups]
    replies = await scripts.run_many(
        FINISH, calls, single_hashtag=single_hashtag, return_errors=True
    )
    done: list[Finished] = []
    failed: list[tuple[list[Finish], CacheResponseError]] = []
    for (_shard, group), reply in zip(groups, replies, strict=True):
        if isinstance(reply, CacheResponseError):
            failed.append((group, reply))
            continue
        for f, status in zip(group, reply, strict=True):
            if isinstance(status, bytes | str):
                text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
                done.append(Finished(f, True, text))
            else:
                done.append(Finished(f, status == 1))
    return done, failed
