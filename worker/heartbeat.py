"""Heartbeat storage: one hash per worker plus the ``seen:workers`` index, on the queue store.

ARQ keeps one health key per queue that every worker overwrites and any stopping worker deletes
(python-arq/arq#276, #291). Instead each worker keeps its own hash ``seen:worker:<id>`` (who,
since when, last beat, jobs running/done/failed/retried) with a TTL a few beats long, plus its
entry in the ``seen:workers`` index (scored by last beat); on shutdown it removes only its own.
``worker.runtime`` writes beats, ``worker.health`` judges them.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from cache.clock import wall_ms
from cache.codec import as_text
from cache.errors import InvalidKeyError, translate_errors
from cache.keys import KeyBuilder
from cache.unreadable import Unreadable

KIND = "heartbeat"
"""The ``Unreadable`` kind of a heartbeat that cannot be read."""
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


async def read_beats(
    client: Redis,
    keys: KeyBuilder,
    *,
    limit: int = 1000,
    include_expired: bool = False,
    unreadable: Unreadable | None = None,
) -> list[WorkerBeat]:
    """Every heartbeat still present, newest first, at most ``limit``.

    An expired heartbeat is absent, unless ``include_expired``: then a worker still in the index
    whose hash expired (killed, or cut off from the store) is returned with only its id, its
    last beat (the index score) and ``state="expired"``, so a dashboard can show it as stale.

    A heartbeat that cannot be read (an index member that breaks the id rule, a hash that is
    not a ``WorkerBeat``, a key of another type) is skipped and noted in ``unreadable`` (kind
    ``heartbeat``, logged with its key): the others are still returned. Only a store that does
    not answer raises.
    """
    skipped = unreadable if unreadable is not None else Unreadable()
    index = keys.workers_index()
    with translate_errors(index, operation="read heartbeats"):
        scored = await client.zrevrange(index, 0, limit - 1, withscores=True)
    members: list[tuple[str, float, str]] = []
    for raw_id, score in scored:
        worker_id = as_text(raw_id)
        try:
            members.append((worker_id, float(score), keys.worker_heartbeat(worker_id)))
        except InvalidKeyError as exc:
            skipped.skip(KIND, f"{index} member {worker_id!r}", str(exc))
    if not members:
        return []
    with translate_errors(index, operation="read heartbeats"):
        async with client.pipeline(transaction=False) as pipe:
            for _, _, key in members:
                pipe.hgetall(key)
            hashes = await pipe.execute(raise_on_error=False)
    beats = []
    for (worker_id, score, key), raw in zip(members, hashes, strict=True):
        if isinstance(raw, Exception):
            skipped.skip(KIND, key, str(raw))
        elif raw:
            try:
                beats.append(
                    WorkerBeat.model_validate({as_text(k): as_text(v) for k, v in raw.items()})
                )
            except ValidationError as exc:
                skipped.skip(KIND, key, _first_error(exc))
        elif include_expired:
            if not math.isfinite(score):
                skipped.skip(KIND, f"{index} member {worker_id!r}", f"score {score}")
                continue
            beats.append(WorkerBeat(worker_id=worker_id, state="expired", last_beat_ms=int(score)))
    return beats


def _first_error(exc: ValidationError) -> str:
    """The first problem pydantic found, without the input value (it may be huge)."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "value"
    return f"{where}: {first.get('msg', 'invalid')}"
