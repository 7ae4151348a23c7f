"""cleanup_stale on 100,000 stale entries: bounded batches, other clients keep being served.

How long each batch blocks the server is measured by the benchmark (bench_progress, slow log
of the same cleanup), not asserted here: a timing assertion fails whenever the machine is busy.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from cache.download import member, now_ms
from cache.download._layout import parse_member
from cache.manager import CacheManager
from tests.conftest import COMPAT_LUA54
from tests.support.updates import upd

STALE = 100_000
BATCH = 500


async def seed_stale(manager: CacheManager, raw: Redis, count: int, when: int) -> None:
    """Index entries of ``count`` idle downloads (their 30 s progress keys long expired), plus
    full state for some of them, as the apply script leaves it."""
    keys = manager.keys
    layout = manager.download.layout
    by_shard: dict[int, dict[str, int]] = {}
    for i in range(count):
        job = f"old-{i}"
        by_shard.setdefault(layout.shard(job), {})[member(job, f"u{i % 50}")] = when
    async with raw.pipeline(transaction=False) as pipe:
        for shard, members in by_shard.items():
            items = list(members.items())
            for start in range(0, len(items), 2000):
                pipe.zadd(keys.download_active(shard), dict(items[start : start + 2000]))
        await pipe.execute()
    with_state = [upd(f"old-{i}", 1, user=f"u{i % 50}") for i in range(0, count, 50)]
    for start in range(0, len(with_state), 500):
        await manager.download.bulk_update_progress(with_state[start : start + 500], now=when)


async def test_cleanup_of_100k_stale_entries_in_bounded_batches(
    manager: CacheManager, raw: Redis
) -> None:
    dl = manager.download
    await seed_stale(manager, raw, STALE, now_ms() - 2 * 3600 * 1000)
    await dl.bulk_update_progress([upd(f"fresh-{i}", 1) for i in range(100)])
    await manager.scripts.load_all()  # no NOSCRIPT round in the counts below
    await raw.config_resetstat()

    pings: list[float] = []
    done = asyncio.Event()

    async def other_client() -> None:
        while not done.is_set():
            start = time.perf_counter()
            await raw.ping()
            pings.append(time.perf_counter() - start)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(other_client())
    removed = await dl.cleanup_stale(3600, batch=BATCH)
    done.set()
    await watcher

    assert removed == STALE
    # What is left in the active indexes, read from the store: get_active_downloads would also
    # drop the fresh ones once their 30 s progress expired, as it did when the Lua 5.4 lane's
    # client-side scripts made this cleanup take longer than that.
    left: set[str] = set()
    for shard in dl.layout.all_shards():
        members = await raw.zrange(dl.layout.shard_keys[shard].active, 0, -1)
        left |= {parse_member(m)[0] for m in members}
    assert left == {f"fresh-{i}" for i in range(100)}
    assert await dl.get_progress("old-0") is None
    shard = dl.layout.shard("old-0")
    assert await raw.zscore(manager.keys.download_user_index("u0", shard), "old-0") is None
    # Bounded batches: each pop is one script call (one ZRANGEBYSCORE ... LIMIT BATCH), each
    # popped entry one small forget call; nothing else ran.
    stats = await raw.info("commandstats")
    pops = int(stats["cmdstat_zrangebyscore"]["calls"])
    assert STALE // BATCH <= pops <= STALE // BATCH + 2 * dl.layout.shards
    if not COMPAT_LUA54:  # that lane runs scripts client-side: no EVALSHA reaches the server
        assert int(stats["cmdstat_evalsha"]["calls"]) == pops + STALE
    assert int(stats["cmdstat_zrem"]["calls"]) >= pops  # one ZREM of a whole batch per pop
    if not COMPAT_LUA54:  # that lane's scripts hold this process's event loop while they run
        assert len(pings) > 10, "the other client was not served during the cleanup"
