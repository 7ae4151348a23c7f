"""The live-downloads SSE response body: catch-up first, then the hub's batches.

Catch-up, in order of preference, for a client that sends ``Last-Event-ID``:

1. the id is in the hub's replay buffer: the buffered batches after it;
2. it is older (or from before this process started): the gap is read from the streams
   themselves with ``XRANGE`` (from the client's position, inclusive, to the position the client
   was registered at) and sent as one ``progress`` frame, when every shard still holds the
   client's last entry (nothing was trimmed in between) and the gap is under ``gap_limit``;
3. otherwise (no id, unknown id, trimmed, too long): a ``snapshot`` of the active downloads
   (an entry that cannot be read is skipped and counted: the snapshot's ``unreadable``).

Live batches queue up from the moment of registration, so 1 and 2 give every entry exactly once.
Idle streams get a comment every ``heartbeat`` seconds so proxies keep them open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.asyncio import Redis

from cache.codec import as_text
from cache.download import progress_from_fields
from cache.errors import CacheError, translate_errors
from cache.manager import CacheManager
from cache.unreadable import Unreadable
from worker.http.dashboard import cursor as cursors
from worker.http.dashboard.failures import describe_failure
from worker.http.dashboard.frames import (
    PING_FRAME,
    RESYNC_FRAME,
    frame,
    hello_frame,
    item,
    progress_frame,
    snapshot_data,
)
from worker.http.dashboard.hub import EventHub, Subscriber, TooManyClients


async def read_gap(
    client: Redis,
    keys: list[str],
    last: list[str],
    target: list[str],
    *,
    limit: int,
    maxlen: int,
) -> list[dict[str, Any]] | None:
    """Entries after ``last`` up to ``target`` in every stream; None when that is not exact."""
    wanted = [(key, frm, to) for key, frm, to in zip(keys, last, target, strict=True) if frm != to]
    if any(cursors.entry_key(frm) > cursors.entry_key(to) for _, frm, to in wanted):
        return None  # from the future: the store was reset
    if not wanted:
        return []
    with translate_errors(None, operation="XRANGE events (resume)"):
        async with client.pipeline(transaction=False) as pipe:
            for key, frm, to in wanted:
                pipe.xrange(key, "-" if frm == "0-0" else frm, to, count=limit + 2)
                pipe.xlen(key)
            replies = await pipe.execute()
    out: list[tuple[tuple[int, int], dict[str, Any]]] = []
    shard_of = {key: n for n, key in enumerate(keys)}
    for n, (key, frm, _to) in enumerate(wanted):
        entries, length = replies[2 * n], int(replies[2 * n + 1])
        if frm == "0-0":
            if length >= maxlen:
                return None  # may have been trimmed since the stream was empty
        elif not entries or as_text(entries[0][0]) != frm:
            return None  # the client's last entry was trimmed: entries after it may be too
        else:
            entries = entries[1:]
        if len(entries) > limit or len(out) + len(entries) > limit:
            return None
        for raw_id, fields in entries:
            entry_id = as_text(raw_id)
            progress = progress_from_fields(fields)
            if progress is not None:
                out.append((cursors.entry_key(entry_id), item(progress, entry_id, shard_of[key])))
    out.sort(key=lambda pair: pair[0])
    return [i for _, i in out]


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
        items = await read_gap(
            manager.client,
            hub.keys,
            last,
            target,
            limit=gap_limit,
            maxlen=manager.config.download.events_maxlen,
        )
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
