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
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from cache.backoff import Backoff
from cache.download import EventFollower
from cache.errors import CacheError
from cache.manager import CacheManager
from dashboard import cursor as cursors
from dashboard.frames import item, progress_frame, snapshot_frame

log = logging.getLogger("seen.dashboard.hub")

ERROR_BACKOFF = (0.1, 2.0)
"""Seconds: first and largest wait between reads after a failed one (``cache.backoff``)."""
CLOSE_WITHIN_S = 2.0
SNAPSHOT_REUSE_S = 10.0
"""A snapshot this young is reused (with the batches since) instead of read again."""


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


@dataclass(frozen=True)
class Snapshot:
    """Encoded active downloads, read when the hub was at ``cursor``."""

    cursor: str
    registered: int
    """Clients registered when the read began (``Subscriber.number`` up to this)."""
    data: bytes
    at: float


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
        self._reading: asyncio.Task[Snapshot] | None = None
        self._cached: Snapshot | None = None
        self._replay_base = self.cursor
        """The cursor just before the oldest buffered batch."""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.follower.start()
        self.cursor = self._replay_base = self._current()
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
        replay = None if last_id is None else self.batches_between(last_id, self.cursor)
        self._registered += 1
        sub = Subscriber(asyncio.Queue(self.client_queue), self.cursor, self._registered)
        self.subscribers.add(sub)
        return sub, replay

    async def snapshot(
        self, sub: Subscriber, read: Callable[[], Coroutine[Any, Any, bytes]]
    ) -> bytes:
        """The catch-up bytes of a client that needs the whole state: snapshot (+ batches).

        At most one store read is in flight, and every client needing a snapshot shares it
        (or the last one, for ``SNAPSHOT_REUSE_S``): a read that began at hub cursor ``S`` sees
        every update up to ``S`` (the apply script writes the state and the stream entry in one
        step). A client registered before the read began gets it with its own start as id (its
        queue holds what came after); a client registered later gets it with id ``S`` followed
        by the buffered batches from ``S`` to its start. Either way nothing is missing, so 100
        browsers opening the page at once cost one read, not 100.
        """
        for _attempt in range(2):
            snap = self._cached
            if snap is None or time.monotonic() - snap.at > SNAPSHOT_REUSE_S:
                snap = await asyncio.shield(self._read_once(read))
            if sub.number <= snap.registered:
                return snapshot_frame(sub.start, snap.data)
            tail = self.batches_between(snap.cursor, sub.start)
            if tail is not None:
                return snapshot_frame(snap.cursor, snap.data) + b"".join(b.frame for b in tail)
            self._cached = None  # its cursor left the buffer: read again (now after sub began)
        raise RuntimeError("unreachable: a fresh read always covers a registered client")

    def _read_once(self, read: Callable[[], Coroutine[Any, Any, bytes]]) -> asyncio.Task[Snapshot]:
        """The read in flight, or a new one."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read(read), name="dashboard-snapshot")
            self.snapshots += 1
        return self._reading

    async def _read(self, read: Callable[[], Coroutine[Any, Any, bytes]]) -> Snapshot:
        cursor, registered = self.cursor, self._registered  # the state read below covers these
        snap = Snapshot(cursor, registered, await read(), time.monotonic())
        self._cached = snap
        return snap

    def batches_between(self, frm: str, to: str) -> list[Batch] | None:
        """Buffered batches after cursor ``frm`` up to ``to``; None when not all buffered."""
        if frm == to:
            return []
        out: list[Batch] = []
        found = frm == self._replay_base
        for batch in self.replay:
            if found:
                out.append(batch)
                if batch.cursor == to:
                    return out
            elif batch.cursor == frm:
                found = True
        return None

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    # -- the reader -------------------------------------------------------------------------
    def _current(self) -> str:
        return cursors.encode([self.follower.positions.get(k, "0-0") for k in self.keys])

    async def _run(self) -> None:
        backoff = Backoff(*ERROR_BACKOFF)
        while True:
            try:
                events = await self.follower.read()
                backoff.reset()
            except Exception as exc:  # the reader must outlive any one bad read
                delay = backoff.next()
                if isinstance(exc, CacheError | OSError):
                    log.warning("event streams unreadable (%s); retrying in %.1fs", exc, delay)
                else:
                    log.exception("event stream read failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                continue
            if not events:
                continue
            self.publish(self._current(), [item(e.progress, e.id, e.shard) for e in events])

    def _forget_oldest(self) -> None:
        oldest = self.replay.popleft()
        self._buffered -= len(oldest.frame)
        self._replay_base = oldest.cursor

    def publish(self, cursor: str, items: list[dict[str, object]]) -> None:
        """Append one batch ending at ``cursor`` and offer it to every subscriber."""
        batch = Batch(cursor, progress_frame(cursor, items))
        self.cursor = cursor
        if len(self.replay) == self.replay.maxlen:
            self._forget_oldest()
        self.replay.append(batch)
        self._buffered += len(batch.frame)
        while self._buffered > self.replay_bytes and len(self.replay) > 1:
            self._forget_oldest()
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
