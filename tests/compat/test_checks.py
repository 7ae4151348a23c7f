"""The compatibility checks themselves catch what Dragonfly would refuse."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from cache.scripts import Script
from tests.compat.lua54 import CommandKeys, Lua54FloatReturn, Lua54Runner
from tests.compat.monitor import (
    MonitorLine,
    MonitorRecorder,
    parse_line,
    script_hashtags,
    split_args,
    violations,
)
from tests.compat.resp import RespConnection
from tests.conftest import TestServer

pytestmark = [pytest.mark.integration, pytest.mark.compat_selftest]

FLOAT = Script.parse("flt", "-- KEYS[1]: k\nreturn {1, 10/4}")
WHOLE_FLOAT = Script.parse("flt2", "-- KEYS[1]: k\nreturn redis.call('INCR', KEYS[1]) / 1")
GOOD = Script.parse(
    "good",
    "-- KEYS[1]: k\nlocal n = redis.call('INCR', KEYS[1])\n"
    "return {n, math.floor(n * 10 / 4), tostring(2.5), redis.call('SET', KEYS[1], n)}",
)
UNDECLARED = Script.parse("undeclared", "-- KEYS[1]: k\nreturn redis.call('GET', 'other')")
SCRIPTS = {s.name: s for s in (FLOAT, WHOLE_FLOAT, GOOD, UNDECLARED)}


def test_hashtags_of_queue_calls_on_each_layout() -> None:
    """A queue script on ARQ's keys (the ARQ-compatibility tests, every lane) counts as one
    hashtag; on the sharded layout the count is of the keys' tags, so a spread still shows."""

    def call(*keys: str) -> MonitorLine:
        args = (b"EVALSHA", b"sha", str(len(keys)).encode(), *(k.encode() for k in keys))
        return MonitorLine("127.0.0.1:1", args)

    names = {"sha": "queue_claim"}
    arq = call("arq:queue", "arq:job:a", "arq:in-progress:a")
    one = call("{arq:queue:1}:queue", "{arq:queue:1}:job:a")
    spread = call("{arq:queue:1}:queue", "{arq:queue:2}:job:a")
    assert script_hashtags([arq, one, spread], names) == [
        ("queue_claim", 1),
        ("queue_claim", 1),
        ("queue_claim", 2),
    ]


def test_split_args_handles_escapes() -> None:
    assert split_args('"a" "b c" "q\\"x" "\\x00\\xff" "n\\n"') == [
        b"a",
        b"b c",
        b'q"x',
        b"\x00\xff",
        b"n\n",
    ]
    entry = parse_line('1.5 [0 lua] "SET" "k" "v"')
    assert entry is not None
    assert entry.source == "lua"
    assert entry.command == "SET"


async def test_lua54_runner_rejects_floats_and_undeclared_keys(raw: Redis) -> None:
    runner = Lua54Runner(raw, SCRIPTS)
    assert await runner.run("good", ["seen:t:k"]) == [1, 2, b"2.5", b"OK"]
    with pytest.raises(Lua54FloatReturn, match=r"2\.5"):
        await runner.run("flt", ["seen:t:k"])
    with pytest.raises(Lua54FloatReturn, match=r"2\.0"):
        await runner.run("flt2", ["seen:t:k"])
    with pytest.raises(Exception, match="undeclared key"):
        await runner.run("undeclared", ["seen:t:k"])


async def test_monitor_sees_undeclared_keys_and_keys_command(
    server: TestServer, raw: Redis
) -> None:
    host, _, port = server.addr.rpartition(":")
    recorder = MonitorRecorder(host, int(port))
    try:
        start = recorder.sync()
        run: Any = raw.eval
        await run(UNDECLARED.source, 1, "seen:t:k")
        await run(GOOD.source, 1, "seen:t:k")
        await raw.keys("seen:*")
        await run("return 1", 2, "{a}x", "{b}y")
        end = recorder.sync()
        control = RespConnection(host, int(port))
        problems = violations(recorder.slice(start, end), CommandKeys(control))
        control.close()
    finally:
        recorder.close()
    text = "\n".join(problems)
    assert "undeclared key b'other'" in text
    assert "sent KEYS" in text
    assert "span hashtags" in text
    assert len(problems) == 3
