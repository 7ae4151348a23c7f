"""Coalescing under concurrency: 8 producers x 200 downloads, 2 worker processes.

Producers race on the same downloads with interleaved sequence numbers (producer ``p`` sends
``k * 8 + p + 1`` in round ``k``), rounds in increasing order like real emitters but downloads
shuffled within a round, some updates sent twice and some late, with single and batched
publishes. While they run, a sampler checks the contract atomically: at most
one not-yet-started drain job per shard (so at most one pending apply job per download). After
they stop and the queue drains, every download holds its highest-seq update.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from redis.asyncio import Redis

from cache.manager import CacheManager
from jobs.client import ProgressPublisher
from tests.conftest import COMPAT_LUA54, LUA54_SERIAL, TestServer, cache_config_for
from tests.support.processes import ArqWorkerProcess
from tests.support.updates import upd
from tests.support.waiting import wait_until

PRODUCERS = 8
DOWNLOADS = 200
ROUNDS = 25  # updates per producer per download

# Test-only probe (not shipped): queued job ids whose job has not started, read atomically.
DRAIN_PREFIX = "progress-drain:"
NOT_STARTED = """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', 'arq:in-progress:' .. id) == 0 then out[#out + 1] = id end
end
return out
"""


async def produce(publisher: ProgressPublisher, index: int, seed: int) -> int:
    rng = random.Random(seed)
    updates = []
    for k in range(ROUNDS):
        seq = k * PRODUCERS + index + 1
        round_ = [upd(f"dl-{d}", seq, user=f"u{d % 7}", done=seq) for d in range(DOWNLOADS)]
        rng.shuffle(round_)
        updates += round_ + rng.sample(round_, 10)  # duplicates
    for _ in range(len(updates) // 20):  # some updates overtaken by later ones
        i = rng.randrange(len(updates) - 300)
        j = i + rng.randrange(1, 300)
        updates[i], updates[j] = updates[j], updates[i]
    sent = 0
    while sent < len(updates):
        size = rng.choice((1, 1, 5, 20, 60))
        chunk = updates[sent : sent + size]
        if size == 1:
            await publisher.publish(chunk[0])
        else:
            await publisher.publish_many(chunk)
        sent += len(chunk)
    return sent


async def sample(raw: Redis, stop: asyncio.Event, worst: Counter[str]) -> int:
    """Track the most not-started drain jobs seen at once, per shard and in the queue."""
    samples = 0
    while not stop.is_set():
        waiting = await raw.eval(NOT_STARTED, 1, "arq:queue")  # type: ignore[misc]
        # drain jobs only (progress-drain:<shard>:<hex>): a periodic job's id, due at a full
        # minute, once counted as a shard of its own
        drains = [j for j in waiting if j.startswith(DRAIN_PREFIX)]
        per_shard = Counter(job_id.split(":")[1] for job_id in drains)
        for shard, count in per_shard.items():
            worst[shard] = max(worst[shard], count)
        worst["queue"] = max(worst["queue"], await raw.zcard("arq:queue"))
        samples += 1
        await asyncio.sleep(0.005)
    return samples


@pytest.mark.skipif(COMPAT_LUA54, reason=LUA54_SERIAL)
async def test_coalescing_with_concurrent_producers_and_two_workers(
    server: TestServer, raw: Redis
) -> None:
    # Production-like timeouts: the machine is busy with two workers and eight producers.
    config = cache_config_for(server.url, connect_timeout=2.0, socket_timeout=5.0, retries=3)
    async with await CacheManager.connect(config) as manager:
        await run(server, manager, raw)


async def run(server: TestServer, manager: CacheManager, raw: Redis) -> None:
    with ArqWorkerProcess(server.url), ArqWorkerProcess(server.url):
        publishers = [ProgressPublisher(manager) for _ in range(PRODUCERS)]
        stop = asyncio.Event()
        worst: Counter[str] = Counter()
        sampler = asyncio.create_task(sample(raw, stop, worst))
        sent = await asyncio.gather(*(produce(p, i, seed=i) for i, p in enumerate(publishers)))

        async def drained() -> bool:
            return await manager.download.pending_count() == 0 and not await raw.zcard("arq:queue")

        try:
            await wait_until(drained, 30, "the queue to drain")
        except AssertionError:
            left = await manager.download.pending_count()
            raise AssertionError(f"not drained: {left} updates pending, a lost schedule") from None
        stop.set()
        samples = await sampler

    highest = ROUNDS * PRODUCERS
    states = await manager.download.get_many([f"dl-{d}" for d in range(DOWNLOADS)])
    wrong = {
        f"dl-{d}": s.seq if s else None for d, s in enumerate(states) if not s or s.seq != highest
    }
    assert not wrong, f"downloads not at their highest seq {highest}: {wrong}"
    assert all(s is not None and s.bytes_done == highest for s in states)

    shard_worst = {k: v for k, v in worst.items() if k != "queue"}
    assert samples > 10 and shard_worst, "the sampler saw no drain job"
    assert max(shard_worst.values()) == 1, f"more than one pending drain in a shard: {shard_worst}"
    assert worst["queue"] <= 3 * manager.download.layout.shards < DOWNLOADS

    stats = await manager.download.stats()
    published = sum(sent)
    assert stats["scheduled"] == sum(p.enqueued for p in publishers)
    assert stats["applied"] < published // 4, stats  # coalescing happened
    puts = stats["scheduled"] + stats["rescheduled"] + stats["coalesced"] + stats["ignored"]
    assert puts == published
