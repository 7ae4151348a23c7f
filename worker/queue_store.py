"""Refuse a job queue on a Redis Cluster node, at start-up and with a clear message.

ARQ keeps a job in several keys (the queue's sorted set, ``arq:job:<id>``, ``arq:result:<id>``,
in-progress markers) that hash to different slots, and moves jobs with multi-key transactions:
a cluster answers them with CROSSSLOT or MOVED in the middle of a job's life. ``queue.addr``
must therefore name one instance; a node of a cluster is recognised by ``INFO cluster``
(``cluster_enabled:1``) and refused before the worker takes any job.
"""

from __future__ import annotations

import logging
from typing import Any

from redis import exceptions as redis_exc
from redis.asyncio import Redis

log = logging.getLogger("seen.worker")


class QueueStoreError(RuntimeError):
    """The queue store cannot hold ARQ's queue (it is a cluster node)."""


async def refuse_cluster(queue: Redis, where: str) -> None:
    """Raise ``QueueStoreError`` when ``queue`` is a cluster node; an unreachable store is left
    to the start-up wait (logged, not refused)."""
    try:
        info: dict[str, Any] = await queue.info("cluster")
    except (redis_exc.ConnectionError, redis_exc.TimeoutError) as exc:
        log.warning("queue store %s: could not check for cluster mode: %s", where, exc)
        return
    if str(info.get("cluster_enabled", "0")) == "1":
        raise QueueStoreError(
            f"queue store {where} is a Redis Cluster node (cluster_enabled:1); the job queue "
            "needs one instance because ARQ's keys span hash slots: set queue.addr to a "
            "standalone server (the cache may stay on the cluster)"
        )
