"""Property: however enqueue, batch claim, batch finish, retry, lease expiry and abort
interleave across two workers, every job ends with exactly one final result, written by the
run that held its lease, and nothing of it is left behind (real store, ``worker.engine``)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from tests.conftest import TestServer
from worker.engine.claim import claim_batch
from worker.engine.finish import Finish, Finisher

pytestmark = pytest.mark.timeout(180)

QUEUE = "arq:queue"
WORKERS = 2

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
    due = [x.decode() for x in await client.zrangebyscore(QUEUE, "-inf", "+inf", start=0, num=5)]
    wanted = []
    for job_id in due:
        model.tokens += 1
        wanted.append((job_id, f"w{worker}:{model.tokens}".encode()))
    claimed = await claim_batch(
        client, QUEUE, wanted, now_ms=2**40, lease_ms=60_000, honour_aborts=True
    )
    for job in claimed:
        assert job.job_id not in model.holder, f"{job.job_id} claimed while held"
        model.claims[job.job_id] = model.claims.get(job.job_id, 0) + 1
        assert job.job_try == model.claims[job.job_id]
        assert json.loads(job.record or b"")["f"] == "noop"
        assert job.aborted == (job.job_id in model.aborts)
        model.aborts.discard(job.job_id)
        model.holder[job.job_id] = (worker, job.token)
        model.believed[worker][job.job_id] = job.token
        if job.aborted:  # the engine fails it at once (aborted before start)
            await _finish(Finisher(client, QUEUE), model, worker, [job.job_id], over=True)
    unclaimed = {j for j, _ in wanted} - {c.job_id for c in claimed}
    assert unclaimed <= set(model.holder)  # only held jobs are refused


async def _finish(
    finisher: Finisher, model: Model, worker: int, ids: list[str], *, over: bool
) -> None:
    finishes = [
        Finish(j, model.believed[worker][j], None, over, b"r:" + model.believed[worker][j], 60_000)
        for j in ids
    ]
    accepted = await asyncio.gather(*(finisher.submit(f) for f in finishes))
    for job_id, ok in zip(ids, accepted, strict=True):
        token = model.believed[worker].pop(job_id)
        assert ok == (model.holder.get(job_id) == (worker, token)), f"{job_id}: token guard"
        if ok:
            del model.holder[job_id]
            if over:
                model.finals.setdefault(job_id, []).append(token)


async def _scenario(url: str, steps: list[Op]) -> None:
    client = Redis.from_url(url)
    await client.flushdb()
    model = Model()
    finisher = Finisher(client, QUEUE)
    try:
        for kind, worker, pick in steps:
            mine = sorted(model.believed[worker])
            if kind == "enqueue":
                job_id = f"j{len(model.enqueued)}"
                record = {"t": 0, "f": "noop", "a": [], "k": {}, "et": 1}
                await client.set(f"arq:job:{job_id}", json.dumps(record))
                await client.zadd(QUEUE, {job_id: 1})
                model.enqueued.append(job_id)
            elif kind == "claim":
                await _claim(client, model, worker)
            elif kind in ("complete", "retry") and mine:
                job_id = mine[pick % len(mine)]
                await _finish(finisher, model, worker, [job_id], over=kind == "complete")
            elif kind == "finish_all" and mine:
                await _finish(finisher, model, worker, mine, over=True)
            elif kind == "expire" and model.holder:
                job_id = sorted(model.holder)[pick % len(model.holder)]
                await client.delete(f"arq:in-progress:{job_id}")  # the lease ran out
                del model.holder[job_id]
            elif kind == "abort" and model.enqueued:
                job_id = model.enqueued[pick % len(model.enqueued)]
                if job_id not in model.finals and job_id not in model.holder:
                    await client.zadd("arq:abort", {job_id: 1})
                    model.aborts.add(job_id)
        # drain: stale beliefs are dropped (their finishes are refused), worker 0 ends the rest
        for worker in range(WORKERS):
            await _finish(finisher, model, worker, sorted(model.believed[worker]), over=True)
        for _ in range(len(model.enqueued) + 2):
            for job_id in list(model.holder):
                await client.delete(f"arq:in-progress:{job_id}")
                del model.holder[job_id]
            await _claim(client, model, 0)
            await _finish(finisher, model, 0, sorted(model.believed[0]), over=True)
        for job_id in model.enqueued:
            assert len(model.finals.get(job_id, [])) == 1, f"{job_id}: {model.finals.get(job_id)}"
            result = await client.get(f"arq:result:{job_id}")
            assert result == b"r:" + model.finals[job_id][0]
            assert not await client.exists(
                f"arq:job:{job_id}", f"arq:retry:{job_id}", f"arq:in-progress:{job_id}"
            )
        assert await client.zcard(QUEUE) == 0
    finally:
        await client.aclose()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops)
def test_every_job_ends_with_exactly_one_result(server: TestServer, steps: list[Op]) -> None:
    asyncio.run(_scenario(server.url, steps))
