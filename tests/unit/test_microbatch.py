"""``cache.microbatch.MicroBatcher``: one send per round trip, replies and errors per caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from cache.microbatch import MicroBatcher


class Sender:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.gate = asyncio.Event()

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail_on in items:
            raise ConnectionError("store gone")
        return [i * 10 for i in items]


async def test_requests_arriving_during_a_send_go_out_together() -> None:
    send = Sender()
    batcher = MicroBatcher(send)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)  # the first send is on its way
    rest = [asyncio.create_task(batcher.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    send.gate.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40]
    assert send.batches == [[1], [2, 3, 4]]
    assert (batcher.batches, batcher.items) == (2, 4)


async def test_an_error_reaches_every_caller_of_its_batch_only() -> None:
    send = Sender(fail_on=3)
    batcher = MicroBatcher(send, max_batch=2)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in (1, 2, 3, 4, 5)]
    await asyncio.sleep(0)
    send.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[:2] == [10, 20] and results[4] == 50
    assert all(isinstance(r, ConnectionError) for r in results[2:4])
    assert send.batches == [[1, 2], [3, 4], [5]]


async def test_a_cancelled_caller_is_left_out_and_the_others_still_get_replies() -> None:
    send = Sender()
    batcher = MicroBatcher(send)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    gone = asyncio.create_task(batcher.submit(2))
    kept = asyncio.create_task(batcher.submit(3))
    await asyncio.sleep(0)
    gone.cancel()
    send.gate.set()
    assert await first == 10 and await kept == 30
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert send.batches == [[1], [3]]
