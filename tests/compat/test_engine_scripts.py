"""The engine's batch scripts (``worker/engine/*.lua``) under Dragonfly's rules.

They take a key list whose length follows the batch, over ARQ's prefixes (no common hashtag:
the queue store is one instance). Every key they touch must still be declared, and they must
run under Lua 5.4 returning only integers and strings. Both are checked here on every lane.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from cache.scripts import Script, ScriptArg
from tests.compat.lua54 import CommandKeys, Lua54Runner
from tests.compat.monitor import MonitorRecorder, violations
from tests.compat.resp import RespConnection
from tests.conftest import TestServer
from worker.engine.claim import claim_batch
from worker.engine.finish import Finish, Finisher
from worker.engine.scripts import CLAIM, FINISH, QueueScript

pytestmark = [pytest.mark.integration, pytest.mark.compat_selftest]

RECORD = b'{"t":1,"f":"noop","a":[],"k":{},"et":1}'


async def _queue(raw: Redis, ids: list[str], score: int = 1) -> None:
    for job_id in ids:
        await raw.set(f"arq:job:{job_id}", RECORD)
        await raw.zadd("arq:queue", {job_id: score})


def _claim_call(ids: list[str], now: int) -> tuple[list[str], list[ScriptArg]]:
    keys = ["arq:queue", "arq:abort"]
    args: list[ScriptArg] = [now, 5000, 88400, 1]
    for job_id in ids:
        keys += [f"arq:in-progress:{job_id}", f"arq:job:{job_id}", f"arq:retry:{job_id}"]
        args += [job_id, f"tok-{job_id}"]
    return keys, args


def _as_script(script: QueueScript) -> Script:
    return Script(script.name, script.source, 0, 0)


async def test_engine_scripts_run_under_lua54_with_declared_keys_only(raw: Redis) -> None:
    await _queue(raw, ["a", "b"])
    await _queue(raw, ["later"], score=10**13)
    await raw.zadd("arq:abort", {"b": 1})
    runner = Lua54Runner(raw)
    keys, args = _claim_call(["a", "b", "later", "gone"], 10**12)
    reply = runner._execute(_as_script(CLAIM), keys, args)
    assert reply[0:5] == [1, b"1", RECORD, 1, 0]
    assert reply[5:10] == [1, b"1", RECORD, 1, 1]  # aborted: its mark is taken
    assert reply[10] == 0 and reply[15] == 0  # not due / not queued: untouched
    assert not await raw.exists("arq:in-progress:later", "arq:retry:later")
    assert await raw.get("arq:in-progress:a") == "tok-a"
    finish_keys = ["arq:queue", "arq:abort"]
    finish_args: list[ScriptArg] = []
    for job_id, token, over, extra in (
        ("a", "tok-a", 1, 1000),
        ("b", "wrong", 1, 0),
        ("later", "x", 0, 5),
    ):
        finish_keys += [f"arq:in-progress:{job_id}", f"arq:result:{job_id}"]
        finish_keys += [f"arq:retry:{job_id}", f"arq:job:{job_id}"]
        finish_args += [job_id, token, -1, over, b"result", extra]
    assert runner._execute(_as_script(FINISH), finish_keys, finish_args) == [1, 0, 0]
    assert await raw.get("arq:result:a") == "result"
    assert 0 < await raw.pttl("arq:result:a") <= 1000
    assert not await raw.exists("arq:in-progress:a", "arq:job:a", "arq:retry:a")
    assert await raw.zscore("arq:queue", "a") is None
    assert await raw.get("arq:in-progress:b") == "tok-b"  # refused: nothing changed
    assert await raw.zscore("arq:queue", "b") == 1


async def test_engine_scripts_touch_only_declared_keys(server: TestServer, raw: Redis) -> None:
    host, _, port = server.addr.rpartition(":")
    recorder = MonitorRecorder(host, int(port))
    names = {s.sha: s.name for s in (CLAIM, FINISH)}
    names.update({s.source: s.name for s in (CLAIM, FINISH)})
    try:
        start = recorder.sync()
        await _queue(raw, ["x", "y", "z"])
        await raw.zadd("arq:abort", {"z": 1})
        claimed = await claim_batch(
            raw,
            "arq:queue",
            [(j, f"t-{j}".encode()) for j in ("x", "y", "z", "missing")],
            now_ms=10**12,
            lease_ms=5000,
            honour_aborts=True,
        )
        assert [c.job_id for c in claimed] == ["x", "y", "z"]
        assert [c.aborted for c in claimed] == [False, False, True]
        finisher = Finisher(raw, "arq:queue")
        assert await finisher.submit(Finish("x", b"t-x", None, True, b"r", 60_000))
        assert await finisher.submit(Finish("y", b"t-y", 60_000, False, incr_score=500))
        assert not await finisher.submit(Finish("z", b"stale", None, True, b"r", None))
        end = recorder.sync()
        control = RespConnection(host, int(port))
        problems = violations(recorder.slice(start, end), CommandKeys(control), names)
        control.close()
    finally:
        recorder.close()
    # ARQ's keys have no common hashtag by design (one queue instance); anything else fails
    assert [p for p in problems if "span hashtags" not in p] == []
    assert await raw.zscore("arq:queue", "y") == 501
    assert 0 < await raw.pttl("arq:in-progress:y") <= 60_000


async def test_batches_past_one_chunk_keep_every_id_in_order(
    server: TestServer, raw: Redis
) -> None:
    """Batches longer than the scripts' 500-argument chunks (ZMSCORE, MGET, DEL, ZREM), on the
    server's own Lua and under Lua 5.4: every id claimed and finished, replies in order."""
    ids = [f"j{i:04d}" for i in range(1203)]
    due = ids[::2]  # every other id is due: chunks of scores and of records differ
    async with raw.pipeline(transaction=False) as pipe:
        for i, job_id in enumerate(ids):
            pipe.set(f"arq:job:{job_id}", RECORD + job_id.encode())
            pipe.zadd("arq:queue", {job_id: 1 if i % 2 == 0 else 10**13})
        await pipe.execute()
    keys, args = _claim_call(ids[:600], 10**12)
    lua54 = Lua54Runner(raw)._execute(_as_script(CLAIM), keys, args)
    tokens = [(job_id, f"tok-{job_id}".encode()) for job_id in ids[600:]]
    client = Redis.from_url(server.url)  # bytes, as the worker's queue pool
    try:
        claimed = await claim_batch(
            client, "arq:queue", tokens, now_ms=10**12, lease_ms=5000, honour_aborts=False
        )
        finisher = Finisher(client, "arq:queue")
        done = [Finish(j, f"tok-{j}".encode(), None, True, b"r", 60_000) for j in due]
        finished = await finisher._send(done)
    finally:
        await client.aclose()
    assert [lua54[5 * i] for i in range(600)] == [1 - i % 2 for i in range(600)]
    records = [lua54[5 * i + 2] for i in range(0, 600, 2)]
    assert records == [RECORD + job_id.encode() for job_id in ids[:600:2]]
    assert [c.job_id for c in claimed] == [j for j in ids[600:] if j in set(due)]
    assert all(c.record == RECORD + c.job_id.encode() for c in claimed)
    assert finished == [True] * len(due)
    assert await raw.zcard("arq:queue") == len(ids) - len(due)
    assert not await raw.exists(*(f"arq:in-progress:{j}" for j in due))
