"""What the Go and Node end-to-end wrappers share: the layouts they run on, the worker they
run against, and the download states both producers' tests must leave behind (read with
the Python CacheManager: a cross-language check of what the other producer wrote)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from cache.download import DownloadStatus
from cache.manager import CacheManager
from tests.conformance.toolchain import SHARDS, SPARE_DB
from tests.conftest import TestServer
from tests.support.processes import Fleet
from tests.support.waiting import fresh_beats, wait_until

LAYOUTS = [pytest.param("arq", id="arq"), pytest.param("sharded", id="sharded")]

EXPECTED = {
    # download id suffix: (user, status, seq) the producer's end-to-end test leaves
    "dl-single": ("u1", DownloadStatus.DOWNLOADING, 4),
    "dl-batch-1": ("u1", DownloadStatus.DOWNLOADING, 2),
    "dl-batch-2": ("u1", DownloadStatus.COMPLETED, 9),
    "dl-coalesced": ("u1", DownloadStatus.COMPLETED, 8),
}


async def clean_spare_db(server: TestServer) -> None:
    client = Redis.from_url(server.url, db=SPARE_DB)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@asynccontextmanager
async def started_fleet(
    tmp_path: Any, server: TestServer, raw: Redis, layout: str
) -> AsyncIterator[Fleet]:
    """One ``seen-worker run`` on ``layout``, heartbeating before the producer starts."""
    with Fleet(
        Path(str(tmp_path)), server.url, queue={"layout": layout, "shards": SHARDS}
    ) as fleet:
        fleet.start(1)

        async def beating() -> bool:
            return len(await fresh_beats(raw, within=5.0)) == 1

        await wait_until(beating, 60, "the worker's first heartbeat")
        yield fleet


async def check_downloads(manager: CacheManager, prefix: str) -> None:
    for suffix, (user, status, seq) in EXPECTED.items():
        got = await manager.download.get_progress(f"{prefix}-{suffix}")
        assert got is not None, f"{prefix}-{suffix} was never applied"
        assert (got.user_id, got.status, got.seq) == (user, status, seq), suffix
