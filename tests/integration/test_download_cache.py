"""DownloadCache against a real server: monotonic apply, terminal stickiness, speed/ETA, TTLs,
indexes, batch apply, download lists."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from cache.download import ApplyOutcome, DownloadStatus, ProgressUpdate
from cache.errors import InvalidKeyError
from cache.manager import CacheManager
from tests.support.updates import upd

TOTAL = 10_000_000


def ema(prev: float, inst: float, dt_ms: float, tau_ms: float = 5000.0) -> float:
    return prev + (1 - math.exp(-dt_ms / tau_ms)) * (inst - prev)


async def test_set_and_get_progress(manager: CacheManager, raw: Redis) -> None:
    dl = manager.download
    assert await dl.get_progress("dl-1") is None
    outcome = await dl.set_progress(upd("dl-1", 1, done=250_000, total=1_000_000, user="u7"))
    assert outcome is ApplyOutcome.APPLIED
    got = await dl.get_progress("dl-1")
    assert got is not None
    assert (got.job_id, got.user_id, got.status) == ("dl-1", "u7", DownloadStatus.DOWNLOADING)
    assert (got.bytes_done, got.bytes_total, got.seq) == (250_000, 1_000_000, 1)
    assert got.progress_percent == 25.0
    assert got.eta_seconds is None and got.speed == 0 and got.error is None
    shard = dl.layout.shard("dl-1")
    key = manager.keys.download_progress("dl-1", shard)
    assert 29_000 < await raw.pttl(key) <= 30_000
    assert await raw.zscore(manager.keys.download_active(shard), "dl-1:u7") is not None
    assert await raw.zscore(manager.keys.download_user_index("u7", shard), "dl-1") is not None


async def test_shuffled_duplicated_updates_end_in_highest_seq_state(manager: CacheManager) -> None:
    dl = manager.download
    rng = random.Random(5)
    jobs = [f"dl-{i}" for i in range(6)]
    updates = []
    for i, job in enumerate(jobs):
        last = DownloadStatus.COMPLETED if i % 2 else DownloadStatus.DOWNLOADING
        for seq in range(1, 1001):
            status = last if seq == 1000 else DownloadStatus.DOWNLOADING
            update = upd(job, seq, status, done=seq * 1000, total=1_000_000, emitted=seq * 100)
            updates += [update, update]  # every update delivered twice
    rng.shuffle(updates)
    chunks = [updates[i : i + 200] for i in range(0, len(updates), 200)]

    async def apply(part: list[list[ProgressUpdate]]) -> list[ApplyOutcome]:
        out: list[ApplyOutcome] = []
        for chunk in part:
            out += await dl.bulk_update_progress(chunk)
        return out

    results = await asyncio.gather(*(apply(chunks[k::4]) for k in range(4)))
    outcomes = [o for part in results for o in part]
    assert len(outcomes) == len(updates)
    for i, job in enumerate(jobs):
        got = await dl.get_progress(job)
        assert got is not None and got.seq == 1000 and got.bytes_done == 1_000_000
        expected = DownloadStatus.COMPLETED if i % 2 else DownloadStatus.DOWNLOADING
        assert got.status is expected
    counts = await dl.stats()
    assert counts["duplicate"] >= 1  # at least some second deliveries hit the same seq
    ignored = counts["stale"] + counts["duplicate"] + counts["final"]
    assert counts["applied"] + ignored == len(updates)
    assert counts["applied"] == sum(o is ApplyOutcome.APPLIED for o in outcomes)
    assert counts["applied"] < len(updates) // 2  # reordering made many updates stale


async def test_concurrent_single_updates_one_download(manager: CacheManager) -> None:
    dl = manager.download
    seqs = list(range(1, 501)) * 2
    random.Random(9).shuffle(seqs)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for s in seqs:
        queue.put_nowait(s)

    async def producer() -> None:
        while not queue.empty():
            await dl.set_progress(upd("dl-c", queue.get_nowait()))

    await asyncio.gather(*(producer() for _ in range(20)))
    got = await dl.get_progress("dl-c")
    assert got is not None and got.seq == 500 and got.bytes_done == 500


async def test_terminal_states_are_final(manager: CacheManager, raw: Redis) -> None:
    dl = manager.download
    for status in ("completed", "failed", "cancelled"):
        job = f"dl-{status}"
        assert await dl.set_progress(upd(job, 1)) is ApplyOutcome.APPLIED
        assert await dl.set_progress(upd(job, 5, status, error="disk full")) is ApplyOutcome.APPLIED
        late = await dl.set_progress(upd(job, 6, "downloading"))
        assert late is ApplyOutcome.FINAL
        assert await dl.set_progress(upd(job, 5, status)) is ApplyOutcome.DUPLICATE
        assert await dl.set_progress(upd(job, 3)) is ApplyOutcome.STALE
        got = await dl.get_progress(job)
        assert got is not None and got.status == status and got.seq == 5
        assert got.error == "disk full"
        shard = dl.layout.shard(job)
        key = manager.keys.download_progress(job, shard)
        assert 3_599_000 < await raw.pttl(key) <= 3_600_000  # kept ttl.download_terminal
        assert await raw.zscore(manager.keys.download_active(shard), f"{job}:u1") is None
    assert await dl.get_active_downloads() == []
    assert {p.job_id for p in await dl.get_user_downloads("u1")} == {
        "dl-completed",
        "dl-failed",
        "dl-cancelled",
    }
    assert (await dl.stats())["final"] == 3


async def test_speed_and_eta_arithmetic(manager: CacheManager) -> None:
    dl = manager.download

    async def step(seq: int, status: str, done: int, t: int) -> tuple[int, int | None]:
        assert await dl.set_progress(upd("dl-s", seq, status, done=done, total=TOTAL, emitted=t))
        got = await dl.get_progress("dl-s")
        assert got is not None
        return got.speed, got.eta_seconds

    assert await step(1, "queued", 0, 0) == (0, None)
    assert await step(2, "downloading", 0, 1000) == (0, None)  # first sample: no rate yet
    assert await step(3, "downloading", 1_000_000, 2000) == (1_000_000, 9)  # 1 MB in 1 s
    speed, eta = await step(4, "downloading", 3_000_000, 3000)  # 2 MB in 1 s, averaged
    expected = ema(1_000_000, 2_000_000, 1000)
    assert abs(speed - math.floor(expected)) <= 1
    assert eta == math.ceil(7_000_000 / speed)
    got = await dl.get_progress("dl-s")
    assert got is not None and got.progress_percent == 30.0
    assert got.speed_mbps == round(speed * 8 / 1e6, 3)

    assert await step(5, "paused", 3_000_000, 5000) == (0, None)
    assert await step(6, "downloading", 3_000_000, 10_000) == (0, None)  # averaging restarts
    assert await step(7, "downloading", 5_000_000, 11_000) == (2_000_000, 3)
    # same producer timestamp again: no new rate sample, the average stays
    assert await step(8, "downloading", 5_500_000, 11_000) == (2_000_000, 3)
    # bytes went backwards (a restart of the transfer): a zero sample is averaged in
    speed, _ = await step(9, "downloading", 5_000_000, 12_000)
    assert abs(speed - math.floor(ema(2_000_000, 0, 1000))) <= 1
    done = await step(10, "completed", TOTAL, 13_000)
    assert done == (speed, 0)  # completed keeps the last average, ETA 0
    final = await dl.get_progress("dl-s")
    assert final is not None and final.progress_percent == 100.0


async def test_percent_is_capped_and_unknown_total(manager: CacheManager) -> None:
    dl = manager.download
    await dl.set_progress(upd("dl-over", 1, done=1500, total=1000))
    await dl.set_progress(upd("dl-unknown", 1, done=1500, total=0))
    over, unknown = await dl.get_many(["dl-over", "dl-unknown"])
    assert over is not None and over.progress_percent == 100.0
    assert unknown is not None and unknown.progress_percent == 0.0 and unknown.eta_seconds is None


async def test_download_of_another_user_is_rejected(manager: CacheManager) -> None:
    dl = manager.download
    await dl.set_progress(upd("dl-x", 1, user="alice"))
    assert await dl.set_progress(upd("dl-x", 2, user="mallory")) is ApplyOutcome.REJECTED
    got = await dl.get_progress("dl-x")
    assert got is not None and got.user_id == "alice" and got.seq == 1
    assert (await dl.stats())["rejected"] == 1


async def test_bulk_update_progress_outcomes_in_order(manager: CacheManager) -> None:
    dl = manager.download
    batch = [upd(f"dl-{i}", 2) for i in range(50)] + [upd("dl-0", 1), upd("dl-1", 2)]
    outcomes = await dl.bulk_update_progress(batch)
    assert outcomes[:50] == [ApplyOutcome.APPLIED] * 50
    assert outcomes[50:] == [ApplyOutcome.STALE, ApplyOutcome.DUPLICATE]
    assert await dl.bulk_update_progress([]) == []
    assert len({dl.layout.shard(f"dl-{i}") for i in range(50)}) > 8  # spread over shards


async def test_bulk_apply_reloads_flushed_scripts(manager: CacheManager, raw: Redis) -> None:
    await raw.script_flush()
    outcomes = await manager.download.bulk_update_progress([upd("dl-a", 1), upd("dl-b", 1)])
    assert outcomes == [ApplyOutcome.APPLIED, ApplyOutcome.APPLIED]


async def test_active_downloads_across_users_and_shards(manager: CacheManager) -> None:
    dl = manager.download
    for i in range(30):
        await dl.set_progress(upd(f"dl-{i}", 1, user=f"user{i % 3}"))
    await dl.set_progress(upd("dl-0", 2, "completed", user="user0"))
    active = await dl.get_active_downloads()
    assert len(active) == 29 and "dl-0" not in {p.job_id for p in active}
    times = [p.updated_at for p in active]
    assert times == sorted(times, reverse=True)
    mine = await dl.get_active_downloads("user1")
    assert {p.job_id for p in mine} == {f"dl-{i}" for i in range(1, 30, 3)}
    assert len(await dl.get_active_downloads(limit=5)) == 5
    assert len(await dl.get_user_downloads("user0")) == 10  # the completed one included
    with pytest.raises(InvalidKeyError):
        await dl.get_active_downloads("bad*user")


async def test_count_active_per_shard_and_in_manager_stats(manager: CacheManager) -> None:
    dl = manager.download
    expected = dict.fromkeys(dl.layout.all_shards(), 0)
    for i, status in enumerate(list(DownloadStatus) * 7):
        job = f"dl-{i}"
        await dl.set_progress(upd(job, 1, user=f"user{i % 3}"))
        await dl.set_progress(upd(job, 2, status, user=f"user{i % 3}"))
        expected[dl.layout.shard(job)] += 0 if status.terminal else 1
    await dl.set_progress(upd("dl-3", 3, user="user0"))  # completed stays completed
    by_shard = await dl.count_active_by_shard()
    assert by_shard == expected and sum(1 for n in by_shard.values() if n) > 1
    assert await dl.count_active() == sum(expected.values()) == 21
    assert len(await dl.get_active_downloads()) == 21
    assert (await manager.stats()).extra["download.active"] == 21


async def test_count_active_of_an_empty_store(manager: CacheManager) -> None:
    assert await manager.download.count_active() == 0
    assert set(await manager.download.count_active_by_shard()) == set(
        manager.download.layout.all_shards()
    )


class Item(BaseModel):
    job_id: str
    title: str


async def test_download_list_cache_and_invalidation(manager: CacheManager, raw: Redis) -> None:
    dl = manager.download
    assert await dl.get_download_list("u1") is None
    await dl.set_download_list(
        "u1", [Item(job_id="a", title="Alien"), {"job_id": "b", "title": "B"}]
    )
    assert await dl.get_download_list("u1", Item) == [
        Item(job_id="a", title="Alien"),
        Item(job_id="b", title="B"),
    ]
    plain = await dl.get_download_list("u1")
    assert plain is not None and plain[1]["title"] == "B"
    assert 0 < await raw.ttl(manager.keys.download_list("u1")) <= 300
    await dl.set_progress(upd("dl-live", 1, user="u1"))
    counts = await manager.invalidate_user("u1")
    assert counts["download"] == 1
    assert await dl.get_download_list("u1") is None
    assert await dl.get_progress("dl-live") is not None  # live state is not cache


async def test_cleanup_stale_removes_only_idle_downloads(manager: CacheManager, raw: Redis) -> None:
    dl = manager.download
    hour_ago = await raw.time()
    old = (hour_ago[0] - 7200) * 1000
    await dl.bulk_update_progress([upd(f"old-{i}", 1, user="u1") for i in range(40)], now=old)
    await dl.bulk_update_progress([upd(f"new-{i}", 1, user="u1") for i in range(10)])
    assert await dl.cleanup_stale(3600, batch=7) == 40
    assert {p.job_id for p in await dl.get_active_downloads()} == {f"new-{i}" for i in range(10)}
    assert await dl.get_progress("old-3") is None
    shard = dl.layout.shard("old-3")
    assert await raw.zscore(manager.keys.download_user_index("u1", shard), "old-3") is None
    assert await dl.cleanup_stale(3600) == 0


async def test_stats_are_merged_into_manager_stats(manager: CacheManager) -> None:
    await manager.download.set_progress(upd("dl-1", 1))
    await manager.download.set_progress(upd("dl-1", 1))
    stats = await manager.stats()
    assert stats.extra["download.applied"] == 1
    assert stats.extra["download.duplicate"] == 1
