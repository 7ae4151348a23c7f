"""The queue store's client, and a queue store that does not fit its layout refused at start-up.

On ARQ's layout a job's keys (the queue's sorted set, ``arq:job:<id>``, ``arq:result:<id>``,
in-progress markers) hash to different slots: a cluster answers the scripts that touch them
together with CROSSSLOT or MOVED. So ``queue.addr`` names one instance there; a node of a
cluster is recognised by ``INFO cluster`` (``cluster_enabled:1``) and refused before the worker
takes any job. The sharded layout keeps every key of a shard in one slot: its queue may be a
cluster (``queue.cluster``, or several nodes in ``queue.addr``), and a single cluster node
named without ``queue.cluster`` is refused with the fix, instead of failing on MOVED later.
"""

from __future__ import annotations

import logging
from typing import Any

from redis import exceptions as redis_exc
from redis.asyncio import Redis

from cache.cluster import is_cluster

log = logging.getLogger("seen.worker")


class QueueStoreError(RuntimeError):
    """The queue store cannot hold ARQ's queue (it is a cluster node)."""


async def refuse_cluster(queue: Redis, where: str, *, sharded: bool = False) -> None:
    """Raise ``QueueStoreError`` when ``queue`` is a standalone client on a cluster node; an
    unreachable store is left to the start-up wait (logged, not refused)."""
    if is_cluster(queue):
        return  # the sharded layout on a cluster client: what it is for
    try:
        info: dict[str, Any] = await queue.info("cluster")
    except (redis_exc.ConnectionError, redis_exc.TimeoutError) as exc:
        log.warning("queue store %s: could not check for cluster mode: %s", where, exc)
        return
    if str(info.get("cluster_enabled", "0")) != "1":
        return
    if sharded:
        raise QueueStoreError(
            f"queue store {where} is a Redis Cluster node (cluster_enabled:1): set "
            "queue.cluster = true (or list several nodes in queue.addr) so the worker talks "
            "to the whole cluster"
        )
    raise QueueStoreError(
        f"queue store {where} is a Redis Cluster node (cluster_enabled:1); ARQ's layout needs "
        'one instance because its keys span hash slots: use queue.layout = "sharded" on a '
        "cluster, or set queue.addr to a standalone server (the cache may stay on the cluster)"
    )
