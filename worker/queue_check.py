"""``seen-worker check``, the queue part: one job through every shard, and Dragonfly's path.

In a temporary queue (``seencheck-<random>``, the configured layout and shard count) one record
per shard is enqueued, claimed and finished with the engine's own scripts, then every key it
wrote is removed. When the queue store is Dragonfly, ``INFO ALL`` is read before and after:
its ``eval_shardlocal_coordination_total`` and ``eval_io_coordination_total`` say whether those
scripts ran on one thread in one hop. On the sharded layout any io-coordinated call means the
server lacks ``--lock_on_hashtags`` (docs/dragonfly.md), and the check fails with that fix.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from cache.cluster import is_cluster
from cache.scripts import ScriptRunner
from cache.stats import merge_info
from jobs.client import enqueue_jobs
from jobs.wire.layout import QueueLayout
from worker.engine.claim import ClaimRequest, claim
from worker.engine.finish import Finish, finish

SHARD_LOCAL = "eval_shardlocal_coordination_total"
IO_COORDINATED = "eval_io_coordination_total"


@dataclass(frozen=True)
class ScriptPath:
    """How a store ran scripts between two ``INFO ALL`` reads (Dragonfly only)."""

    shard_local: int
    io_coordinated: int


def dragonfly_counters(info: Mapping[str, Any]) -> tuple[int, int] | None:
    """(shard-local, io-coordinated) script counts of a Dragonfly ``INFO ALL``; None when the
    store is not Dragonfly (no ``dragonfly_version``)."""
    if "dragonfly_version" not in info:
        return None
    return int(info.get(SHARD_LOCAL, 0) or 0), int(info.get(IO_COORDINATED, 0) or 0)


async def _info_all(client: Redis) -> dict[str, Any]:
    if is_cluster(client):
        replies = await client.info("all", target_nodes="primaries")
        return merge_info(replies.values())
    info: dict[str, Any] = await client.info("all")
    return info


def ids_per_shard(layout: QueueLayout, prefix: str) -> list[str]:
    """One id that lands in each shard (``<prefix>-<n>``, the first n for each)."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < layout.count:
        job_id = f"{prefix}-{n}"
        found.setdefault(layout.shard_index(job_id), job_id)
        n += 1
    return [found[i] for i in range(layout.count)]


async def check_queue(client: Redis, layout: QueueLayout) -> tuple[str, ScriptPath | None]:
    """Enqueue, claim and finish one job per shard of a temporary queue like ``layout``;
    returns what it did and, on Dragonfly, how the scripts ran. Raises ``AssertionError``
    naming what went wrong; removes every key it wrote."""
    name = f"seencheck-{secrets.token_hex(4)}"
    temp = QueueLayout.of(layout.kind, name, layout.count)
    ids = ids_per_shard(temp, name)
    runner = ScriptRunner(client)
    sharded = temp.kind == "sharded"
    before = dragonfly_counters(await _info_all(client))
    try:
        done = await enqueue_jobs(
            client, [("ping", (), j) for j in ids], layout=temp, scripts=runner
        )
        _require(all(done), f"enqueue refused {done.count(False)} of {len(ids)} ids")
        requests = [ClaimRequest(temp.for_job(j), [j], [f"check:{j}".encode()]) for j in ids]
        claimed = await claim(
            runner,
            requests,
            now_ms=2**42,
            lease_ms=10_000,
            honour_aborts=True,
            single_hashtag=sharded,
        )
        _require(not claimed.failed, f"claim refused: {claimed.failed}")
        _require(len(claimed.claimed) == len(ids), f"claimed {len(claimed.claimed)} of {len(ids)}")
        finishes = [
            Finish(j.job_id, j.shard, j.token, None, True, b'"check"', 10_000)
            for j in claimed.claimed
        ]
        finished, refused = await finish(runner, finishes, single_hashtag=sharded)
        _require(not refused and all(f.done for f in finished), "finish refused")
        after = dragonfly_counters(await _info_all(client))
    finally:
        await _remove(client, temp, ids)
    what = (
        f"{temp.describe().replace(name, '<temp>')}: one job through each shard "
        "(enqueue, claim, finish)"
    )
    if before is None or after is None:
        return what, None
    return what, ScriptPath(after[0] - before[0], after[1] - before[1])


async def _remove(client: Redis, layout: QueueLayout, ids: list[str]) -> None:
    for job_id in ids:
        shard = layout.for_job(job_id)
        keys = [shard.job(job_id), shard.result(job_id), shard.retry(job_id)]
        keys.append(shard.in_progress(job_id))
        for key in keys:  # one key per DEL: a cluster refuses keys of several slots
            await client.delete(key)
    for shard in layout.shards:
        await client.delete(shard.queue)
        await client.delete(shard.abort)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
