"""The download scripts keep Dragonfly's rules: they touch only the keys they declare (seen in
MONITOR as ``[0 lua]`` lines, resolved with COMMAND GETKEYS), all under one {hashtag}, and
return only integers, strings or arrays of them."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis import exceptions as redis_exc
from redis.asyncio import Redis

from cache.download import _calls, now_ms
from cache.errors import CacheResponseError
from cache.manager import CacheManager
from tests.conftest import TestServer
from tests.support.updates import upd

_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_LINE = re.compile(r"^[\d.]+ \[\d+ ([^\]]+)\] (.*)$")


async def touched(
    server: TestServer, raw: Redis, action: Callable[[], Awaitable[Any]]
) -> tuple[set[str], set[str], Any]:
    """Keys declared by the EVALSHA calls of ``action`` and keys their Lua commands touched."""
    monitor_client = Redis.from_url(server.url, decode_responses=True)
    declared: set[str] = set()
    used: set[str] = set()
    async with monitor_client.monitor() as monitor:
        result = await action()
        await raw.echo("end-of-action")
        assert monitor.connection is not None
        while True:
            line = await monitor.connection.read_response()
            text = line.decode() if isinstance(line, bytes) else str(line)
            if "end-of-action" in text:
                break
            match = _LINE.match(text)
            if match is None:
                continue
            args = [a.replace('\\"', '"') for a in _ARG.findall(match.group(2))]
            if match.group(1) == "lua":
                with contextlib.suppress(redis_exc.ResponseError):  # a command without keys
                    command = raw.execute_command
                    used |= set(await command("COMMAND GETKEYS", *args))  # type: ignore[no-untyped-call]
            elif args and args[0].upper() == "EVALSHA":
                declared |= set(args[3 : 3 + int(args[2])])
    await monitor_client.aclose()
    return declared, used, result


def plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return isinstance(value, int | bytes | str) and not isinstance(value, bool)


async def test_script_returns_are_integers_strings_or_arrays(manager: CacheManager) -> None:
    dl = manager.download
    layout = dl.layout
    run = manager.scripts.run
    keys, args = _calls.apply(layout, upd("dl-1", 1), now_ms())
    replies = [await run("download_apply", keys, args)]
    result = await dl.publish(upd("dl-2", 1))
    shard = result.shard
    replies.append(
        await run("download_drain_kick", *_calls.drain_kick(layout, shard, "drain-2", now_ms(), 0))
    )
    replies.append(await run("download_drain_claim", *_calls.drain_claim(layout, shard, "x")))
    replies.append(await run("download_pop_stale", *_calls.pop_stale(layout, 0, now_ms(), 10)))
    replies.append(await run("download_forget", *_calls.forget(layout, 0, "dl-1", "u1", 0)))
    assert all(plain(r) for r in replies), replies
    assert replies[1][0] == 3  # lease 0: the scheduled drain is replaced by a new id


async def test_apply_rejects_non_integer_numbers(manager: CacheManager) -> None:
    keys, args = manager.download.apply_call(upd("dl-1", 1), now_ms())
    for index, bad in ((8, "1.5"), (10, "1e3"), (11, "-4"), (9, "exploded")):
        broken = list(args)
        broken[index] = bad
        with pytest.raises(CacheResponseError, match="bad update"):
            await manager.scripts.run("download_apply", keys, broken)
    assert await manager.download.get_progress("dl-1") is None
