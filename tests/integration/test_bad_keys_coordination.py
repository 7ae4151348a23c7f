"""A bad stored key fails one id alone (issue 18): locks, leases, the run guard, rate limits,
catalog generations, the health probe and cron slot claims, on a real server.

For every key each script reads, a wrong type and, where a number is read, a non-integer or
out-of-range value ("abc", "1.5", 2^63-1): the call for that key fails with ``CorruptKeyError``
naming it and writes nothing else; calls for other keys go through; where a repair is safe
(rate-limit state, catalog generations) the key is repaired and the next call goes through,
and where it is not (a lock, a fencing counter, a lease, a slot claim: deleting one could let
two holders in or run a slot twice) the refusal is repeatable and the key is left as found.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from cache.coordination import Lease, LockLost
from cache.errors import CorruptKeyError
from cache.manager import CacheManager
from jobs.guard import RunGuard
from jobs.schedule import ClaimState, SlotClaims
from tests.support.corrupt import (
    BAD_NUMBERS,
    Corruption,
    as_hash,
    as_list,
    bad_numbers,
    hgetall,
    key_type,
    value,
    wrong_types,
)
from tests.support.waiting import items, wait_until

STRING_KEY_CORRUPTIONS = [*wrong_types("hash", "list"), *bad_numbers(value)]
"""What can be wrong with a key holding one integer (a counter, a time)."""


async def snapshot(raw: Redis, key: str) -> tuple[str, Any]:
    """The type and content of a key, to show a refused call left it as found."""
    kind = await key_type(raw, key)
    content: Any = None
    if kind == "string":
        content = await raw.get(key)
    elif kind == "hash":
        content = await hgetall(raw, key)
    elif kind == "list":
        content = await items(raw, key)
    return kind, content


def assert_names(error: BaseException, key: str) -> None:
    assert isinstance(error, CorruptKeyError), error
    assert error.key == key and key in str(error), str(error)


# -- lock_acquire ---------------------------------------------------------------------------
@pytest.mark.parametrize("corruption", wrong_types("hash", "list"), ids=repr)
async def test_acquire_refuses_a_lock_key_of_the_wrong_type(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    locks = manager.locks
    key = manager.keys.lock("bad")
    await corruption.apply(raw, key)
    found = await snapshot(raw, key)
    for _ in range(2):  # refused every time, at once (no waiting for a lease that is no lock)
        with pytest.raises(CorruptKeyError) as info:
            await locks.acquire("bad", ttl=5, wait=5)
        assert_names(info.value, key)
    assert await snapshot(raw, key) == found  # nobody's lock is deleted blindly
    assert await raw.exists(manager.keys.lock_fence("bad")) == 0
    other = await locks.try_acquire("good", ttl=5)
    assert other is not None and await other.release()


@pytest.mark.parametrize("corruption", STRING_KEY_CORRUPTIONS, ids=repr)
async def test_acquire_refuses_a_bad_fencing_counter_and_takes_no_lock(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    locks = manager.locks
    before = await locks.try_acquire("bad", ttl=5)
    assert before is not None and await before.release()
    fence = manager.keys.lock_fence("bad")
    await corruption.apply(raw, fence)
    found = await snapshot(raw, fence)
    for _ in range(2):
        with pytest.raises(CorruptKeyError) as info:
            await locks.try_acquire("bad", ttl=5)
        assert_names(info.value, fence)
        assert await raw.exists(manager.keys.lock("bad")) == 0  # no lock left taken
    assert await snapshot(raw, fence) == found  # never reset to a lower fence
    other = await locks.try_acquire("good", ttl=5)
    assert other is not None and other.fence > 0 and await other.release()
    # put right by hand (above every fence handed out), the lock works again
    await raw.delete(fence)
    await raw.set(fence, before.fence)
    again = await locks.try_acquire("bad", ttl=5)
    assert again is not None and again.fence > before.fence


# -- lock_extend, lock_release, guard_acquire: the lease primitive ----------------------------
LEASE_KEY, GOOD_LEASE = "seen:lock:{bad-lease}", "seen:lock:{good-lease}"


@pytest.mark.parametrize("corruption", wrong_types("hash", "list"), ids=repr)
async def test_extend_refuses_a_lease_key_of_the_wrong_type_and_renews_the_others(
    manager: CacheManager, raw: Redis, corruption: Corruption, caplog: Any
) -> None:
    lease = Lease(manager.scripts)
    await corruption.apply(raw, LEASE_KEY)
    found = await snapshot(raw, LEASE_KEY)
    assert await lease.acquire(GOOD_LEASE, "t", 5000)
    for _ in range(2):
        with pytest.raises(CorruptKeyError) as info:
            await lease.extend(LEASE_KEY, "t", 5000)
        assert_names(info.value, LEASE_KEY)
    # a batch renewal (job leases): the bad lease is not renewed, the others are
    with caplog.at_level(logging.WARNING):
        renewed = await lease.extend_many([(LEASE_KEY, "t"), (GOOD_LEASE, "t")], 9000)
    assert renewed == [False, True] and LEASE_KEY in caplog.text
    assert 8000 < await raw.pttl(GOOD_LEASE) <= 9000
    assert await snapshot(raw, LEASE_KEY) == found
    # a held lock whose key turned bad: its extend says which key
    lock = await manager.locks.try_acquire("held", ttl=5)
    assert lock is not None
    await corruption.apply(raw, lock.key)
    with pytest.raises(CorruptKeyError) as info:
        await lock.extend()
    assert_names(info.value, lock.key)


@pytest.mark.parametrize("corruption", wrong_types("hash", "list"), ids=repr)
async def test_release_refuses_a_lease_key_of_the_wrong_type(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    lease = Lease(manager.scripts)
    await corruption.apply(raw, LEASE_KEY)
    found = await snapshot(raw, LEASE_KEY)
    assert await lease.acquire(GOOD_LEASE, "t", 5000)
    for _ in range(2):
        with pytest.raises(CorruptKeyError) as info:
            await lease.release(LEASE_KEY, "t")
        assert_names(info.value, LEASE_KEY)
    assert await snapshot(raw, LEASE_KEY) == found  # nobody's lease is deleted blindly
    assert await lease.release(GOOD_LEASE, "t")
    lock = await manager.locks.try_acquire("held", ttl=5)
    assert lock is not None
    await corruption.apply(raw, lock.key)
    with pytest.raises(CorruptKeyError):
        await manager.locks.release("held", lock.token)


@pytest.mark.parametrize("corruption", wrong_types("hash", "list"), ids=repr)
async def test_guard_acquire_refuses_a_guard_of_the_wrong_type(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    guard = RunGuard(manager.scripts, manager.keys)
    key = manager.keys.maintenance_lock("bad-job")
    await corruption.apply(raw, key)
    found = await snapshot(raw, key)
    for token in ("job-1", "job-1", "job-2"):
        with pytest.raises(CorruptKeyError) as info:
            await guard.acquire("bad-job", token, 5)
        assert_names(info.value, key)
    assert await snapshot(raw, key) == found
    assert await guard.acquire("good-job", "job-1", 5)
    assert await guard.release("good-job", "job-1")


async def test_hold_loses_a_lease_whose_key_turned_bad_at_once(
    manager: CacheManager, raw: Redis
) -> None:
    finished = False

    async def body() -> None:
        nonlocal finished
        async with manager.locks.hold("turned", ttl=6) as lock:
            await as_hash().apply(raw, lock.key)  # e.g. another program's key
            await asyncio.sleep(20)  # cancelled by the first renewal, after 2 s
            finished = True

    started = time.monotonic()
    with pytest.raises(LockLost, match="unusable") as info:
        await body()
    assert not finished and time.monotonic() - started < 5.5  # before the lease ran out
    assert info.value.key == manager.keys.lock("turned")
    assert await key_type(raw, manager.keys.lock("turned")) == "hash"  # left as found


# -- ratelimit_fixed, ratelimit_gcra: repaired to a used-up window ----------------------------
@pytest.mark.parametrize("corruption", STRING_KEY_CORRUPTIONS, ids=repr)
async def test_fixed_window_with_a_bad_counter_fails_once_then_holds_the_limit(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    limiter = manager.ratelimit
    key = manager.keys.rate_limit_fixed("bad", "act")
    assert (await limiter.check_fixed("bad", "act", 3, 2)).allowed
    await corruption.apply(raw, key)
    with pytest.raises(CorruptKeyError) as info:
        await limiter.check_fixed("bad", "act", 3, 2)
    assert_names(info.value, key)
    assert await raw.get(key) == "3" and 0 < await raw.pttl(key) <= 2000  # a used-up window
    denied = await limiter.check_fixed("bad", "act", 3, 2)
    assert not denied.allowed and 0 < denied.retry_after <= 2.001
    assert (await limiter.check_fixed("good", "act", 3, 2)).allowed

    async def passes() -> bool:
        return (await limiter.check_fixed("bad", "act", 3, 2)).allowed

    await wait_until(passes, 10, "the repaired window to end")


@pytest.mark.parametrize(
    "corruption", [*STRING_KEY_CORRUPTIONS, value("9007199254740991")], ids=repr
)
async def test_gcra_with_a_bad_state_fails_once_then_holds_the_limit(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    limiter = manager.ratelimit
    key = manager.keys.rate_limit("bad", "act")
    assert (await limiter.check("bad", "act", 5, 5)).allowed
    await corruption.apply(raw, key)
    with pytest.raises(CorruptKeyError) as info:
        await limiter.check("bad", "act", 5, 5)
    assert_names(info.value, key)
    assert await key_type(raw, key) == "string" and 0 < await raw.pttl(key) <= 5002
    denied = await limiter.check("bad", "act", 5, 5)
    assert not denied.allowed and 0 < denied.retry_after <= 1.0
    assert (await limiter.check("good", "act", 5, 5)).allowed

    async def passes() -> bool:
        return (await limiter.check("bad", "act", 5, 5)).allowed

    await wait_until(passes, 10, "one interval to pass")


# -- catalog_bump: repaired to a fresh generation ---------------------------------------------
@pytest.mark.parametrize("corruption", STRING_KEY_CORRUPTIONS, ids=repr)
async def test_catalog_bump_resets_a_bad_generation_above_the_old_ones(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    catalog = manager.catalog
    await catalog.invalidate_user_catalog("bad")
    old = await catalog.generation("bad")
    key = manager.keys.catalog_user_generation("bad")
    await corruption.apply(raw, key)
    with pytest.raises(CorruptKeyError) as info:
        await catalog.invalidate_user_catalog("bad")
    assert_names(info.value, key)
    repaired = await catalog.generation("bad")  # readable again, above every old generation
    assert repaired > old and await raw.pttl(key) > 0
    await catalog.invalidate_user_catalog("bad")
    assert await catalog.generation("bad") > repaired
    await catalog.invalidate_user_catalog("good")
    assert await catalog.generation("good") > 0


# -- probe: nothing to check (SET replaces a key of any type) ---------------------------------
@pytest.mark.parametrize("corruption", [as_hash(), as_list()], ids=repr)
async def test_probe_replaces_whatever_its_key_holds(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    key = manager.keys.health_probe("fixed")
    await corruption.apply(raw, key)
    assert await manager.scripts.run("probe", [key], ["v", 1000]) == b"v"
    assert await raw.exists(key) == 0
    assert (await manager.health_check()).ok


# -- slot_claim, slot_finish, slot_cover: refused, left as found -------------------------------
SLOT_CORRUPTIONS = [*wrong_types("hash", "list"), *(value(v) for v in BAD_NUMBERS)]


async def claimed_slot_gone_bad(
    claims: SlotClaims, raw: Redis, key: str, corruption: Corruption
) -> tuple[str, Any]:
    """Slot 5 claimed by job:5, then its claim corrupted; slots 6 and 7 claimed normally."""
    assert await claims.claim("job", 5, "job:5", 60) is ClaimState.CLAIMED
    await corruption.apply(raw, key)
    for slot in (6, 7):
        assert await claims.claim("job", slot, f"job:{slot}", 60) is ClaimState.CLAIMED
    return await snapshot(raw, key)


@pytest.mark.parametrize("corruption", SLOT_CORRUPTIONS, ids=repr)
async def test_slot_claim_refuses_a_bad_claim(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    claims = SlotClaims(manager.scripts, manager.keys)
    key = manager.keys.cron_slot("job", 5)
    found = await claimed_slot_gone_bad(claims, raw, key, corruption)
    for job_id in ("job:5", "job:5", "job:5-copy"):  # the retry and any other copy
        with pytest.raises(CorruptKeyError) as info:
            await claims.claim("job", 5, job_id, 60)
        assert_names(info.value, key)
    assert await snapshot(raw, key) == found
    assert await claims.claim("job", 8, "job:8", 60) is ClaimState.CLAIMED


@pytest.mark.parametrize("corruption", SLOT_CORRUPTIONS, ids=repr)
async def test_slot_finish_refuses_a_bad_claim(
    manager: CacheManager, raw: Redis, corruption: Corruption
) -> None:
    claims = SlotClaims(manager.scripts, manager.keys)
    key = manager.keys.cron_slot("job", 5)
    found = await claimed_slot_gone_bad(claims, raw, key, corruption)
    for _ in range(2):
        with pytest.raises(CorruptKeyError) as info:
            await claims.finish("job", 5, "job:5")
        assert_names(info.value, key)
    assert await snapshot(raw, key) == found
    assert await claims.finish("job", 6, "job:6")
    assert await raw.get(manager.keys.cron_slot("job", 6)) == "done:job:6"


@pytest.mark.parametrize("corruption", SLOT_CORRUPTIONS, ids=repr)
async def test_slot_cover_closes_the_other_owed_slots(
    manager: CacheManager, raw: Redis, corruption: Corruption, caplog: Any
) -> None:
    claims = SlotClaims(manager.scripts, manager.keys)
    key = manager.keys.cron_slot("job", 5)
    found = await claimed_slot_gone_bad(claims, raw, key, corruption)
    call = ([key], ["job:8"])
    with pytest.raises(CorruptKeyError) as info:
        await manager.scripts.run("slot_cover", *call)
    assert_names(info.value, key)
    with caplog.at_level(logging.WARNING):
        closed = await claims.cover("job", [5, 6, 7], "job:8")
    assert closed == [6, 7] and key in caplog.text
    assert await raw.get(manager.keys.cron_slot("job", 7)) == "done:job:8"
    assert await snapshot(raw, key) == found
