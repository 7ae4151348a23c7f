"""``locks.hold()``: losing the lease cancels the body, every time, within a bound.

The body talks to the store non-stop (where a dropped cancellation used to let it run on for
its whole remaining time); the lock key is taken away from outside; the block must raise
``LockLost`` within one renewal period plus a small margin, in every trial.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from cache.config import LockSettings
from cache.coordination import LockLost
from cache.manager import CacheManager

TRIALS = 40
TTL_S = 0.3
BOUND_S = TTL_S + 0.7  # renewal comes after ttl/3; LockLost must follow soon after


async def _busy_body(manager: CacheManager, ran: list[float]) -> None:
    while True:
        await manager.service.set("seen:test:busy", "x")
        await manager.service.get("seen:test:busy")
        ran.append(time.monotonic())


async def _lose_while_busy(
    manager: CacheManager, raw: Redis, name: str, delay: float, ran: list[float], taken: list[float]
) -> None:
    async with asyncio.timeout(10), manager.locks.hold(name, ttl=TTL_S):
        body = asyncio.ensure_future(_busy_body(manager, ran))
        await asyncio.sleep(delay)
        taken.append(time.monotonic())
        await raw.set(f"seen:lock:{{{name}}}", "someone-else", px=5000)
        try:
            await body
        finally:
            body.cancel()


@pytest.mark.timeout(120)
async def test_lost_lease_cancels_a_store_busy_body_every_time(
    manager: CacheManager, raw: Redis
) -> None:
    manager.locks.settings = LockSettings(renew_fraction=1 / 3)
    took: list[float] = []
    for trial in range(TRIALS):
        ran: list[float] = []
        taken: list[float] = []
        delay = 0.01 + (trial % 7) * 0.005
        with pytest.raises(LockLost):
            await _lose_while_busy(manager, raw, f"busy-{trial}", delay, ran, taken)
        took.append(time.monotonic() - taken[0])
        late = [t for t in ran if t > taken[0] + BOUND_S]
        assert not late, f"trial {trial}: the body ran {late[-1] - taken[0]:.2f}s after the loss"
    assert max(took) <= BOUND_S, f"LockLost came after {max(took):.2f}s (bound {BOUND_S}s)"


async def _swallow_once(manager: CacheManager, raw: Redis, swallowed: list[str]) -> None:
    async with asyncio.timeout(10), manager.locks.hold("swallower", ttl=TTL_S):
        await raw.delete("seen:lock:{swallower}")
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append("once")


async def test_a_body_that_swallows_the_first_cancellation_is_cancelled_again(
    manager: CacheManager, raw: Redis
) -> None:
    swallowed: list[str] = []
    start = time.monotonic()
    with pytest.raises(LockLost):
        await _swallow_once(manager, raw, swallowed)
    assert swallowed == ["once"]
    assert time.monotonic() - start < 2.0


async def test_an_outside_cancellation_is_not_turned_into_lock_lost(
    manager: CacheManager, raw: Redis
) -> None:
    async def holder() -> None:
        async with manager.locks.hold("outside", ttl=5):
            await asyncio.sleep(10)

    task = asyncio.create_task(holder())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await raw.exists("seen:lock:{outside}")  # released on the way out
