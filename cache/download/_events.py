"""Live progress events: every applied update is appended to its shard's capped stream.

``EventFollower`` reads all shard streams with one blocking XREAD, remembering its position in
each, so no event between two reads is missed. On a Redis Cluster the shards live in
different hash slots: one XREAD per slot group instead (``_read_per_slot``). A follower that
falls behind by more than the stream cap (``download.events_maxlen`` per shard) skips the
trimmed entries; the next events of each download carry its full state, so a view catches up
by itself. Entries have the same fields as the progress hash (docs/wire-format.md) plus
``job``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from cache.cluster import is_cluster, slot_groups
from cache.codec import as_text
from cache.download._layout import DownloadLayout
from cache.download._models import DownloadProgress, progress_from_fields
from cache.errors import translate_errors

START = "0-0"


def entry_key(entry_id: str) -> tuple[int, int]:
    """An entry id ``<ms>-<n>`` as a tuple that orders like the stream."""
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


async def read_between(
    client: Redis,
    layout: DownloadLayout,
    last: list[str],
    target: list[str],
    *,
    limit: int,
    maxlen: int,
) -> list[ProgressEvent] | None:
    """Every shard's entries after ``last`` up to ``target`` (positions per shard, in shard
    order; ``0-0`` for an empty stream), oldest first; None when that cannot be told exactly:
    a position from the future (the store was reset), an entry trimmed in between (the
    shard's ``last`` entry is gone, or an empty stream has since filled to its cap), or more
    than ``limit`` entries. One pipelined round trip (XRANGE and XLEN per shard)."""
    keys = [layout.keys.download_events(s) for s in layout.all_shards()]
    wanted = [
        (n, frm, to) for n, (frm, to) in enumerate(zip(last, target, strict=True)) if frm != to
    ]
    if any(entry_key(frm) > entry_key(to) for _, frm, to in wanted):
        return None
    if not wanted:
        return []
    with translate_errors(None, operation="XRANGE events (resume)"):
        async with client.pipeline(transaction=False) as pipe:
            for n, frm, to in wanted:
                pipe.xrange(keys[n], "-" if frm == START else frm, to, count=limit + 2)
                pipe.xlen(keys[n])
            replies = await pipe.execute()
    out: list[ProgressEvent] = []
    for i, (n, frm, _to) in enumerate(wanted):
        entries, length = replies[2 * i], int(replies[2 * i + 1])
        if frm == START:
            if length >= maxlen:
                return None  # may have been trimmed since the stream was empty
        elif not entries or as_text(entries[0][0]) != frm:
            return None  # the last entry seen was trimmed: entries after it may be too
        else:
            entries = entries[1:]
        if len(entries) > limit or len(out) + len(entries) > limit:
            return None
        for raw_id, fields in entries:
            progress = progress_from_fields(fields)
            if progress is not None:
                out.append(ProgressEvent(as_text(raw_id), n, progress))
    out.sort(key=lambda e: entry_key(e.id))
    return out


@dataclass(frozen=True)
class ProgressEvent:
    """One stream entry: its id (``<ms>-<n>``, ordered within a shard) and the new state."""

    id: str
    shard: int
    progress: DownloadProgress


class EventFollower:
    """Follows every shard's event stream: ``start()``, then ``read()`` in a loop."""

    def __init__(
        self, client: Redis, layout: DownloadLayout, *, block_ms: int = 1000, count: int = 500
    ) -> None:
        self.client = client
        self.block_ms = block_ms
        self.count = count
        self.streams = {layout.keys.download_events(s): s for s in layout.all_shards()}
        self.positions: dict[str, str] = {}

    async def start(self, *, from_beginning: bool = False) -> None:
        """Position at the end of every stream (or at its beginning)."""
        if from_beginning:
            self.positions = dict.fromkeys(self.streams, START)
            return
        with translate_errors(None, operation="XREVRANGE events"):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in self.streams:
                    pipe.xrevrange(key, "+", "-", count=1)
                tails = await pipe.execute()
        self.positions = {
            key: (tail[0][0].decode() if tail else START)
            for key, tail in zip(self.streams, tails, strict=True)
        }

    async def read(self, block_ms: int | None = None) -> list[ProgressEvent]:
        """Events after the current positions, waiting up to ``block_ms`` (0 = do not wait)."""
        if not self.positions:
            await self.start()
        block = self.block_ms if block_ms is None else block_ms
        with translate_errors(None, operation="XREAD events"):
            if is_cluster(self.client):
                reply = await self._read_per_slot(block)
            else:
                reply = await self.client.xread(
                    streams=dict(self.positions),  # type: ignore[arg-type]
                    count=self.count,
                    block=block or None,
                )
        events: list[ProgressEvent] = []
        for raw_key, entries in reply or []:
            key = as_text(raw_key)
            shard = self.streams[key]
            for raw_id, fields in entries:
                entry_id = raw_id.decode()
                self.positions[key] = entry_id
                progress = progress_from_fields(fields)
                if progress is not None:
                    events.append(ProgressEvent(entry_id, shard, progress))
        return events

    def _xread_args(self, keys: list[str], block: int | None) -> list[str | int]:
        args: list[str | int] = ["XREAD", "COUNT", self.count]
        if block:
            args += ["BLOCK", block]
        return [*args, "STREAMS", *keys, *(self.positions[k] for k in keys)]

    async def _xread(self, keys: list[str], block: int) -> Any:
        command = self.client.execute_command
        return await command(*self._xread_args(keys, block))  # type: ignore[no-untyped-call]

    async def _read_per_slot(self, block: int) -> list[Any]:
        """All slot groups without waiting, in one pipelined round trip; when nothing is
        there and ``block`` allows, a blocking XREAD per group until the first one answers
        (the others are cancelled: XREAD reads without consuming, so nothing is lost)."""
        streams = list(self.positions)
        groups = [[streams[i] for i in ix] for ix in slot_groups(streams)]
        async with self.client.pipeline(transaction=False) as pipe:
            for keys in groups:
                pipe.execute_command(*self._xread_args(keys, None))
            replies: list[Any] = await pipe.execute()
        found = [entry for reply in replies for entry in reply or []]
        if found or not block:
            return found
        waits = [asyncio.ensure_future(self._xread(keys, block)) for keys in groups]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return [entry for task in done for entry in task.result() or []]
