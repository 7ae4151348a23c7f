"""Many EVALSHAs of one script in a single round trip, packed in C.

redis-py's asyncio client packs commands in pure Python; an apply call has 24 arguments, and
packing was half the worker's time per update (profiled). ``run_many`` packs with hiredis
(a dependency via ``redis[hiredis]``) and sends the whole batch on one pooled connection, then
reads one reply per call. Connection and timeout errors are retried with the pool's retry policy
(every script here is idempotent, so re-sending a batch is harmless); a connection that failed
or was interrupted mid-batch is disconnected, never reused with unread replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
from redis import exceptions as redis_exc
from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from cache.errors import CacheResponseError, translate_errors
from cache.scripts import ScriptArg, ScriptRunner, check_keys

ScriptCall = tuple[Sequence[str], Sequence[ScriptArg]]


async def _exchange(conn: Connection, payload: bytes, count: int) -> list[Any]:
    """Send pre-packed commands, read ``count`` replies (error replies as exceptions)."""
    await conn.send_packed_command(payload, check_health=True)
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(await conn.read_response())
        except redis_exc.ResponseError as exc:
            replies.append(exc)
    return replies


async def send_batch(client: Redis, commands: Sequence[Sequence[ScriptArg]]) -> list[Any]:
    """One round trip for ``commands``; replies in order (error replies as exceptions)."""
    # hiredis' stub types the argument as a 1-tuple; it takes any tuple of str/bytes/numbers.
    payload = b"".join(hiredis.pack_command(tuple(c)) for c in commands)  # type: ignore[arg-type]
    pool = client.connection_pool
    conn: Connection = await pool.get_connection()
    try:
        replies: list[Any] = await conn.retry.call_with_retry(
            lambda: _exchange(conn, payload, len(commands)),
            lambda _error: conn.disconnect(),
        )
        return replies
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)


async def run_many(scripts: ScriptRunner, name: str, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run one script many times in a single round trip; replies in call order.

    Every call is checked like ``ScriptRunner.run`` (declared key count, one hashtag). A server
    that lost its scripts answers NOSCRIPT: the script is loaded and only those calls are sent
    again. Any other error reply raises ``CacheResponseError`` naming the call's first key.
    """
    if not calls:
        return []
    script = scripts.get(name)
    for keys, _ in calls:
        check_keys(script, keys)
    sha = script.sha  # a property that hashes the source: once per batch
    results: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for _attempt in range(2):
        commands = [("EVALSHA", sha, len(calls[i][0]), *calls[i][0], *calls[i][1]) for i in todo]
        with translate_errors(calls[todo[0]][0][0], operation=f"script {name} x{len(todo)}"):
            replies = await send_batch(scripts.client, commands)
        missing = []
        for i, reply in zip(todo, replies, strict=True):
            if isinstance(reply, redis_exc.NoScriptError):
                missing.append(i)
            elif isinstance(reply, Exception):
                raise CacheResponseError(f"script {name}: {reply}", key=calls[i][0][0])
            else:
                results[i] = reply
        if not missing:
            return results
        with translate_errors(None, operation="SCRIPT LOAD"):
            await scripts.client.script_load(script.source)
        todo = missing
    raise CacheResponseError(f"script {name}: NOSCRIPT again after loading it")
