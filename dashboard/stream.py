"""The live-downloads SSE response body: catch-up first, then the hub's batches.

Catch-up, in order of preference, for a client that sends ``Last-Event-ID``:

1. the id is in the hub's replay buffer: the buffered batches after it;
2. it is older (or from before this process started): the gap is read from the streams
   themselves (``DownloadCache.events_between``: ``XRANGE`` from the client's position to the
   position the client was registered at) and sent as one ``progress`` frame, when every shard
   still holds the client's last entry (nothing was trimmed in between) and the gap is under
   ``gap_limit``;
3. otherwise (no id, unknown id, trimmed, too long): a ``snapshot`` of the active downloads
   (an entry that cannot be read is skipped and counted: the snapshot's ``unreadable``).

Live batches queue up from the moment of registration, so 1 and 2 give every entry exactly once.
Idle streams get a comment every ``heartbeat`` seconds so proxies keep them open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from cache.errors import CacheError
from cache.manager import CacheManager
from cache.unreadable import Unreadable
from dashboard import cursor as cursors
from dashboard.failures import describe_failure
from dashboard.frames import (
    PING_FRAME,
    RESYNC_FRAME,
    frame,
    hello_frame,
    item,
    progress_frame,
    snapshot_data,
)
from dashboard.hub import EventHub, Subscriber, TooManyClients


async def read_gap(
    manager: CacheManager, last: list[str], target: list[str], *, limit: int
) -> list[dict[str, Any]] | None:
    """The events after ``last`` up to ``target`` as progress items, or None when that is not
    exact (the streams are read by ``DownloadCache.events_between``, where their keys are)."""
    events = await manager.download.events_between(last, target, limit=limit)
    if events is None:
        return None
    return [item(e.progress, e.id, e.shard) for e in events]


async def catch_up(
    hub: EventHub,
    manager: CacheManager,
    unreadable: Callable[[], Unreadable],
    last_id: str | None,
    sub: Subscriber,
    *,
    gap_limit: int,
    snapshot_limit: int,
) -> bytes:
    """Step 2 or 3 of the module docstring, as one frame whose id is ``sub.start``."""
    start = sub.start
    last = cursors.decode(last_id, hub.shards)
    target = cursors.decode(start, hub.shards)
    if last is not None and target is not None:
        items = await read_gap(manager, last, target, limit=gap_limit)
        if items is not None:
            return progress_frame(start, items)

    async def read() -> bytes:
        skipped = unreadable()  # a bad entry is skipped and counted, never fails the snapshot
        rows = await manager.download.get_active_downloads(limit=snapshot_limit, unreadable=skipped)
        return snapshot_data(rows, skipped.total)

    return await hub.snapshot(sub, read)


async def live_events(
    hub: EventHub,
    manager: CacheManager,
    unreadable: Callable[[], Unreadable],
    last_id: str | None,
    *,
    heartbeat: float,
    gap_limit: int,
    snapshot_limit: int,
) -> AsyncIterator[bytes]:
    """The body of one ``text/event-stream`` response; ends when the client is dropped."""
    yield hello_frame()
    try:
        sub, replay = hub.subscribe(last_id)
    except TooManyClients as exc:
        yield frame("error", None, {"error": str(exc)})
        return
    try:
        if replay is not None:
            for batch in replay:
                yield batch.frame
        else:
            try:
                yield await catch_up(
                    hub,
                    manager,
                    unreadable,
                    last_id,
                    sub,
                    gap_limit=gap_limit,
                    snapshot_limit=snapshot_limit,
                )
            except CacheError as exc:
                yield frame("error", None, {"error": describe_failure(exc)[1]})
                return
        while True:
            try:
                async with asyncio.timeout(heartbeat):
                    got = await sub.queue.get()
            except TimeoutError:
                yield PING_FRAME
                continue
            if sub.dropped:
                yield RESYNC_FRAME
                return
            if got is None:  # the hub is closing
                return
            sub.delivered += 1
            yield got.frame
    finally:
        hub.unsubscribe(sub)
