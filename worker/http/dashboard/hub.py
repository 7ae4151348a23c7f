"""``EventHub``: ONE reader of the download event streams per dashboard process, fanned out.

The reader task follows every shard's stream with one blocking ``XREAD`` (``EventFollower``),
turns each read into one batch (a pre-encoded SSE frame whose id is the cursor after it, see
``cursor.py``), keeps the last ``replay_batches`` batches (at most ``replay_mb`` of frames)
for reconnects, and offers the batch
to every subscriber's bounded queue with ``put_nowait``. A full queue never blocks the reader
and never grows: that subscriber is marked ``dropped`` and told to resync (it reconnects with
``Last-Event-ID`` and resumes). Registering a subscriber and reading the cursor it starts at
happen in one step of the event loop, so a subscriber sees every batch after that cursor
exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from cache.download import EventFollower
from cache.errors import CacheError
from cache.manager import CacheManager
from worker.http.dashboard import cursor as cursors
from worker.http.dashboard.frames import item, progress_frame

log = logging.getLogger("seen.dashboard.hub")

ERROR_BACKOFF_S = (0.1, 0.5, 1.0, 2.0)
CLOSE_WITHIN_S = 2.0


@dataclass(frozen=True)
class Batch:
    cursor: str
    frame: bytes


@dataclass(eq=False)
class Subscriber:
    """One SSE client's bounded queue; ``dropped`` once it fell behind by a whole queue."""

    queue: asyncio.Queue[Batch | None]
    start: str
    number: int = 0
    dropped: bool = False
    delivered: int = field(default=0)

    def offer(self, batch: Batch) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.dropped = True
            # wake the consumer so it sees ``dropped`` even while its queue is full
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.get_nowait()
                self.queue.put_nowait(None)


class TooManyClients(Exception):
    """The dashboard already serves ``max_sse_clients`` streams."""


class EventHub:
    """Owner of the stream reader task: ``start()`` then ``aclose()`` (bounded)."""

    def __init__(
        self,
        manager: CacheManager,
        *,
        max_clients: int,
        client_queue: int,
        replay_batches: int,
        block_s: float,
        replay_bytes: int = 64 * 1024 * 1024,
        count: int = 500,
    ) -> None:
        self.manager = manager
        self.max_clients = max_clients
        self.client_queue = client_queue
        self.follower: EventFollower = manager.download.follower(
            block_ms=max(1, round(block_s * 1000)), count=count
        )
        self.keys = sorted(self.follower.streams, key=self.follower.streams.__getitem__)
        self.shards = len(self.keys)
        self.replay: deque[Batch] = deque(maxlen=replay_batches)
        self.replay_bytes = replay_bytes
        self._buffered = 0
        self.subscribers: set[Subscriber] = set()
        self.cursor = cursors.encode(["0-0"] * self.shards)
        self.batches = 0
        self.events = 0
        self.dropped = 0
        self.snapshots = 0
        self._registered = 0
        self._snapshot: tuple[int, asyncio.Task[bytes]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.follower.start()
        self.cursor = self._current()
        self._task = asyncio.create_task(self._run(), name="dashboard-event-hub")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(CLOSE_WITHIN_S):
                    await task
        self.end_streams()

    def end_streams(self) -> None:
        """Tell every open stream to finish (server shutdown); new ones may still come."""
        for sub in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueEmpty):
                while sub.queue.full():
                    sub.queue.get_nowait()
            sub.queue.put_nowait(None)
        self.subscribers.clear()

    # -- subscribers ------------------------------------------------------------------------
    def subscribe(self, last_id: str | None) -> tuple[Subscriber, list[Batch] | None]:
        """Register a client; returns it and the buffered batches after ``last_id``.

        ``None`` instead of a list: ``last_id`` is not in the buffer (absent, unknown or older);
        the caller then fills the gap up to ``sub.start`` from the streams or sends a snapshot.
        No await in here: the cursor read and the registration are one atomic step.
        """
        if len(self.subscribers) >= self.max_clients:
            raise TooManyClients(f"{self.max_clients} live streams already open")
        replay: list[Batch] | None = None
        if last_id is not None:
            if last_id == self.cursor:
                replay = []
            else:
                for i, batch in enumerate(self.replay):
                    if batch.cursor == last_id:
                        replay = list(self.replay)[i + 1 :]
                        break
        self._registered += 1
        sub = Subscriber(asyncio.Queue(self.client_queue), self.cursor, self._registered)
        self.subscribers.add(sub)
        return sub, replay

    async def snapshot(
        self, sub: Subscriber, read: Callable[[], Coroutine[Any, Any, bytes]]
    ) -> bytes:
        """The encoded active downloads for ``sub``, one store read shared by many clients.

        A read that *started after* ``sub`` registered sees every update up to ``sub.start``
        (the apply script writes the state and the stream entry in one step), so it is a valid
        snapshot for ``sub``: 100 browsers opening the page at once cost a few reads, not 100.
        """
        current = self._snapshot
        if current is None or current[0] <= sub.number:
            task = asyncio.create_task(read(), name="dashboard-snapshot")
            current = (self._registered + 1, task)
            self._snapshot = current
            self.snapshots += 1

            def forget(
                done: asyncio.Task[bytes], mine: tuple[int, asyncio.Task[bytes]] = current
            ) -> None:
                if self._snapshot is mine:
                    self._snapshot = None
                if not done.cancelled():
                    done.exception()  # retrieved: each waiter gets it from the shield below

            task.add_done_callback(forget)
        return await asyncio.shield(current[1])

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    # -- the reader -------------------------------------------------------------------------
    def _current(self) -> str:
        return cursors.encode([self.follower.positions.get(k, "0-0") for k in self.keys])

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                events = await self.follower.read()
                failures = 0
            except Exception as exc:  # the reader must outlive any one bad read
                delay = ERROR_BACKOFF_S[min(failures, len(ERROR_BACKOFF_S) - 1)]
                failures += 1
                if isinstance(exc, CacheError | OSError):
                    log.warning("event streams unreadable (%s); retrying in %.1fs", exc, delay)
                else:
                    log.exception("event stream read failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                continue
            if not events:
                continue
            self.publish(self._current(), [item(e.progress, e.id, e.shard) for e in events])

    def publish(self, cursor: str, items: list[dict[str, object]]) -> None:
        """Append one batch ending at ``cursor`` and offer it to every subscriber."""
        batch = Batch(cursor, progress_frame(cursor, items))
        self.cursor = cursor
        if len(self.replay) == self.replay.maxlen:
            self._buffered -= len(self.replay[0].frame)
        self.replay.append(batch)
        self._buffered += len(batch.frame)
        while self._buffered > self.replay_bytes and len(self.replay) > 1:
            self._buffered -= len(self.replay.popleft().frame)
        self.batches += 1
        self.events += len(items)
        gone = []
        for sub in self.subscribers:
            sub.offer(batch)
            if sub.dropped:
                gone.append(sub)
        for sub in gone:  # offered nothing more; its stream sends ``resync`` and ends
            self.subscribers.discard(sub)
            self.dropped += 1
