"""Send what many tasks ask for at about the same moment as one batch, without waiting.

The first request starts a flush; requests that arrive while that flush is on its way wait
for the next one, which then carries all of them. Under load the batches grow by themselves
(one store round trip serves every job that ended meanwhile); alone, a request goes out at
once, so no timer adds latency. Each caller gets its own reply or the batch's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 1000
"""Most items one flush sends (the rest go in the next one)."""


class MicroBatcher(Generic[T, R]):
    """Batches ``submit`` calls into calls of ``send(items) -> replies`` (same order)."""

    def __init__(
        self, send: Callable[[Sequence[T]], Awaitable[Sequence[R]]], max_batch: int = MAX_BATCH
    ) -> None:
        self._send = send
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        """``item``'s reply, sent in the next batch."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        # one round trip at a time: what arrives meanwhile waits for the next, bigger batch
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            live = [(item, f) for item, f in batch if not f.done()]
            if not live:
                continue
            try:
                replies = await self._send([item for item, _ in live])
            except BaseException as exc:
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.batches += 1
            self.items += len(live)
            for (_, future), reply in zip(live, replies, strict=True):
                if not future.done():
                    future.set_result(reply)
