"""Bounded cancellation: bodies that swallow cancellations are cancelled again, then abandoned."""

from __future__ import annotations

import asyncio
import time

import pytest

from cache.cancellation import cancel_and_wait, wait_bounded


async def _swallowing(times: int, ran: list[str]) -> None:
    """A body that catches the first ``times`` cancellations (or all until ``ran`` says
    "release") and goes on."""
    swallowed = 0
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed += 1
            if swallowed > times or "release" in ran:
                ran.append("cancelled")
                raise


async def test_a_body_that_swallows_cancellations_is_cancelled_again() -> None:
    ran: list[str] = []
    task = asyncio.create_task(_swallowing(3, ran))
    await asyncio.sleep(0)
    start = time.monotonic()
    assert await cancel_and_wait([task], 5.0, "swallower")
    assert task.cancelled() and ran == ["cancelled"]
    assert time.monotonic() - start < 1.0


async def test_a_body_that_never_ends_is_abandoned_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []
    task = asyncio.create_task(_swallowing(10**9, ran), name="stubborn")
    await asyncio.sleep(0)
    start = time.monotonic()
    assert not await cancel_and_wait([task], 0.5, "stubborn job")
    took = time.monotonic() - start
    assert 0.45 <= took < 1.0
    assert not task.done()
    lines = [r.getMessage() for r in caplog.records if "abandoned" in r.getMessage()]
    assert len(lines) == 1 and "stubborn" in lines[0]
    ran.append("release")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_done_tasks_are_skipped_and_an_empty_set_returns_at_once() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    assert await cancel_and_wait([done], 1.0, "nothing")
    assert await cancel_and_wait([], 1.0, "nothing")
    assert done.done() and not done.cancelled()


async def test_wait_bounded_returns_what_is_still_running() -> None:
    quick = asyncio.create_task(asyncio.sleep(0.01))
    slow = asyncio.create_task(asyncio.sleep(5))
    pending = await wait_bounded([quick, slow], 0.2)
    assert pending == {slow} and quick.done()
    slow.cancel()
