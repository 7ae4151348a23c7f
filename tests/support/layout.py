"""The queue layout a test lane runs on: ``SEEN_TEST_QUEUE_LAYOUT`` (``arq``, the default, or
``sharded``), so the whole suite runs on both layouts across the CI lanes.

Tests read and write queue keys through ``LAYOUT`` (``LAYOUT.for_job(id).result(id)``), never
as literal ``arq:...`` strings, and start workers with ``QUEUE_SECTION`` in their settings. Tests
of ARQ compatibility itself (plain ARQ producers, ARQ's CLI and ``Job`` API) pin ARQ's layout.
"""

from __future__ import annotations

import os
from typing import Any

from jobs.wire.layout import QueueLayout

LAYOUT_ENV = "SEEN_TEST_QUEUE_LAYOUT"
TEST_SHARDS = 4
"""Shards of the sharded lane: several, so work crosses shards, and few, so tests stay fast."""

KIND = os.environ.get(LAYOUT_ENV, "arq")
if KIND not in ("arq", "sharded"):
    raise RuntimeError(f"{LAYOUT_ENV} must be 'arq' or 'sharded', got {KIND!r}")
LAYOUT = QueueLayout.of("sharded" if KIND == "sharded" else "arq", "arq:queue", TEST_SHARDS)
QUEUE_SECTION: dict[str, Any] = {"layout": LAYOUT.kind, "shards": TEST_SHARDS}
"""The ``[queue]`` settings of the lane's layout."""
SHARDED = LAYOUT.kind == "sharded"


def queue_keys() -> list[str]:
    """Every shard's queue (sorted set)."""
    return [s.queue for s in LAYOUT.shards]


def job_key(job_id: str) -> str:
    return LAYOUT.for_job(job_id).job(job_id)


def result_key(job_id: str) -> str:
    return LAYOUT.for_job(job_id).result(job_id)


def lease_key(job_id: str) -> str:
    return LAYOUT.for_job(job_id).in_progress(job_id)


def queue_of(job_id: str) -> str:
    return LAYOUT.for_job(job_id).queue


async def queue_length(client: Any) -> int:
    """Jobs in every shard's queue (``client``: a redis-py client)."""
    return sum([int(await client.zcard(key)) for key in queue_keys()])


async def put_job(client: Any, job_id: str, record: bytes | str, score_ms: int) -> None:
    """Write a job record and its queue entry by hand (docs/wire-format.md), on the lane's
    layout: what a raw producer in another language does."""
    await client.set(job_key(job_id), record, px=86_400_000)
    await client.zadd(queue_of(job_id), {job_id: score_ms})


CLUSTER_LANE = os.environ.get("SEEN_TEST_CLUSTER") == "1"


def both_layouts(shards: int = TEST_SHARDS) -> list[QueueLayout]:
    """ARQ's layout and the sharded one, for tests of both; only the sharded one in the cluster
    lane (ARQ's keys span slots: a cluster refuses them)."""
    sharded = QueueLayout.sharded("arq:queue", shards)
    return [sharded] if CLUSTER_LANE else [QueueLayout.arq(), sharded]
