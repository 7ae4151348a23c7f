"""The progress jobs on a real ARQ worker: apply, idempotence, invalid payloads into the
dead-letter list (no retries), store failures into retries, repair and drain hand-off."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from arq.worker import Retry
from redis.asyncio import Redis

from cache.download import DownloadCache, PublishOutcome
from cache.manager import CacheManager
from jobs import progress
from jobs.client import (
    DRAIN_FUNCTION,
    REPAIR_FUNCTION,
    ProgressPublisher,
    enqueue_job,
    enqueue_update,
    enqueue_update_batch,
)
from jobs.context import JobContext
from jobs.deadletter import read_dead_letters
from jobs.errors import InvalidPayloadError
from tests.conftest import TestServer, cache_config_for
from tests.support.layout import LAYOUT, queue_length, result_key
from tests.support.processes import run_burst_worker, worker_settings
from tests.support.updates import upd
from worker.embedded import free_port


async def result(raw: Redis, job_id: str) -> dict[str, Any]:
    data = json.loads(await raw.get(result_key(job_id)) or "null")
    assert isinstance(data, dict), f"no result for {job_id}"
    return data


async def test_update_progress_job_applies_and_is_idempotent(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    settings = worker_settings(server.url)
    first = await enqueue_update(manager.client, upd("dl-1", 7), layout=LAYOUT)
    assert first
    await run_burst_worker(settings)
    again = await enqueue_update(
        manager.client, upd("dl-1", 7), layout=LAYOUT
    )  # a re-delivered update
    older = await enqueue_update(manager.client, upd("dl-1", 3), layout=LAYOUT)  # older
    assert again and older
    worker = await run_burst_worker(settings)
    assert (worker.complete, worker.failed, worker.retried) == (2, 0, 0)
    assert [(await result(raw, j))["r"] for j in (first, again, older)] == [
        "applied",
        "duplicate",
        "stale",
    ]
    got = await manager.download.get_progress("dl-1")
    assert got is not None and got.seq == 7


async def test_invalid_payload_fails_once_into_dead_letter(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    bad = {"job_id": "dl-1", "user_id": "u1", "status": "exploded", "seq": "7", "color": "red"}
    job_id = await enqueue_job(manager.client, "update_progress", bad, layout=LAYOUT)
    no_args = await enqueue_job(manager.client, "update_progress", layout=LAYOUT)
    assert job_id and no_args
    worker = await run_burst_worker(worker_settings(server.url))
    assert (worker.failed, worker.retried, worker.complete) == (2, 0, 0)
    failed = await result(raw, job_id)
    assert failed["s"] is False and failed["r"]["error"] == "InvalidPayloadError"
    letters = {d.job_id: d for d in await read_dead_letters(manager)}
    letter = letters[job_id]
    assert letter.function == "update_progress" and letter.job_try == 1
    for field in ("status", "seq", "color"):
        assert field in letter.reason
    assert "exploded" in letter.payload and not letter.truncated
    assert "exactly one argument" in letters[no_args].reason
    assert await manager.download.get_progress("dl-1") is None


async def test_dead_letter_payload_is_truncated_and_list_capped(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    huge = {"job_id": "dl-1", "user_id": "u1", "status": "failed", "seq": 1, "error": "x" * 50_000}
    for _ in range(7):
        await enqueue_job(manager.client, "update_progress", huge, layout=LAYOUT)
    settings = worker_settings(server.url, deadletter={"max_entries": 5, "payload_chars": 500})
    await run_burst_worker(settings)
    letters = await read_dead_letters(manager, limit=100)
    assert len(letters) == 5
    assert all(d.truncated and len(d.payload) == 500 for d in letters)
    assert "error" in letters[0].reason  # "at most 2000 characters"


async def test_batch_applies_valid_updates_and_dead_letters_the_rest(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    await manager.download.set_progress(upd("dl-owned", 1, user="alice"))
    good = [upd(f"dl-{i}", 2).model_dump(mode="json") for i in range(10)]
    items: list[Any] = [*good[:5], {"job_id": "dl-x"}, *good[5:], "not an object"]
    items.append(upd("dl-owned", 2, user="mallory").model_dump(mode="json"))
    job_id = await enqueue_job(manager.client, "update_progress_batch", items, layout=LAYOUT)
    not_a_list = await enqueue_job(
        manager.client, "update_progress_batch", {"job_id": "dl-1"}, layout=LAYOUT
    )
    assert job_id and not_a_list
    worker = await run_burst_worker(worker_settings(server.url))
    assert worker.failed == 2 and worker.retried == 0
    states = await manager.download.get_many([f"dl-{i}" for i in range(10)])
    assert all(s is not None and s.seq == 2 for s in states)
    message = (await result(raw, job_id))["r"]["message"]
    assert "3 of 13 updates rejected" in message and "other 10 were applied" in message
    letters = [d for d in await read_dead_letters(manager) if d.job_id == job_id]
    assert sorted(d.reason.split(":")[0] for d in letters) == [
        "download dl-owned belongs to another user than mallory",
        "updates[11]",
        "updates[5]",
    ]
    assert any("JSON array" in d.reason for d in await read_dead_letters(manager))


async def test_valid_batch_job_counts_outcomes(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    batch = [upd("dl-1", 1), upd("dl-1", 2), upd("dl-1", 2), upd("dl-2", 1)]
    job_id = await enqueue_update_batch(manager.client, batch, layout=LAYOUT)
    assert job_id
    await run_burst_worker(worker_settings(server.url))
    assert (await result(raw, job_id))["r"] == {"applied": 3, "duplicate": 1}


async def test_store_unreachable_becomes_an_arq_retry(cache_config: Any) -> None:
    dead = cache_config_for(f"127.0.0.1:{free_port()}", retries=0)
    async with await CacheManager.connect(dead, verify=False) as manager:
        ctx: JobContext = {"cache": manager, "job_id": "j1", "job_try": 2}
        with pytest.raises(Retry) as info:
            await progress.update_progress(ctx, upd("dl-1", 1).model_dump(mode="json"))
        assert info.value.defer_score == 400  # ms: 0.2 s * 2^(try-1)
        with pytest.raises(Retry):
            await progress.update_progress_batch(ctx, [upd("dl-1", 1).model_dump(mode="json")])


async def test_drain_job_rejects_a_bad_shard(manager: CacheManager) -> None:
    ctx: JobContext = {"cache": manager, "job_id": "d1", "job_try": 1}
    with pytest.raises(InvalidPayloadError, match="shard must be an integer"):
        await progress.apply_pending_progress(ctx, 99)
    assert (await read_dead_letters(manager))[0].function == DRAIN_FUNCTION


async def test_publisher_coalesces_and_worker_drains(
    server: TestServer, manager: CacheManager
) -> None:
    publisher = ProgressPublisher(manager, layout=LAYOUT)
    outcomes = [await publisher.publish(upd("dl-1", s)) for s in range(1, 51)]
    assert outcomes[0] is PublishOutcome.SCHEDULED
    assert set(outcomes[1:]) == {PublishOutcome.COALESCED}
    assert await publisher.publish(upd("dl-1", 10)) is PublishOutcome.IGNORED
    assert publisher.enqueued == 1
    worker = await run_burst_worker(worker_settings(server.url))
    assert worker.complete == 1
    got = await manager.download.get_progress("dl-1")
    assert got is not None and got.seq == 50
    assert await publisher.publish(upd("dl-1", 50)) is PublishOutcome.IGNORED  # already applied
    assert await publisher.publish(
        {"job_id": "dl-1", "user_id": "u2", "status": "queued", "seq": 51}
    )
    with pytest.raises(InvalidPayloadError, match="status"):
        await publisher.publish({"job_id": "dl-1", "user_id": "u1", "status": "nope", "seq": 1})


async def test_repair_after_a_producer_died_between_put_and_enqueue(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    put = await manager.download.publish(upd("dl-1", 5))  # the crashed producer's put...
    assert put.outcome is PublishOutcome.SCHEDULED  # ...whose enqueue never happened
    other = next(
        f"dl-{i}" for i in range(2, 99) if manager.download.layout.shard(f"dl-{i}") == put.shard
    )
    publisher = ProgressPublisher(manager, layout=LAYOUT)
    assert await publisher.publish(upd(other, 9)) is PublishOutcome.COALESCED
    assert await queue_length(raw) == 0  # nothing enqueued: both updates wait
    # The sweeper job, with a lease the stuck drain has outlived, schedules a replacement.
    await asyncio.sleep(0.02)
    await enqueue_job(manager.client, REPAIR_FUNCTION, layout=LAYOUT)
    settings = worker_settings(server.url, download={"pending_lease": 0.01})
    worker = await run_burst_worker(settings)
    assert worker.complete == 2  # the repair job, then the drain it enqueued
    states = await manager.download.get_many(["dl-1", other])
    assert [s.seq if s else None for s in states] == [5, 9]
    assert await manager.download.pending_count() == 0
    assert (await manager.download.stats())["coalesced"] == 1


async def test_drain_hands_over_after_its_budget(manager: CacheManager) -> None:
    dl = manager.download
    shard = manager.download.layout.shard("dl-1")
    jobs = [f"dl-{i}" for i in range(400) if manager.download.layout.shard(f"dl-{i}") == shard][:5]
    first = None
    for job in jobs:
        put = await dl.publish(upd(job, 1))
        first = first or put.drain_id
    assert first is not None
    report = await dl.drain(shard, first, batch=2, budget=0)
    assert report.claimed and report.applied == 2 and report.handoff_id is not None
    assert await dl.pending_count() == 3
    again = await dl.drain(shard, report.handoff_id, batch=2, budget=60)
    assert again.claimed and again.applied == 3 and again.handoff_id is None
    stray = await dl.drain(shard, "progress-drain:duplicate")
    assert not stray.claimed and stray.rounds == 0


async def test_drain_ids_come_from_the_factory_given_once(manager: CacheManager) -> None:
    """publish, drain's hand-over and schedule_drains all take their ids from ``drain_ids``."""
    made: list[int] = []

    def ids(shard: int) -> str:
        made.append(shard)
        return f"custom-{shard}-{len(made)}"

    dl = DownloadCache(
        manager.client,
        manager.service,
        manager.keys,
        manager.scripts,
        manager.config,
        drain_ids=ids,
    )
    shard = dl.layout.shard("dl-1")
    jobs = [f"dl-{i}" for i in range(400) if dl.layout.shard(f"dl-{i}") == shard][:3]
    puts = await dl.publish_many([upd(job, 1) for job in jobs])
    assert puts[0].drain_id == f"custom-{shard}-1"
    assert [p.drain_id for p in puts[1:]] == [None, None]  # coalesced into the first drain
    report = await dl.drain(shard, "custom-0-x", batch=1, budget=0)  # not the scheduled one
    assert report.applied == 1 and report.handoff_id is None  # the scheduled drain goes on
    report = await dl.drain(shard, f"custom-{shard}-1", batch=1, budget=0)
    assert report.claimed and report.handoff_id == f"custom-{shard}-2"
    await asyncio.sleep(0.01)  # the hand-over outlives a 1 ms lease: replaced
    scheduled = await dl.schedule_drains(lease_ms=1)
    assert list(scheduled.values()) == [shard]
    assert next(iter(scheduled)).startswith(f"custom-{shard}-")
