"""``jobs.shield.complete``: a step outlives cancellations, but only for its deadline."""

from __future__ import annotations

import asyncio
import time

import pytest

from jobs.shield import complete


async def test_uncancelled_step_returns_its_result_or_error() -> None:
    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    async def broken() -> int:
        raise RuntimeError("store gone")

    assert await complete(answer(), "answer") == 42
    with pytest.raises(RuntimeError, match="store gone"):
        await complete(broken(), "broken")


async def test_step_finishes_through_repeated_cancels_then_the_cancel_is_raised() -> None:
    done: list[str] = []

    async def step() -> None:
        await asyncio.sleep(0.2)
        done.append("step")

    async def caller() -> None:
        await complete(step(), "step")

    task = asyncio.create_task(caller())
    for _ in range(3):  # a bounded stop cancels again and again
        await asyncio.sleep(0.03)
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done == ["step"]


async def test_step_is_abandoned_at_its_deadline(caplog: pytest.LogCaptureFixture) -> None:
    async def stuck() -> None:
        await asyncio.sleep(30)

    start = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await complete(stuck(), "stuck step", cancelled=True, deadline_s=0.2)
    assert time.monotonic() - start < 1.0
    assert "stuck step abandoned 0.2 s after the cancellation" in caplog.text


async def test_failure_after_a_cancel_is_logged_and_the_cancel_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("store gone")

    with pytest.raises(asyncio.CancelledError):
        await complete(failing(), "hand-back", cancelled=True)
    assert "hand-back failed after the cancellation: RuntimeError: store gone" in caplog.text
