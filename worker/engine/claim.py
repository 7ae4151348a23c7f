"""The batch claim: one script call claims up to a batch of due ids of one queue shard.

For each id, atomically (``claim.lua``): still queued and due (score <= now), not held by another
run (``SET <lease> <token> PX <lease> NX``), then its record is read, its try counted (ARQ's
counter, TTL 88,400 s) and, when aborts are honoured, its abort mark taken. An id that fails the
first two checks is left exactly as it was: another worker runs it, it finished meanwhile, or it
was deferred again. An id whose own keys are unusable (a try counter that is not an integer, a
lease that never expires, a record of another type) is claimed with the problem named, its bad
key repaired, so the engine fails that job alone and the rest of the batch runs. This is what
ARQ's per-job WATCH/EXISTS/ZSCORE/MULTI/PSETEX/EXEC plus GET/INCR/EXPIRE/ZREM do, in one round
trip for every shard's batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from cache.errors import CacheResponseError
from cache.scripts import Replicas, ScriptArg, ScriptCall, ScriptRunner
from jobs.wire.layout import QueueShard
from worker.engine.job import Job

CLAIM = "queue_claim"

log = logging.getLogger("seen.worker.engine")

RETRY_TTL_S = 88400
"""ARQ's TTL of its try counter (``arq:retry:<id>``)."""


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Ids of one shard to claim, each with the token its lease is to hold."""

    shard: QueueShard
    ids: Sequence[str]
    tokens: Sequence[bytes]


@dataclass(frozen=True, slots=True)
class ClaimRound:
    """What one claim call per shard gave: the claimed jobs, the shards whose call failed
    (with the error: the other shards' claims stand), and the jobs claimed but whose lease no
    replica confirmed in time (when replicas are asked for: they are handed back unrun)."""

    claimed: list[Job]
    failed: list[tuple[QueueShard, CacheResponseError]]
    unconfirmed: list[Job]


def claim_call(
    request: ClaimRequest, *, now_ms: int, lease_ms: int, honour_aborts: bool
) -> ScriptCall:
    shard = request.shard
    keys = [shard.queue, shard.abort]
    args: list[ScriptArg] = [now_ms, lease_ms, RETRY_TTL_S, 1 if honour_aborts else 0]
    for job_id, token in zip(request.ids, request.tokens, strict=True):
        keys += (shard.in_progress(job_id), shard.job(job_id), shard.retry(job_id))
        args += (job_id, token)
    return keys, args


async def claim(
    scripts: ScriptRunner,
    requests: Sequence[ClaimRequest],
    *,
    now_ms: int,
    lease_ms: int,
    honour_aborts: bool,
    single_hashtag: bool,
    replicas: Replicas | None = None,
) -> ClaimRound:
    """Claim every request's ids, one script call per shard, all in one round trip.

    A store that cannot be reached raises (nothing is claimed that the caller does not learn
    of: a lost reply leaves leases that expire after ``lease_ms``); a call that the store
    refuses (say the shard's queue key is not a sorted set) fails that shard alone."""
    live = [r for r in requests if r.ids]
    if not live:
        return ClaimRound([], [], [])
    calls = [
        claim_call(r, now_ms=now_ms, lease_ms=lease_ms, honour_aborts=honour_aborts) for r in live
    ]
    if replicas is None:
        replies = await scripts.run_many(
            CLAIM, calls, single_hashtag=single_hashtag, return_errors=True
        )
        acked = [True] * len(replies)
    else:
        replies, acked = await scripts.run_many_replicated(
            CLAIM, calls, replicas, single_hashtag=single_hashtag, return_errors=True
        )
    claimed: list[Job] = []
    unconfirmed: list[Job] = []
    failed: list[tuple[QueueShard, CacheResponseError]] = []
    for request, reply, confirmed in zip(live, replies, acked, strict=True):
        if isinstance(reply, CacheResponseError):
            failed.append((request.shard, reply))
            continue
        note = reply[0]
        if note:
            log.warning("shard %d: %s", request.shard.index, _text(note))
        for i, (job_id, token) in enumerate(zip(request.ids, request.tokens, strict=True)):
            status, score, record, job_try, aborted, problem = reply[1 + 6 * i : 7 + 6 * i]
            if not status:
                continue
            job = Job(
                job_id,
                request.shard,
                token,
                int(float(score)),
                record or None,
                int(job_try),
                aborted == 1,
                _text(problem) if status == 2 else None,
            )
            (claimed if confirmed else unconfirmed).append(job)
    return ClaimRound(claimed, failed, unconfirmed)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
