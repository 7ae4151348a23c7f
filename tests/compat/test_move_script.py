"""The layout mover's script (``queue_move``) under Dragonfly's rules, on every lane.

It is the one script whose keys span hashtags on purpose: ARQ's keys (none) and one shard's of
the sharded layout, on one instance. Every key it touches must be declared, it must run under
Lua 5.4 returning only integers and strings, and the MONITOR check lets it span exactly those
two groups, nothing wider.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.scripts import ScriptRunner, load_scripts
from jobs.client import enqueue_jobs
from jobs.queue_move import QueueMover
from jobs.wire.layout import QueueLayout
from tests.compat.lua54 import CommandKeys, Lua54Runner
from tests.compat.monitor import MonitorRecorder, arq_layout_call, violations
from tests.compat.resp import RespConnection
from tests.conftest import TestServer

pytestmark = [pytest.mark.integration, pytest.mark.compat_selftest]

SERVER_RUNNER: type[ScriptRunner] = Lua54Runner.__bases__[0]
"""The runner that sends EVALSHA to the server, also in the Lua 5.4 lane (which replaces the
name ``ScriptRunner`` in every test module by its client-side runner)."""
ARQ = QueueLayout.arq()
SHARDED = QueueLayout.sharded("arq:queue", 3)


async def _round(raw: Redis, runner: ScriptRunner) -> None:
    """Jobs (due, deferred, tried, marked, held, duplicate, bad) and results, there and back."""
    ids = [f"j{i}" for i in range(9)]
    await enqueue_jobs(raw, [("noop", (), j) for j in ids], layout=ARQ, scripts=runner)
    await enqueue_jobs(raw, [("noop", (), "later")], layout=ARQ, defer_until_ms=wall_ms() + 60_000)
    await raw.set("arq:retry:j1", 2, ex=100)
    await raw.zadd("arq:abort", {"j2": 7})
    await raw.set("arq:in-progress:j3", "t", px=30_000)
    await raw.delete("arq:job:j5")
    command: Any = raw.execute_command  # redis-py types SADD as sync-or-async
    await command("SADD", "arq:job:j5", "bad")
    await raw.set("arq:result:done", '{"q":"arq:queue","s":true}', px=60_000)
    await raw.set(SHARDED.for_job("j6").result("j6"), "{}")
    there = await QueueMover(raw, ARQ, SHARDED, batch=4, scripts=runner).run_pass()
    assert there.moved == 7 and there.results_moved == 1, there.as_dict()
    assert there.held.count == 1 and there.duplicates.count == 1 and there.failed.count == 1
    await raw.delete("arq:in-progress:j3")
    back = await QueueMover(raw, SHARDED, ARQ, scripts=runner, drop_duplicates=True).run_pass()
    assert back.moved == 7 and back.results_moved == 2 and back.failed.count == 0
    assert await raw.zscore("arq:abort", "j2") == 7 and await raw.get("arq:retry:j1") == "2"


async def test_the_mover_runs_under_lua54_with_declared_keys_only(raw: Redis) -> None:
    await _round(raw, Lua54Runner(raw))
    assert "queue_move" in Lua54Runner.executed


async def test_the_mover_touches_only_declared_keys_in_two_hashtag_groups(
    server: TestServer, raw: Redis
) -> None:
    host, _, port = server.addr.rpartition(":")
    recorder = MonitorRecorder(host, int(port))
    scripts = load_scripts()
    names = {s.sha: n for n, s in scripts.items()} | {s.source: n for n, s in scripts.items()}
    try:
        start = recorder.sync()
        await _round(raw, SERVER_RUNNER(raw))
        end = recorder.sync()
        entries = recorder.slice(start, end)
        control = RespConnection(host, int(port))
        problems = violations(entries, CommandKeys(control), names)
        control.close()
    finally:
        recorder.close()
    assert problems == []
    moves = [
        e
        for e in entries
        if e.command == "EVALSHA" and e.args[1] == scripts["queue_move"].sha.encode()
    ]
    assert moves, "the mover's calls were not seen"


def test_the_monitor_rule_allows_arqs_keys_and_one_shard_only() -> None:
    arq = {b"arq:queue", b"arq:abort", b"arq:job:a"}
    shard = {b"{arq:queue:1}:queue", b"{arq:queue:1}:job:a"}
    assert arq_layout_call("queue_move", arq | shard)
    assert not arq_layout_call("queue_move", arq | shard | {b"{arq:queue:2}:queue"})
    assert not arq_layout_call("queue_move", shard | {b"{arq:queue:2}:queue"})
    assert not arq_layout_call("queue_move", arq | {b"{seen:dl}:x"})
    assert not arq_layout_call("queue_claim", arq | shard)
    assert arq_layout_call("queue_claim", arq)
