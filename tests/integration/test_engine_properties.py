"""Property: however enqueue, batch claim, batch finish, retry, lease expiry and abort
interleave across two workers, every job ends with exactly one final result, written by the
run that held its lease, and nothing of it is left behind (real store, ``worker.engine``), on
ARQ's key layout and on the sharded one."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from cache.scripts import ScriptRunner
from jobs.wire.layout import QueueLayout
from tests.conftest import TestServer
from tests.support.layout import both_layouts
from tests.support.queue import queue_client
from worker.engine.claim import ClaimRequest, claim
from worker.engine.finish import Finish, finish

pytestmark = pytest.mark.timeout(240)

WORKERS = 2
LAYOUTS: dict[str, QueueLayout] = {layout.kind: layout for layout in both_layouts(3)}

Op = tuple[str, int, int]
KINDS = ["enqueue"] * 3 + ["claim"] * 3 + ["complete"] * 2 + ["expire"] * 2
KINDS += ["retry", "finish_all", "abort"]
ops = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, WORKERS - 1), st.integers(0, 7)),
    min_size=4,
    max_size=50,
)


@dataclass
class Model:
    layout: QueueLayout
    scripts: ScriptRunner
    enqueued: list[str] = field(default_factory=list)
    holder: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    """The run whose token the store holds (per job)."""
    believed: list[dict[str, bytes]] = field(default_factory=lambda: [{} for _ in range(WORKERS)])
    """What each worker thinks it holds (stale after an expiry)."""
    claims: dict[str, int] = field(default_factory=dict)
    finals: dict[str, list[bytes]] = field(default_factory=dict)
    aborts: set[str] = field(default_factory=set)
    tokens: int = 0


async def _claim(client: Redis, model: Model, worker: int) -> None:
    layout = model.layout
    requests = []
    for shard in layout.shards:
        due = await client.zrangebyscore(shard.queue, "-inf", "+inf", start=0, num=5)
        ids = [x.decode() for x in due]
        tokens = []
        for _ in ids:
            model.tokens += 1
            tokens.append(f"w{worker}:{model.tokens}".encode())
        requests.append(ClaimRequest(shard, ids, tokens))
    result = await claim(
        model.scripts,
        requests,
        now_ms=2**40,
        lease_ms=60_000,
        honour_aborts=True,
        single_hashtag=layout.kind == "sharded",
    )
    assert not result.failed
    for job in result.claimed:
        assert job.job_id not in model.holder, f"{job.job_id} claimed while held"
        assert job.shard is layout.for_job(job.job_id)
        model.claims[job.job_id] = model.claims.get(job.job_id, 0) + 1
        assert job.job_try == model.claims[job.job_id]
        assert json.loads(job.record or b"")["f"] == "noop"
        assert job.aborted == (job.job_id in model.aborts)
        model.aborts.discard(job.job_id)
        model.holder[job.job_id] = (worker, job.token)
        model.believed[worker][job.job_id] = job.token
        if job.aborted:  # the engine fails it at once (aborted before start)
            await _finish(model, worker, [job.job_id], over=True)
    wanted = {j for r in requests for j in r.ids}
    unclaimed = wanted - {c.job_id for c in result.claimed}
    assert unclaimed <= set(model.holder)  # only held jobs are refused


async def _finish(model: Model, worker: int, ids: list[str], *, over: bool) -> None:
    layout = model.layout
    finishes = []
    for j in ids:
        token = model.believed[worker][j]
        result = b"r:" + token
        finishes.append(Finish(j, layout.for_job(j), token, None, over, result, 60_000))
    done, refused = await finish(model.scripts, finishes, single_hashtag=layout.kind == "sharded")
    assert not refused
    accepted = {d.finish.job_id: d.done for d in done}
    for job_id in ids:
        token = model.believed[worker].pop(job_id)
        ok = accepted[job_id]
        assert ok == (model.holder.get(job_id) == (worker, token)), f"{job_id}: token guard"
        if ok:
            del model.holder[job_id]
            if over:
                model.finals.setdefault(job_id, []).append(token)


async def _scenario(url: str, layout: QueueLayout, steps: list[Op]) -> None:
    client = queue_client(url, layout)
    await client.flushdb()
    model = Model(layout, ScriptRunner(client))
    try:
        for kind, worker, pick in steps:
            mine = sorted(model.believed[worker])
            if kind == "enqueue":
                job_id = f"j{len(model.enqueued)}"
                shard = layout.for_job(job_id)
                record = {"t": 0, "f": "noop", "a": [], "k": {}, "et": 1}
                await client.set(shard.job(job_id), json.dumps(record))
                await client.zadd(shard.queue, {job_id: 1})
                model.enqueued.append(job_id)
            elif kind == "claim":
                await _claim(client, model, worker)
            elif kind in ("complete", "retry") and mine:
                job_id = mine[pick % len(mine)]
                await _finish(model, worker, [job_id], over=kind == "complete")
            elif kind == "finish_all" and mine:
                await _finish(model, worker, mine, over=True)
            elif kind == "expire" and model.holder:
                job_id = sorted(model.holder)[pick % len(model.holder)]
                await client.delete(layout.for_job(job_id).in_progress(job_id))  # ran out
                del model.holder[job_id]
            elif kind == "abort" and model.enqueued:
                job_id = model.enqueued[pick % len(model.enqueued)]
                if job_id not in model.finals and job_id not in model.holder:
                    await client.zadd(layout.for_job(job_id).abort, {job_id: 1})
                    model.aborts.add(job_id)
        # drain: stale beliefs are dropped (their finishes are refused), worker 0 ends the rest
        for worker in range(WORKERS):
            await _finish(model, worker, sorted(model.believed[worker]), over=True)
        for _ in range(len(model.enqueued) + 2):
            for job_id in list(model.holder):
                await client.delete(layout.for_job(job_id).in_progress(job_id))
                del model.holder[job_id]
            await _claim(client, model, 0)
            await _finish(model, 0, sorted(model.believed[0]), over=True)
        for job_id in model.enqueued:
            shard = layout.for_job(job_id)
            assert len(model.finals.get(job_id, [])) == 1, f"{job_id}: {model.finals.get(job_id)}"
            result = await client.get(shard.result(job_id))
            assert result == b"r:" + model.finals[job_id][0]
            assert not await client.exists(
                shard.job(job_id), shard.retry(job_id), shard.in_progress(job_id)
            )
        for shard in layout.shards:
            assert await client.zcard(shard.queue) == 0
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops)
def test_every_job_ends_with_exactly_one_result(
    server: TestServer, kind: str, steps: list[Op]
) -> None:
    asyncio.run(_scenario(server.url, LAYOUTS[kind], steps))
