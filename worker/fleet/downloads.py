"""Download shards (``{dl:<n>}``, ``cache.download``): active downloads, pending updates and
how fresh each shard's event stream is.

Active counts are ``DownloadCache.count_active_by_shard`` (the shards' active indexes); the
rest is one pipelined round trip: the pending set's size, the stream's length and its newest
entry, whose id starts with the time it was added (ms), so its age needs no extra field.
"""

from __future__ import annotations

from redis.asyncio import Redis

from cache.codec import as_text
from cache.errors import translate_errors
from cache.keys import KeyBuilder
from cache.manager import CacheManager
from worker.fleet.models import ShardView


def entry_ms(entry_id: bytes | str) -> int | None:
    """The time part of a stream entry id ``<ms>-<seq>``."""
    head = as_text(entry_id).partition("-")[0]
    return int(head) if head.isdigit() else None


async def read_shards(
    client: Redis, keys: KeyBuilder, shards: int
) -> list[tuple[int, int, int | None]]:
    """(pending, events, newest event ms) of each shard."""
    with translate_errors(keys.download_events(0), operation="read download shards"):
        async with client.pipeline(transaction=False) as pipe:
            for shard in range(shards):
                pipe.zcard(keys.download_pending_set(shard))
                pipe.xlen(keys.download_events(shard))
                pipe.xrevrange(keys.download_events(shard), count=1)
            replies = await pipe.execute()
    out = []
    for shard in range(shards):
        pending, length, newest = replies[3 * shard : 3 * shard + 3]
        newest_ms = entry_ms(newest[0][0]) if newest else None
        out.append((int(pending), int(length), newest_ms))
    return out


async def read_downloads(manager: CacheManager, now_ms: int) -> list[ShardView]:
    active = await manager.download.count_active_by_shard()
    shards = await read_shards(manager.client, manager.keys, manager.config.download.shards)
    return [
        ShardView(
            shard=shard,
            active=active.get(shard, 0),
            pending=pending,
            events=events,
            newest_event_age_s=None
            if newest is None
            else round(max(0.0, (now_ms - newest) / 1000), 3),
        )
        for shard, (pending, events, newest) in enumerate(shards)
    ]
