"""The batch claim: one script call claims every due id a poll read.

For each id, atomically: still queued and due (its score <= now), not held by another run
(``SET arq:in-progress:<id> <token> PX <lease> NX``), then its record is read, ARQ's try
counter incremented (TTL 88400 s, as ARQ) and, when aborts are honoured, its abort mark taken.
An id that fails the first two checks is left exactly as it was: another worker runs it, it
finished meanwhile, or it was deferred again. This is what ARQ's per-job WATCH/EXISTS/ZSCORE/
MULTI/PSETEX/EXEC plus GET/INCR/EXPIRE/ZREM do, in one round trip for the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    retry_key_prefix,
)
from redis.asyncio import Redis

from cache.scripts import ScriptArg
from worker.engine.scripts import CLAIM, run_queue_script

RETRY_TTL_S = 88400
"""ARQ's TTL of its try counter ``arq:retry:<id>``."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """One job this worker now holds: what ARQ's ``run_job`` reads first, read in the claim."""

    job_id: str
    token: bytes
    score: int
    record: bytes | None
    """The job record; None when it is missing (ARQ fails such a job as expired)."""
    job_try: int
    aborted: bool


async def claim_batch(
    client: Redis,
    queue: str,
    ids_and_tokens: Sequence[tuple[str, bytes]],
    *,
    now_ms: int,
    lease_ms: int,
    honour_aborts: bool,
) -> list[Claimed]:
    """Claim ``ids_and_tokens`` (each id with the token of its new lease); the claimed ones."""
    if not ids_and_tokens:
        return []
    keys = [queue, abort_jobs_ss]
    args: list[ScriptArg] = [now_ms, lease_ms, RETRY_TTL_S, 1 if honour_aborts else 0]
    for job_id, token in ids_and_tokens:
        keys += (
            in_progress_key_prefix + job_id,
            job_key_prefix + job_id,
            retry_key_prefix + job_id,
        )
        args += (job_id, token)
    reply = await run_queue_script(client, CLAIM, keys, args)
    claimed = []
    for i, (job_id, token) in enumerate(ids_and_tokens):
        ok, score, record, job_try, aborted = reply[5 * i : 5 * i + 5]
        if ok:
            claimed.append(
                Claimed(job_id, token, int(float(score)), record or None, job_try, aborted == 1)
            )
    return claimed
