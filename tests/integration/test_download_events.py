"""Live events: one per applied update, in order per download, capped, followed across shards."""

from __future__ import annotations

import asyncio
import random

from redis.asyncio import Redis

from cache.config import DownloadSettings
from cache.download import ApplyOutcome, ProgressEvent, ProgressUpdate
from cache.manager import CacheManager
from tests.conftest import TestServer, cache_config_for
from tests.support.updates import upd


async def read_all(manager: CacheManager) -> list[ProgressEvent]:
    follower = manager.download.follower(count=1000)
    await follower.start(from_beginning=True)
    events: list[ProgressEvent] = []
    while batch := await follower.read(block_ms=0):
        events += batch
    return events


async def test_events_in_order_one_per_applied_update(manager: CacheManager) -> None:
    dl = manager.download
    updates = [upd(f"dl-{j}", s) for j in range(5) for s in range(1, 201)]
    updates += updates[:300]  # duplicates: no event
    random.Random(3).shuffle(updates)
    outcomes = await dl.bulk_update_progress(updates)
    applied: dict[str, list[int]] = {}
    for update, outcome in zip(updates, outcomes, strict=True):
        if outcome is ApplyOutcome.APPLIED:
            applied.setdefault(update.job_id, []).append(update.seq)
    events = await read_all(manager)
    assert len(events) == sum(len(v) for v in applied.values())
    seen: dict[str, list[int]] = {}
    for event in events:
        seen.setdefault(event.progress.job_id, []).append(event.progress.seq)
        assert event.shard == dl.layout.shard(event.progress.job_id)
    for job, seqs in seen.items():
        assert seqs == applied[job]  # the order they were applied in
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # strictly increasing
        assert seqs[-1] == 200
    last = events[-1].progress
    assert last.user_id == "u1" and last.bytes_total == 1_000_000


async def test_stream_is_capped(server: TestServer, raw: Redis) -> None:
    config = cache_config_for(server.url).model_copy(
        update={"download": DownloadSettings(events_maxlen=100)}
    )
    async with await CacheManager.connect(config) as manager:
        await manager.download.bulk_update_progress([upd("dl-1", s) for s in range(1, 2001)])
        key = manager.keys.download_events(manager.download.layout.shard("dl-1"))
        assert 100 <= await raw.xlen(key) < 400  # MAXLEN ~: trimmed by whole nodes


async def test_follower_sees_new_events_only_and_blocks(manager: CacheManager) -> None:
    dl = manager.download
    await dl.set_progress(upd("dl-old", 1))
    follower = dl.follower(block_ms=2000)
    await follower.start()
    assert await follower.read(block_ms=0) == []

    async def later() -> None:
        await asyncio.sleep(0.2)
        await dl.set_progress(upd("dl-new", 1, user="u2"))

    task = asyncio.create_task(later())
    events = await follower.read()  # blocks until the update lands
    await task
    assert [(e.progress.job_id, e.progress.user_id) for e in events] == [("dl-new", "u2")]


async def test_read_loop_sees_an_event_published_after_start(manager: CacheManager) -> None:
    """``seen-worker watch``'s pattern: start, then read with a short block until told to stop."""
    dl = manager.download
    follower = dl.follower(block_ms=100)
    await follower.start()
    stop = asyncio.Event()
    got: list[ProgressUpdate | str] = []

    async def consume() -> None:
        while not stop.is_set():
            for event in await follower.read():
                got.append(event.progress.job_id)
                stop.set()

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await dl.set_progress(upd("dl-f", 1))
    await asyncio.wait_for(task, 5)
    assert got == ["dl-f"]
