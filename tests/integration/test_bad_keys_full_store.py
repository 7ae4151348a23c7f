"""A full store is no bad key: a script whose first write is refused for lack of memory answers
with the store's out-of-memory error and removes or resets nothing (its bad-key checks look at
``WRONGTYPE`` and counter errors only; docs/dragonfly.md, "Bad keys")."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from cache.errors import CacheOutOfMemoryError
from cache.manager import CacheManager
from tests.conftest import cache_config_for
from tests.reliability.test_store_full import fill_until_full, free_memory
from tests.support.corrupt import hget, hgetall
from tests.support.updates import upd
from worker.embedded import EmbeddedServer


@pytest.fixture
async def client(private_server: EmbeddedServer) -> AsyncIterator[Redis]:
    raw = Redis.from_url(private_server.url, decode_responses=True)
    yield raw
    await raw.aclose()


async def test_scripts_meeting_a_full_store_answer_out_of_memory_and_keep_every_key(
    private_server: EmbeddedServer, client: Redis
) -> None:
    async with await CacheManager.connect(cache_config_for(private_server.url)) as manager:
        dl = manager.download
        await dl.apply_many([upd("dl-1", 1), upd("dl-2", 1)])
        await dl.publish_many([upd("dl-1", 2)])
        first = await manager.locks.try_acquire("lock", ttl=30)
        assert first is not None and await first.release()
        shard = dl.layout.shard("dl-1")
        stats_key = manager.keys.download_stats(shard)
        before = await hgetall(client, stats_key)
        fence = await manager.locks.current_fence("lock")
        fillers = await fill_until_full(client)

        with pytest.raises(CacheOutOfMemoryError):  # not a CORRUPT outcome
            await dl.apply_many([upd("dl-1", 3), upd("dl-new", 1)])
        with pytest.raises(CacheOutOfMemoryError):
            await dl.set_progress(upd("dl-2", 2))
        with pytest.raises(CacheOutOfMemoryError):
            await dl.publish_many([upd("dl-2", 3)])
        with pytest.raises(CacheOutOfMemoryError):
            await manager.locks.try_acquire("lock", ttl=30)
        with pytest.raises(CacheOutOfMemoryError):
            await manager.ratelimit.check("u1", "act", 5, 60)
        with pytest.raises(CacheOutOfMemoryError):
            await manager.catalog.invalidate_user_catalog("u1")

        assert await hgetall(client, stats_key) == before  # no counter "reset"
        assert await manager.locks.current_fence("lock") == fence
        state = await dl.get_progress("dl-1")
        assert state is not None and state.seq == 1
        assert await hget(client, manager.keys.download_pending("dl-1", shard), "seq") == "2"
        await free_memory(client, fillers)
        assert (await dl.set_progress(upd("dl-2", 2))).name == "APPLIED"
