"""Distributed locks on a real server: tokens, fencing, mutual exclusion, waiting, renewal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from cache.config import CacheConfig
from cache.coordination import Lease, Lock, LockLost, LockTimeout, holder_of
from cache.errors import InvalidKeyError
from cache.manager import CacheManager

COORDINATION_SCRIPTS = ("lock_acquire", "lock_release", "lock_extend")


@pytest.fixture
async def second(cache_config: CacheConfig, raw: Redis) -> AsyncIterator[CacheManager]:
    """Another manager with its own pool: a second API server or worker."""
    async with await CacheManager.connect(cache_config) as mgr:
        yield mgr


async def test_acquire_release_roundtrip(manager: CacheManager, raw: Redis) -> None:
    lock = await manager.locks.try_acquire("job:nightly", ttl=5)
    assert lock is not None and lock.fence > 0 and lock.token
    assert await raw.get("seen:lock:{job:nightly}") == lock.token
    assert 4000 < await raw.pttl("seen:lock:{job:nightly}") <= 5000
    assert await manager.locks.try_acquire("job:nightly", ttl=5) is None
    assert await manager.locks.is_locked("job:nightly")
    assert await lock.release()
    assert not await manager.locks.is_locked("job:nightly")
    assert not await lock.release()  # second release: nothing to do


async def test_wrong_token_touches_nothing(manager: CacheManager, raw: Redis) -> None:
    lock = await manager.locks.try_acquire("res", ttl=10)
    assert lock is not None
    before = await raw.pttl("seen:lock:{res}")
    assert not await manager.locks.release("res", "not-the-token")
    assert not await manager.locks.extend("res", "not-the-token", ttl=60)
    assert not await manager.locks.release("res", "")
    assert await raw.get("seen:lock:{res}") == lock.token
    assert await raw.pttl("seen:lock:{res}") <= before  # the bogus extend did not add time


async def test_expired_token_is_refused_and_creates_nothing(
    manager: CacheManager, raw: Redis
) -> None:
    lock = await manager.locks.try_acquire("short", ttl=0.05)
    assert lock is not None
    await asyncio.sleep(0.1)
    assert not await lock.extend()
    assert lock.lost and lock.valid_for == 0
    assert not await lock.release()
    assert await raw.exists("seen:lock:{short}") == 0
    with pytest.raises(LockLost):
        lock.check()


async def test_fencing_counter_only_goes_up_and_never_expires(
    manager: CacheManager, raw: Redis
) -> None:
    fences = []
    for _ in range(5):
        lock = await manager.locks.try_acquire("fenced", ttl=5)
        assert lock is not None
        fences.append(lock.fence)
        assert await lock.release()
    assert fences == sorted(set(fences))  # strictly increasing (clock floor: not by one)
    clock = await raw.time()
    assert fences[-1] <= clock[0] * 1_000_000 + clock[1] + 5  # never ahead of the clock here
    assert await raw.pttl("seen:lock:{fenced}:fence") == -1
    assert await manager.locks.current_fence("fenced") == fences[-1]
    assert await manager.locks.current_fence("never-used") == 0
    # The counter is lost (e.g. a restart without persistence): tokens still go up.
    await raw.delete("seen:lock:{fenced}:fence")
    lock = await manager.locks.try_acquire("fenced", ttl=5)
    assert lock is not None and lock.fence > fences[-1]


async def test_mutual_exclusion_16_contenders_two_managers(
    manager: CacheManager, second: CacheManager, raw: Redis
) -> None:
    rounds = 4
    counter = "seen:test:counter"

    async def unsafe_increment(mgr: CacheManager) -> None:
        value = int(await mgr.service.get(counter) or 0)
        await asyncio.sleep(0.001)  # the window in which another writer interleaves
        await mgr.service.set(counter, value + 1)

    # Without the lock the read-modify-write loses increments: the test can fail.
    await asyncio.gather(*(unsafe_increment(m) for m in [manager, second] * 8))
    assert int(await raw.get(counter) or 0) < 16
    await raw.delete(counter)

    fences: list[int] = []

    async def contender(mgr: CacheManager) -> None:
        for _ in range(rounds):
            lock = await mgr.locks.acquire("counter", ttl=5, wait=20)
            try:
                fences.append(lock.fence)
                await unsafe_increment(mgr)
            finally:
                assert await lock.release()

    await asyncio.gather(*(contender(m) for m in [manager, second] * 8))
    assert int(await raw.get(counter) or 0) == 16 * rounds
    assert fences == sorted(fences) and len(set(fences)) == len(fences) == 16 * rounds


async def test_blocking_acquire_waits_for_release(
    manager: CacheManager, second: CacheManager
) -> None:
    holder = await manager.locks.try_acquire("busy", ttl=10)
    assert holder is not None

    async def release_soon() -> None:
        await asyncio.sleep(0.2)
        assert await holder.release()

    releaser = asyncio.create_task(release_soon())
    waiter = await second.locks.acquire("busy", ttl=10, wait=5)
    await releaser
    assert waiter.fence > holder.fence
    assert await waiter.release()


async def test_blocking_acquire_gets_an_abandoned_lock_after_its_lease(
    manager: CacheManager, second: CacheManager
) -> None:
    crashed = await manager.locks.try_acquire("abandoned", ttl=0.3)
    assert crashed is not None
    taken = await second.locks.acquire("abandoned", ttl=5, wait=5)
    assert taken.fence > crashed.fence


async def test_blocking_acquire_times_out(manager: CacheManager, second: CacheManager) -> None:
    holder = await manager.locks.try_acquire("held", ttl=10)
    assert holder is not None
    start = time.monotonic()
    with pytest.raises(LockTimeout, match="held") as info:
        await second.locks.acquire("held", wait=0.3)
    assert time.monotonic() - start >= 0.3
    assert info.value.key == "seen:lock:{held}"
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(LockTimeout):
        await second.locks.acquire("held", wait=0)  # one try
    assert (await second.stats()).extra["locks.timeouts"] == 2


async def test_hold_renews_across_three_ttls(
    manager: CacheManager, second: CacheManager, raw: Redis
) -> None:
    async with manager.locks.hold("renewed", ttl=0.5) as lock:
        for _ in range(16):  # 1.6 s = 3.2 x the TTL
            await asyncio.sleep(0.1)
            assert await second.locks.try_acquire("renewed", ttl=1) is None
            assert lock.valid_for > 0
        assert await raw.get("seen:lock:{renewed}") == lock.token
    assert await raw.exists("seen:lock:{renewed}") == 0
    assert (await manager.stats()).extra["locks.renewed"] >= 5


async def test_hold_releases_when_the_body_fails(manager: CacheManager, raw: Redis) -> None:
    with pytest.raises(ZeroDivisionError):
        async with manager.locks.hold("failing", ttl=5):
            _ = 1 / 0
    assert await raw.exists("seen:lock:{failing}") == 0


async def test_hold_cancels_the_body_when_taken_over(manager: CacheManager, raw: Redis) -> None:
    finished = False
    held: list[Lock] = []

    async def body() -> None:
        nonlocal finished
        async with manager.locks.hold("stolen", ttl=0.6) as lock:
            held.append(lock)
            await raw.set("seen:lock:{stolen}", "intruder", px=10_000)  # e.g. an operator
            await asyncio.sleep(3)
            finished = True

    with pytest.raises(LockLost, match="taken over") as info:
        await body()
    assert not finished and held[0].lost
    assert info.value.key == "seen:lock:{stolen}"
    assert await raw.get("seen:lock:{stolen}") == "intruder"  # we did not delete theirs
    assert (await manager.stats()).extra["locks.lost"] == 1


async def test_hold_reports_a_lease_lost_during_an_event_loop_pause(
    manager: CacheManager, raw: Redis
) -> None:
    async def body() -> None:
        async with manager.locks.hold("paused", ttl=0.1):
            time.sleep(0.25)  # a blocked loop: the renewer cannot run  # noqa: ASYNC251

    with pytest.raises(LockLost, match="before release"):
        await body()
    assert await raw.exists("seen:lock:{paused}") == 0


async def test_outside_cancellation_is_not_turned_into_lock_lost(
    manager: CacheManager, raw: Redis
) -> None:
    async def body() -> None:
        async with manager.locks.hold("cancelled", ttl=5):
            await asyncio.sleep(10)

    task = asyncio.create_task(body())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await raw.exists("seen:lock:{cancelled}") == 0  # released on the way out


async def test_compatibility_calls_on_session(manager: CacheManager, raw: Redis) -> None:
    lock_id, acquired = await manager.session.acquire_lock("seed")
    assert acquired and lock_id
    assert 29_000 < await raw.pttl("seen:lock:{seed}") <= 30_000  # settings ttl.lock
    assert await manager.session.acquire_lock("seed", ttl=1) == ("", False)
    assert not await manager.session.release_lock("seed", "wrong")
    assert await manager.session.release_lock("seed", lock_id)
    assert not await manager.session.release_lock("seed", lock_id)


async def test_a_lock_token_names_its_holder_and_only_the_whole_token_releases(
    cache_config: CacheConfig, raw: Redis
) -> None:
    async with await CacheManager.connect(cache_config, holder="worker-x-7-abcdef") as named:
        lock = await named.locks.acquire("report", ttl=30)
        stored = await raw.get("seen:lock:{report}")
        assert stored == lock.token
        holder = holder_of(lock.token)
        assert holder is not None and holder.who == "worker-x-7-abcdef"
        prefix = lock.token.rpartition(":")[0] + ":"
        assert not await named.locks.release("report", prefix)  # the name alone releases nothing
        assert await lock.release()


@pytest.mark.parametrize("name", ["", "has space", "glob*", "{tag}", "x" * 129])
async def test_bad_names_are_rejected(manager: CacheManager, raw: Redis, name: str) -> None:
    with pytest.raises(InvalidKeyError):
        await manager.locks.try_acquire(name)
    with pytest.raises(InvalidKeyError):
        await manager.session.acquire_lock(name)
    assert await raw.dbsize() == 0


async def test_bad_ttl_and_wait_are_rejected(manager: CacheManager, raw: Redis) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await manager.locks.try_acquire("x", ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        await manager.locks.acquire("x", ttl=-1)
    with pytest.raises(ValueError, match="wait"):
        await manager.locks.acquire("x", wait=-1)
    assert await raw.dbsize() == 0


async def test_lock_returns_are_integers(manager: CacheManager) -> None:
    runner = manager.scripts
    keys = [manager.keys.lock("ints"), manager.keys.lock_fence("ints")]
    assert type(await runner.run("lock_acquire", keys, ["t", 1000])) is int
    assert type(await runner.run("lock_acquire", keys, ["u", 1000])) is int  # refused: -pttl
    assert await runner.run("lock_extend", keys[:1], ["t", 1000]) == 1
    assert await runner.run("lock_release", keys[:1], ["u"]) == 0
    assert await runner.run("lock_release", keys[:1], ["t"]) == 1


async def test_the_lease_primitive_takes_renews_and_gives_back(
    manager: CacheManager, raw: Redis
) -> None:
    """The one lease behind locks, the fill lock, the run guard and job leases."""
    lease = Lease(manager.scripts)
    key = "seen:lock:{lease-test}"
    assert await lease.acquire(key, "a", 5000)
    assert not await lease.acquire(key, "b", 5000)
    assert not await lease.acquire(key, "a", 5000)  # plain acquire is not re-entrant
    assert await lease.acquire_reentrant(key, "a", 9000)  # the same token takes it again
    assert 8000 < await raw.pttl(key) <= 9000
    assert not await lease.acquire_reentrant(key, "b", 9000)
    assert not await lease.extend(key, "b", 20_000)
    assert await lease.extend(key, "a", 20_000)
    assert 19_000 < await raw.pttl(key) <= 20_000
    other = "seen:lock:{lease-other}"
    await raw.set(other, b"t2", px=1000)
    assert await lease.extend_many([(key, "a"), (other, b"t2"), (other, "x")], 30_000) == [
        True,
        True,
        False,
    ]
    assert await raw.pttl(other) > 20_000
    assert not await lease.release(key, "b")
    assert await lease.release(key, "a")
    assert await raw.exists(key) == 0
    assert not await lease.release(key, "a")


async def test_fencing_counter_behind_still_goes_up(manager: CacheManager, raw: Redis) -> None:
    """A failover to a replica that missed the last increments leaves the counter behind the
    tokens already handed out; the clock floor keeps new tokens above them."""
    first = await manager.locks.try_acquire("behind", ttl=5)
    assert first is not None and await first.release()
    await raw.set("seen:lock:{behind}:fence", first.fence - 3)  # the replica's older value
    again = await manager.locks.try_acquire("behind", ttl=5)
    assert again is not None and again.fence > first.fence
