"""The job queue's scripts (``queue_enqueue``, ``queue_claim``, ``queue_finish``) under
Dragonfly's rules, on both key layouts.

On ARQ's layout their keys share no hashtag (one queue instance, by design); on the sharded
layout every call's keys share its shard's hashtag. Every key they touch must be declared, and
they must run under Lua 5.4 returning only integers and strings. Checked here on every lane.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from cache.scripts import ScriptRunner, load_scripts
from jobs.client import enqueue_jobs
from jobs.wire.layout import QueueLayout
from tests.compat.lua54 import CommandKeys, Lua54Runner
from tests.compat.monitor import MonitorRecorder, violations
from tests.compat.resp import RespConnection
from tests.conftest import TestServer
from tests.support.layout import both_layouts
from worker.engine.claim import ClaimRequest, claim
from worker.engine.finish import Finish, finish

pytestmark = [pytest.mark.integration, pytest.mark.compat_selftest]

LAYOUTS = both_layouts(3)
IDS = ["x", "y", "z"]


def _tokens(ids: list[str]) -> list[bytes]:
    return [f"t-{j}".encode() for j in ids]


async def _round(raw: Redis, runner: ScriptRunner, layout: QueueLayout) -> None:
    """Enqueue three jobs, abort one, claim them and a missing id, finish them three ways."""
    sharded = layout.kind == "sharded"
    await enqueue_jobs(raw, [("noop", (), j) for j in IDS], layout=layout, scripts=runner)
    z = layout.for_job("z")
    await raw.zadd(z.abort, {"z": 1})
    requests: dict[int, list[str]] = {}
    for job_id in [*IDS, "missing"]:
        requests.setdefault(layout.shard_index(job_id), []).append(job_id)
    result = await claim(
        runner,
        [ClaimRequest(layout.shards[i], ids, _tokens(ids)) for i, ids in requests.items()],
        now_ms=10**13,
        lease_ms=5000,
        honour_aborts=True,
        single_hashtag=sharded,
    )
    claimed = {j.job_id: j for j in result.claimed}
    assert set(claimed) == set(IDS) and not result.failed
    assert [claimed[j].aborted for j in IDS] == [False, False, True]
    assert all(claimed[j].job_try == 1 and claimed[j].record for j in IDS)
    x, y = layout.for_job("x"), layout.for_job("y")
    y_score = await _score(raw, layout, "y")
    done, refused = await finish(
        runner,
        [
            Finish("x", x, b"t-x", None, True, b"r", 60_000),
            Finish("y", y, b"t-y", 60_000, False, incr_score_ms=500),
            Finish("z", z, b"stale", None, True, b"r", None),
        ],
        single_hashtag=sharded,
    )
    assert [d.done for d in done] == [True, True, False] and not refused
    assert await raw.get(x.result("x")) == "r" and not await raw.exists(x.job("x"))
    assert await _score(raw, layout, "y") == y_score + 500  # the retry's deferral
    assert 0 < await raw.pttl(y.in_progress("y")) <= 60_000
    assert await raw.get(z.in_progress("z")) == "t-z"  # refused: nothing changed


async def _score(raw: Redis, layout: QueueLayout, job_id: str) -> float:
    score = await raw.zscore(layout.for_job(job_id).queue, job_id)
    assert score is not None
    return float(score)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
async def test_queue_scripts_run_under_lua54_with_declared_keys_only(
    raw: Redis, layout: QueueLayout
) -> None:
    await _round(raw, Lua54Runner(raw), layout)
    executed = Lua54Runner.executed
    assert {"queue_enqueue", "queue_claim", "queue_finish"} <= executed


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
async def test_queue_scripts_touch_only_declared_keys(
    server: TestServer, raw: Redis, layout: QueueLayout
) -> None:
    host, _, port = server.addr.rpartition(":")
    recorder = MonitorRecorder(host, int(port))
    scripts = load_scripts()
    names = {s.sha: n for n, s in scripts.items()} | {s.source: n for n, s in scripts.items()}
    client = Redis.from_url(server.url)  # bytes, as the worker's queue client
    try:
        start = recorder.sync()
        await _round(raw, ScriptRunner(client), layout)
        end = recorder.sync()
        control = RespConnection(host, int(port))
        problems = violations(recorder.slice(start, end), CommandKeys(control), names)
        control.close()
    finally:
        recorder.close()
        await client.aclose()
    assert problems == []


async def test_batches_past_one_chunk_keep_every_id_in_order(
    server: TestServer, raw: Redis
) -> None:
    """Batches longer than the scripts' 500-argument chunks (ZMSCORE, MGET, DEL, ZREM), on the
    server's own Lua and under Lua 5.4: every id claimed and finished, replies in order."""
    layout = QueueLayout.arq()
    shard = layout.shards[0]
    ids = [f"j{i:04d}" for i in range(1203)]
    due = ids[::2]  # every other id is due: chunks of scores and of records differ
    record = b'{"t":1,"f":"noop","a":[],"k":{},"et":1}'
    async with raw.pipeline(transaction=False) as pipe:
        for i, job_id in enumerate(ids):
            pipe.set(shard.job(job_id), record + job_id.encode())
            pipe.zadd(shard.queue, {job_id: 1 if i % 2 == 0 else 10**13})
        await pipe.execute()
    client = Redis.from_url(server.url)
    try:
        for runner, part in ((Lua54Runner(client), ids[:600]), (ScriptRunner(client), ids[600:])):
            result = await claim(
                runner,
                [ClaimRequest(shard, part, _tokens(part))],
                now_ms=10**12,
                lease_ms=5000,
                honour_aborts=False,
                single_hashtag=False,
            )
            assert [j.job_id for j in result.claimed] == [j for j in part if j in set(due)]
            assert all(j.record == record + j.job_id.encode() for j in result.claimed)
        finishes = [Finish(j, shard, f"t-{j}".encode(), None, True, b"r", 60_000) for j in due]
        done, refused = await finish(ScriptRunner(client), finishes, single_hashtag=False)
    finally:
        await client.aclose()
    assert [d.done for d in done] == [True] * len(due) and not refused
    assert await raw.zcard(shard.queue) == len(ids) - len(due)
    assert not await raw.exists(*(shard.in_progress(j) for j in due))
