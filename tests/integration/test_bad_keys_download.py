"""A bad stored key fails one download alone (issue 18): the download scripts on a real server.

For every key each download script reads, a wrong type and, where a number is read, a
non-integer or out-of-range value ("abc", "1.5", 2^63-1), next to healthy downloads of the same
shard: the healthy ones go through in the same call, the one that met the bad key fails alone
with an error naming the key, nothing else of its call is written (a Lua script is not rolled
back), the key is removed, and the same download goes through on the next call.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from redis.asyncio import Redis

from cache.download import ApplyOutcome, PublishOutcome, _calls, now_ms
from cache.download._layout import DownloadLayout, member
from cache.errors import CorruptKeyError
from cache.manager import CacheManager
from jobs import progress
from jobs.client import ProgressPublisher
from jobs.context import JobContext
from jobs.deadletter import read_dead_letters
from jobs.errors import PublishError, StoredStateError
from tests.support.corrupt import (
    MAX_INT64,
    Corruption,
    as_hash,
    as_list,
    as_string,
    bad_numbers,
    field,
    hget,
    hgetall,
    hset,
    key_type,
)
from tests.support.updates import upd

BAD, BAD_USER = "dl-bad", "u-bad"
EXPECTED_TYPE = {
    "progress": "hash",
    "active": "zset",
    "user": "zset",
    "events": "stream",
    "stats": "hash",
    "pending": "hash",
    "pending_set": "zset",
    "drain": "hash",
}


def same_shard(layout: DownloadLayout, shard: int, count: int, prefix: str = "h") -> list[str]:
    """``count`` job ids on ``shard`` (healthy neighbours of the bad download)."""
    found = [f"{prefix}-{i}" for i in range(5000) if layout.shard(f"{prefix}-{i}") == shard]
    return found[:count]


def key_of(manager: CacheManager, role: str, job: str = BAD, user: str = BAD_USER) -> str:
    keys, shard = manager.keys, manager.download.layout.shard(job)
    return {
        "progress": keys.download_progress(job, shard),
        "active": keys.download_active(shard),
        "user": keys.download_user_index(user, shard),
        "events": keys.download_events(shard),
        "stats": keys.download_stats(shard),
        "pending": keys.download_pending(job, shard),
        "pending_set": keys.download_pending_set(shard),
        "drain": keys.download_drain(shard),
    }[role]


async def events_of(raw: Redis, key: str, job: str) -> list[dict[str, str]]:
    if await key_type(raw, key) != "stream":
        return []
    return [fields for _, fields in await raw.xrange(key) if fields.get("job") == job]


def cases(spec: dict[str, list[Corruption]]) -> list[Any]:
    return [pytest.param(role, c, id=f"{role}-{c.name}") for role, cs in spec.items() for c in cs]


def assert_names(error: BaseException | None, key: str) -> None:
    assert isinstance(error, CorruptKeyError), error
    assert error.key == key and key in str(error), str(error)


# -- download_apply, direct mode ---------------------------------------------------------------
APPLY_CASES = cases(
    {
        "progress": [
            as_string(),
            as_list(),
            *bad_numbers(lambda v: field("seq", v)),
            field("done", "abc"),
            field("emitted", "1.5"),
            field("speed", MAX_INT64),
            field("sps", MAX_INT64),
            field("status", "exploded"),
        ],
        "active": [as_string(), as_hash()],
        "user": [as_string(), as_hash()],
        "events": [as_string(), as_hash()],
        "stats": [as_string(), as_list(), *bad_numbers(lambda v: field("applied", v))],
    }
)


@pytest.mark.parametrize(("role", "corruption"), APPLY_CASES)
async def test_apply_fails_the_download_with_the_bad_key_alone(
    manager: CacheManager, raw: Redis, role: str, corruption: Corruption
) -> None:
    dl = manager.download
    shard = dl.layout.shard(BAD)
    healthy = same_shard(dl.layout, shard, 3)
    first = await dl.apply_many([upd(BAD, 1, user=BAD_USER), *(upd(h, 1) for h in healthy)])
    assert [r.outcome for r in first] == [ApplyOutcome.APPLIED] * 4
    key = key_of(manager, role)
    await corruption.apply(raw, key)

    results = await dl.apply_many([upd(BAD, 2, user=BAD_USER), *(upd(h, 2) for h in healthy)])

    assert results[0].outcome is ApplyOutcome.CORRUPT
    assert_names(results[0].error, key)
    assert [(r.outcome, r.error) for r in results[1:]] == [(ApplyOutcome.APPLIED, None)] * 3
    assert [s and s.seq for s in await dl.get_many(healthy)] == [2, 2, 2]
    # the failed call wrote nothing but the repair (a script is not rolled back)
    if role != "progress":
        state = await dl.get_progress(BAD)
        assert state is not None and state.seq == 1
    assert [e["seq"] for e in await events_of(raw, key_of(manager, "events"), BAD)] == (
        [] if role == "events" else ["1"]
    )
    applied = await hget(raw, key_of(manager, "stats"), "applied")
    assert applied == ("3" if role == "stats" else "7")
    assert await raw.zscore(key_of(manager, "user"), BAD) is not None or role == "user"
    # the bad key is removed (a shared one is rebuilt by the healthy updates after it)
    assert await key_type(raw, key) in ("none", EXPECTED_TYPE[role])
    # and the same download goes through on the next call
    again = await dl.apply_many([upd(BAD, 2, user=BAD_USER)])
    assert [(r.outcome, r.error) for r in again] == [(ApplyOutcome.APPLIED, None)]
    state = await dl.get_progress(BAD)
    assert state is not None and state.seq == 2 and state.user_id == BAD_USER
    assert await raw.zscore(key_of(manager, "user"), BAD) is not None
    assert await raw.zscore(key_of(manager, "active"), member(BAD, BAD_USER)) is not None


async def test_set_progress_raises_the_typed_error_and_bulk_reports_the_outcome(
    manager: CacheManager, raw: Redis
) -> None:
    dl = manager.download
    key = key_of(manager, "progress")
    await raw.set(key, "garbage")
    with pytest.raises(CorruptKeyError) as info:
        await dl.set_progress(upd(BAD, 1, user=BAD_USER))
    assert_names(info.value, key)
    assert await raw.exists(key) == 0
    await hset(raw, key, {"seq": "abc", "status": "downloading", "user": BAD_USER})
    assert await dl.bulk_update_progress([upd(BAD, 1, user=BAD_USER), upd("dl-ok", 1)]) == [
        ApplyOutcome.CORRUPT,
        ApplyOutcome.APPLIED,
    ]
    assert await dl.set_progress(upd(BAD, 1, user=BAD_USER)) is ApplyOutcome.APPLIED


# -- download_apply, pending mode (the drain) --------------------------------------------------
PENDING_APPLY_CASES = cases(
    {
        "progress": [as_string(), field("seq", "abc")],
        "active": [as_string()],
        "user": [as_hash()],
        "events": [as_string()],
        "stats": [as_string(), *bad_numbers(lambda v: field("applied", v))],
        "pending": [
            as_string(),
            as_list(),
            *bad_numbers(lambda v: field("seq", v)),
            field("done", "abc"),
            field("status", "exploded"),
        ],
    }
)


@pytest.mark.parametrize(("role", "corruption"), PENDING_APPLY_CASES)
async def test_drain_applies_the_others_and_reports_the_bad_key(
    manager: CacheManager, raw: Redis, role: str, corruption: Corruption
) -> None:
    dl = manager.download
    shard = dl.layout.shard(BAD)
    healthy = same_shard(dl.layout, shard, 3)
    await dl.apply_many([upd(BAD, 1, user=BAD_USER), *(upd(h, 1) for h in healthy)])
    puts = await dl.publish_many([upd(BAD, 2, user=BAD_USER), *(upd(h, 2) for h in healthy)])
    drain_id = puts[0].drain_id
    assert drain_id is not None
    key = key_of(manager, role)
    await corruption.apply(raw, key)

    report = await dl.drain(shard, drain_id)

    assert report.claimed and report.corrupt == 1 and len(report.problems) == 1
    assert key in report.problems[0]
    assert [s and s.seq for s in await dl.get_many(healthy)] == [2, 2, 2]
    bad_state = await dl.get_progress(BAD)
    if role == "pending":
        # the unusable pending update is consumed; the applied state is untouched
        assert report.applied == 3
        assert bad_state is not None and bad_state.seq == 1
        assert await raw.exists(key) == 0
    else:
        # the pending update stays pending; the next round of the same drain applies it
        assert report.applied == 4
        assert bad_state is not None and bad_state.seq == 2
    assert await dl.pending_count() == 0
    assert await raw.exists(key_of(manager, "pending")) == 0


async def test_drain_job_dead_letters_an_unusable_pending_update(
    manager: CacheManager, raw: Redis
) -> None:
    dl = manager.download
    puts = await dl.publish_many([upd(BAD, 1, user=BAD_USER), upd("dl-ok", 1)])
    key = key_of(manager, "pending")
    await hset(raw, key, {"seq": "1.5"})
    for put in puts:
        if put.drain_id is not None:
            ctx: JobContext = {"cache": manager, "job_id": put.drain_id, "job_try": 1}
            result = await progress.apply_pending_progress(ctx, put.shard)
            assert result["claimed"]
    letters = await read_dead_letters(manager)
    assert [d.function for d in letters] == ["apply_pending_progress"]
    assert key in letters[0].reason and BAD in letters[0].payload
    state = await dl.get_progress("dl-ok")
    assert state is not None and state.seq == 1


async def test_apply_in_pending_mode_repairs_a_pending_set_of_the_wrong_type(
    manager: CacheManager, raw: Redis
) -> None:
    dl = manager.download
    put = await dl.publish(upd(BAD, 1, user=BAD_USER))
    key = key_of(manager, "pending_set")
    await raw.delete(key)
    await raw.set(key, "garbage")
    call = _calls.apply_pending(dl.layout, put.shard, BAD, BAD_USER, now_ms())
    with pytest.raises(CorruptKeyError) as info:
        await manager.scripts.run("download_apply", *call)
    assert_names(info.value, key)
    # the set is rebuilt with this download only; its pending update is kept
    assert await raw.zrange(key, 0, -1) == [member(BAD, BAD_USER)]
    report = await dl.drain(put.shard, "any-drain")
    assert report.applied == 1
    state = await dl.get_progress(BAD)
    assert state is not None and state.seq == 1


@pytest.mark.parametrize("corruption", [as_string(), as_hash()], ids=repr)
async def test_drain_repairs_a_pending_set_of_the_wrong_type(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    dl = manager.download
    shard = dl.layout.shard(BAD)
    healthy = same_shard(dl.layout, shard, 2)
    puts = await dl.publish_many([upd(j, 1) for j in [BAD, *healthy]])
    key = key_of(manager, "pending_set")
    await corruption.apply(raw, key)
    drain_id = puts[0].drain_id
    assert drain_id is not None
    report = await dl.drain(shard, drain_id)
    assert report.corrupt == 1 and key in report.problems[0]
    assert await raw.exists(key) == 0
    # the next publish of those downloads goes through and the next drain applies them
    again = await dl.publish_many([upd(j, 2) for j in [BAD, *healthy]])
    assert {r.outcome for r in again} <= {PublishOutcome.SCHEDULED, PublishOutcome.COALESCED}
    report = await dl.drain(shard, next(r.drain_id for r in again if r.drain_id))
    assert report.applied == 3 and report.corrupt == 0
    assert [s and s.seq for s in await dl.get_many([BAD, *healthy])] == [2, 2, 2]


# -- download_pending_put ----------------------------------------------------------------------
PUT_CASES = cases(
    {
        "pending": [as_string(), as_list(), *bad_numbers(lambda v: field("seq", v))],
        "pending_set": [as_string(), as_hash()],
        "drain": [as_string(), as_list(), *bad_numbers(lambda v: field("at", v))],
        "progress": [as_string(), *bad_numbers(lambda v: field("seq", v)), field("status", "?")],
        "stats": [as_string(), *bad_numbers(lambda v: field("coalesced", v))],
    }
)


@pytest.mark.parametrize(("role", "corruption"), PUT_CASES)
async def test_put_fails_the_download_with_the_bad_key_alone(
    manager: CacheManager, raw: Redis, role: str, corruption: Corruption
) -> None:
    dl = manager.download
    shard = dl.layout.shard(BAD)
    healthy = same_shard(dl.layout, shard, 3)
    everyone = [BAD, *healthy]
    await dl.apply_many([upd(BAD, 1, user=BAD_USER), *(upd(h, 1) for h in healthy)])
    puts = await dl.publish_many([upd(BAD, 2, user=BAD_USER), *(upd(h, 2) for h in healthy)])
    assert [p.outcome for p in puts] == [PublishOutcome.SCHEDULED] + [PublishOutcome.COALESCED] * 3
    key = key_of(manager, role)
    await corruption.apply(raw, key)
    stats_before = {} if role == "stats" else await hgetall(raw, key_of(manager, "stats"))

    results = await dl.publish_many([upd(BAD, 3, user=BAD_USER), *(upd(h, 3) for h in healthy)])

    assert results[0].outcome is PublishOutcome.CORRUPT
    assert_names(results[0].error, key)
    assert {r.outcome for r in results[1:]} <= {PublishOutcome.COALESCED, PublishOutcome.SCHEDULED}
    assert all(r.error is None for r in results[1:])
    for job in healthy:
        assert await hget(raw, key_of(manager, "pending", job), "seq") == "3"
    # nothing else of the failed put was written
    if role != "pending":
        assert await hget(raw, key_of(manager, "pending"), "seq") == "2"
    if role != "stats":
        after = await hgetall(raw, key_of(manager, "stats"))
        counted = sum(int(v) for v in after.values()) - sum(int(v) for v in stats_before.values())
        assert counted == 3
    assert await key_type(raw, key) in ("none", EXPECTED_TYPE[role])
    # the same download goes through on the next call, and a drain applies everyone
    again = await dl.publish_many([upd(BAD, 3, user=BAD_USER)])
    assert again[0].error is None
    assert again[0].outcome in (PublishOutcome.COALESCED, PublishOutcome.SCHEDULED)
    owed = [r.drain_id for r in [*results, *again] if r.drain_id]
    report = await dl.drain(shard, owed[-1] if owed else "any")
    if report.applied < 4:  # a drain scheduled before the last one may be needed too
        await dl.drain(shard, "any")
    assert [s and s.seq for s in await dl.get_many(everyone)] == [3, 3, 3, 3]


async def test_publisher_stores_the_others_and_raises_naming_the_key(
    manager: CacheManager, raw: Redis
) -> None:
    publisher = ProgressPublisher(manager)
    key = key_of(manager, "pending")
    await raw.set(key, "garbage")
    with pytest.raises(PublishError, match=r"\{dl:") as info:
        await publisher.publish_many([upd(BAD, 1, user=BAD_USER), upd("dl-ok", 1)])
    assert key in str(info.value)
    assert publisher.enqueued == 1  # the healthy update's drain job
    assert await hget(raw, key_of(manager, "pending", "dl-ok"), "seq") == "1"
    # a retry (safe: puts are idempotent) stores the bad one too
    outcomes = await publisher.publish_many([upd(BAD, 1, user=BAD_USER), upd("dl-ok", 1)])
    assert outcomes[1] is PublishOutcome.IGNORED
    assert outcomes[0] in (PublishOutcome.SCHEDULED, PublishOutcome.COALESCED)


# -- download_drain_claim and download_drain_kick -----------------------------------------------
@pytest.mark.parametrize("corruption", [as_string(), as_list()], ids=repr)
async def test_drain_claim_removes_a_bad_drain_record_and_drains_on(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    dl = manager.download
    shard = dl.layout.shard(BAD)
    jobs = [BAD, *same_shard(dl.layout, shard, 3)]
    puts = await dl.publish_many([upd(j, 1) for j in jobs])
    drain_id = puts[0].drain_id
    assert drain_id is not None
    key = key_of(manager, "drain")
    await corruption.apply(raw, key)
    call = _calls.drain_claim(dl.layout, shard, drain_id)
    with pytest.raises(CorruptKeyError) as info:
        await manager.scripts.run("download_drain_claim", *call)
    assert_names(info.value, key)
    assert await raw.exists(key) == 0
    await corruption.apply(raw, key)
    report = await dl.drain(shard, drain_id)
    assert not report.claimed and report.corrupt == 1 and key in report.problems[0]
    assert report.applied == 4
    assert [s and s.seq for s in await dl.get_many(jobs)] == [1, 1, 1, 1]


KICK_CASES = cases(
    {
        "pending_set": [as_string(), as_hash()],
        "drain": [as_string(), as_list(), *bad_numbers(lambda v: field("at", v))],
    }
)


@pytest.mark.parametrize(("role", "corruption"), KICK_CASES)
async def test_schedule_drains_repairs_the_bad_shard_and_schedules_the_others(
    manager: CacheManager, raw: Redis, role: str, corruption: Corruption, caplog: Any
) -> None:
    dl = manager.download
    shard = dl.layout.shard(BAD)
    other = next(f"o-{i}" for i in range(99) if dl.layout.shard(f"o-{i}") != shard)
    await dl.publish_many([upd(BAD, 1), upd(other, 1)])
    key = key_of(manager, role)
    await corruption.apply(raw, key)
    call = _calls.drain_kick(dl.layout, shard, "kick-1", now_ms(), 0)
    with pytest.raises(CorruptKeyError) as info:
        await manager.scripts.run("download_drain_kick", *call)
    assert_names(info.value, key)
    assert await raw.exists(key) == 0
    await corruption.apply(raw, key)
    await raw.delete(key_of(manager, "drain", other))  # the other shard's drain was lost
    with caplog.at_level(logging.WARNING):
        scheduled = await dl.schedule_drains()
    assert key in caplog.text
    assert dl.layout.shard(other) in scheduled.values()
    # the drain record is rebuilt at once; a lost pending set comes back with the next put
    assert (shard in scheduled.values()) is (role == "drain")
    assert await key_type(raw, key) in ("none", EXPECTED_TYPE[role])


# -- cleanup: download_pop_stale and download_forget --------------------------------------------
FORGET_CASES = cases(
    {
        "progress": [as_string(), as_list(), *bad_numbers(lambda v: field("updated", v))],
        "user": [as_string(), as_hash()],
    }
)


@pytest.mark.parametrize(("role", "corruption"), FORGET_CASES)
async def test_cleanup_forgets_the_others_and_removes_the_bad_key(
    manager: CacheManager, raw: Redis, role: str, corruption: Corruption, caplog: Any
) -> None:
    dl = manager.download
    shard = dl.layout.shard(BAD)
    healthy = same_shard(dl.layout, shard, 3)
    old = now_ms() - 7_200_000
    await dl.apply_many([upd(BAD, 1, user=BAD_USER), *(upd(h, 1) for h in healthy)], now=old)
    key = key_of(manager, role)
    await corruption.apply(raw, key)
    call = _calls.forget(dl.layout, shard, BAD, BAD_USER, now_ms() - 3_600_000)
    with pytest.raises(CorruptKeyError) as info:
        await manager.scripts.run("download_forget", *call)
    assert_names(info.value, key)
    assert await raw.exists(key) == 0
    await corruption.apply(raw, key)
    with caplog.at_level(logging.WARNING):
        removed = await dl.cleanup_stale(3600)
    assert removed == 4 and key in caplog.text
    assert await dl.get_many(healthy) == [None, None, None]
    assert await raw.exists(key) == 0


@pytest.mark.parametrize("corruption", [as_string(), as_hash()], ids=repr)
async def test_cleanup_goes_on_past_a_bad_active_index(
    manager: CacheManager, raw: Redis, corruption: Corruption, caplog: Any
) -> None:
    dl = manager.download
    shard = dl.layout.shard(BAD)
    others = [f"o-{i}" for i in range(40) if dl.layout.shard(f"o-{i}") != shard][:5]
    old = now_ms() - 7_200_000
    await dl.apply_many([upd(j, 1) for j in [BAD, *others]], now=old)
    key = key_of(manager, "active")
    await corruption.apply(raw, key)
    call = _calls.pop_stale(dl.layout, shard, now_ms(), 10)
    with pytest.raises(CorruptKeyError) as info:
        await manager.scripts.run("download_pop_stale", *call)
    assert_names(info.value, key)
    assert await raw.exists(key) == 0
    await corruption.apply(raw, key)
    with caplog.at_level(logging.WARNING):
        removed = await dl.cleanup_stale(3600)
    assert removed == 5 and key in caplog.text
    assert await dl.get_many(others) == [None] * 5
    assert await raw.exists(key) == 0


# -- the jobs: a bad key ends in a dead letter naming it, the others apply ------------------------
async def test_update_jobs_dead_letter_the_update_that_met_a_bad_key(
    manager: CacheManager, raw: Redis
) -> None:
    key = key_of(manager, "progress")
    await raw.set(key, "garbage")
    ctx: JobContext = {"cache": manager, "job_id": "job-1", "job_try": 1}
    with pytest.raises(StoredStateError, match="removed") as info:
        await progress.update_progress(ctx, upd(BAD, 1, user=BAD_USER).model_dump(mode="json"))
    assert key in str(info.value)
    await hset(raw, key, {"seq": MAX_INT64, "status": "downloading", "user": BAD_USER})
    batch = [upd(BAD, 2, user=BAD_USER), upd("dl-a", 1), upd("dl-b", 1)]
    ctx = {"cache": manager, "job_id": "job-2", "job_try": 1}
    with pytest.raises(StoredStateError, match="1 of 3 updates") as batch_info:
        await progress.update_progress_batch(ctx, [u.model_dump(mode="json") for u in batch])
    assert key in str(batch_info.value)
    letters = await read_dead_letters(manager)
    assert {d.job_id for d in letters} == {"job-1", "job-2"}
    assert all(key in d.reason and BAD in d.payload for d in letters)
    assert [s and s.seq for s in await manager.download.get_many(["dl-a", "dl-b"])] == [1, 1]
    # the key was removed: the update applies when it is sent again
    ctx = {"cache": manager, "job_id": "job-3", "job_try": 1}
    assert await progress.update_progress(ctx, batch[0].model_dump(mode="json")) == "applied"
