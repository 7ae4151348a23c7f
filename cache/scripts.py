"""Loads the Lua scripts in ``cache/scripts/`` once and runs them by SHA.

Each ``<name>.lua`` starts with a header comment that declares its keys and arguments::

    -- KEYS[1]: seen:lock:{<name>}        the lock
    -- KEYS[2]: seen:lock:{<name>}:fence  fencing counter
    -- ARGV[1]: token
    -- returns: integer fencing token, or 0 when not acquired

A batch script (the job engine's claim and finish) declares a group of keys that repeats per
item after its fixed keys, with a header line ``-- repeat: KEYS[3..5] for each id``.

Dragonfly rules, enforced here at call time and by the compatibility tests: a script gets
exactly the keys its header declares (for a batch script: its fixed keys plus whole groups);
keys of a multi-key script share one ``{hashtag}``; scripts return integers, strings or arrays
of them, never Lua floats. The one exception to the hashtag rule is the job engine on ARQ's own
key layout, whose keys have none (``single_hashtag=False``; docs/dragonfly.md).

A script that finds a key it reads of the wrong type, or holding a value it cannot use, fails
that call alone before its first write (a script is not rolled back) with the error reply
``BADKEY <key> <what it found>; <what it did>``. ``run`` raises it as ``CorruptKeyError``;
``run_many`` returns it in that call's place, so one id's bad key never fails the other calls
of a batch (docs/dragonfly.md, "Bad keys").
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any

import hiredis
from redis import exceptions as redis_exc
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection

from cache.cluster import is_cluster
from cache.errors import (
    CacheError,
    CacheOutOfMemoryError,
    CacheResponseError,
    CorruptKeyError,
    is_out_of_memory,
    translate_errors,
)

_KEYS_DECL = re.compile(r"^--\s*KEYS\[(\d+)\]", re.MULTILINE)  # header lines "-- KEYS[i]: ..."
_ARGV_DECL = re.compile(r"^--\s*ARGV\[(\d+)\]", re.MULTILINE)
_REPEAT_DECL = re.compile(r"^--\s*repeat:\s*KEYS\[(\d+)\.\.(\d+)\]", re.MULTILINE)
ScriptArg = str | bytes | int | float
ScriptCall = tuple[Sequence[str], Sequence[ScriptArg]]
BAD_KEY = "BADKEY "
"""How a script's error reply about a bad stored key starts (after an optional ``ERR``)."""


def hashtag(key: str) -> str:
    """The part of ``key`` that decides its hash slot and lock (Redis Cluster hashtag rules)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


@dataclass(frozen=True)
class Script:
    """One Lua script and what its header declares."""

    name: str
    source: str
    declared_keys: int
    declared_args: int
    keys_per_item: int = 0
    """Keys of the group that repeats per item (0: a fixed key list of ``declared_keys``)."""

    @property
    def fixed_keys(self) -> int:
        """Keys before the repeated group (all of them for a fixed key list)."""
        return self.declared_keys - self.keys_per_item

    @cached_property
    def sha(self) -> str:
        """SHA1 of the source (the EVALSHA name), hashed once per script."""
        return hashlib.sha1(self.source.encode("utf-8"), usedforsecurity=False).hexdigest()

    @classmethod
    def parse(cls, name: str, source: str) -> Script:
        header = "\n".join(line for line in source.splitlines() if line.startswith("--"))
        key_numbers = sorted(int(n) for n in _KEYS_DECL.findall(header))
        arg_numbers = sorted(set(int(n) for n in _ARGV_DECL.findall(header)))
        if key_numbers != list(range(1, len(key_numbers) + 1)):
            raise CacheError(f"script {name}: header must declare KEYS[1..n] in order")
        per_item = 0
        repeat = _REPEAT_DECL.search(header)
        if repeat is not None:
            first, last = int(repeat.group(1)), int(repeat.group(2))
            if last != len(key_numbers) or not 1 <= first <= last:
                raise CacheError(f"script {name}: repeat must name the last declared keys")
            per_item = last - first + 1
        return cls(name, source, len(key_numbers), len(arg_numbers), per_item)


def load_scripts() -> dict[str, Script]:
    """Every ``*.lua`` shipped in ``cache/scripts``, by file stem (the cache layer's and the
    job queue's: ``queue_enqueue``, ``queue_claim``, ``queue_finish``); read once."""
    return dict(_shipped_scripts())


@functools.cache
def _shipped_scripts() -> dict[str, Script]:
    folder = resources.files("cache").joinpath("scripts")
    found: dict[str, Script] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".lua"):
            name = entry.name[: -len(".lua")]
            found[name] = Script.parse(name, entry.read_text(encoding="utf-8"))
    return dict(sorted(found.items()))


class ScriptRunner:
    """Runs the shipped scripts on one client by EVALSHA, reloading on NOSCRIPT.

    A restarted or failed-over server forgets loaded scripts; the first call after that gets
    NOSCRIPT, loads the script and runs it again, so callers never see the difference.
    """

    def __init__(self, client: Redis, scripts: dict[str, Script] | None = None) -> None:
        self.client = client
        self.scripts = scripts if scripts is not None else load_scripts()

    def get(self, name: str) -> Script:
        try:
            return self.scripts[name]
        except KeyError:
            raise CacheError(f"no Lua script named {name!r}") from None

    async def load_all(self) -> int:
        """SCRIPT LOAD every script (start-up warmup); returns how many."""
        with translate_errors(None, operation="SCRIPT LOAD"):
            for script in self.scripts.values():
                await self.client.script_load(script.source)
        return len(self.scripts)

    async def run(
        self,
        name: str,
        keys: Sequence[str],
        args: Sequence[ScriptArg] = (),
        *,
        single_hashtag: bool = True,
    ) -> Any:
        """Run a script; raises ``CacheError`` when the keys break the Dragonfly rules, and
        ``CorruptKeyError`` when the script found a bad stored key."""
        script = self.get(name)
        check_keys(script, keys, single_hashtag=single_hashtag)
        first = keys[0] if keys else None
        with translate_errors(first, operation=f"script {name}"):
            try:
                try:
                    return await self._evalsha(script.sha, keys, args)
                except redis_exc.NoScriptError:
                    await self.client.script_load(script.source)
                    return await self._evalsha(script.sha, keys, args)
            except redis_exc.ResponseError as exc:
                bad = corrupt_key_error(name, keys, exc)
                if bad is not None:
                    raise bad from exc
                raise

    async def run_many(
        self,
        name: str,
        calls: Sequence[ScriptCall],
        *,
        single_hashtag: bool = True,
        return_errors: bool = False,
    ) -> list[Any]:
        """Run one script many times in a single round trip; replies in call order.

        Every call is checked like ``run`` (declared key count, one hashtag). A server that
        lost its scripts answers NOSCRIPT: the script is loaded and only those calls are sent
        again. A call whose script found a bad stored key gets its ``CorruptKeyError`` in its
        place in the list (returned, not raised: the other calls went through, and callers
        check each reply with ``isinstance``). Any other error reply raises
        ``CacheResponseError`` (``CacheOutOfMemoryError`` for a full store) naming the call's
        first key; with ``return_errors`` that error takes the call's place in the replies
        instead, so one failed call does not hide the others.
        """
        results, _ = await self._run_many(name, calls, single_hashtag, return_errors, None)
        return results

    async def run_many_replicated(
        self,
        name: str,
        calls: Sequence[ScriptCall],
        replicas: Replicas,
        *,
        single_hashtag: bool = True,
        return_errors: bool = False,
    ) -> tuple[list[Any], list[bool]]:
        """``run_many``, then ``WAIT`` on each connection that wrote: per call, whether at
        least ``replicas.count`` replicas confirmed its writes within ``replicas.timeout_ms``
        (what a failover cannot lose)."""
        results, acked = await self._run_many(name, calls, single_hashtag, return_errors, replicas)
        return results, acked

    async def _run_many(
        self,
        name: str,
        calls: Sequence[ScriptCall],
        single_hashtag: bool,
        return_errors: bool,
        replicas: Replicas | None,
    ) -> tuple[list[Any], list[bool]]:
        if not calls:
            return [], []
        script = self.get(name)
        for keys, _ in calls:
            check_keys(script, keys, single_hashtag=single_hashtag)
        sha = script.sha
        results: list[Any] = [None] * len(calls)
        acked = [replicas is None] * len(calls)
        todo = list(range(len(calls)))
        for _attempt in range(2):
            commands = [
                ("EVALSHA", sha, len(calls[i][0]), *calls[i][0], *calls[i][1]) for i in todo
            ]
            with translate_errors(calls[todo[0]][0][0], operation=f"script {name} x{len(todo)}"):
                if replicas is None:
                    replies = await send_batch(self.client, commands)
                else:
                    keys = [calls[i][0][0] for i in todo]
                    replies, waited = await send_batch_waiting(
                        self.client, commands, keys, replicas
                    )
                    for i, ok in zip(todo, waited, strict=True):
                        acked[i] = ok
            missing = []
            for i, reply in zip(todo, replies, strict=True):
                if isinstance(reply, redis_exc.NoScriptError):
                    missing.append(i)
                elif isinstance(reply, Exception) and (
                    bad := corrupt_key_error(name, calls[i][0], reply)
                ):
                    results[i] = bad
                elif isinstance(reply, Exception):
                    full = is_out_of_memory(reply)
                    kind = CacheOutOfMemoryError if full else CacheResponseError
                    error = kind(f"script {name}: {reply}", key=calls[i][0][0])
                    error.__cause__ = reply
                    if not return_errors:
                        raise error
                    results[i] = error
                else:
                    results[i] = reply
            if not missing:
                return results, acked
            with translate_errors(None, operation="SCRIPT LOAD"):
                await self.client.script_load(script.source)
            todo = missing
        raise CacheResponseError(f"script {name}: NOSCRIPT again after loading it")

    async def _evalsha(self, sha: str, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        # redis-py types evalsha's arguments as str only; EVALSHA takes any bulk string.
        command = self.client.execute_command
        return await command("EVALSHA", sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]


def corrupt_key_error(
    name: str, keys: Sequence[str], reply: BaseException
) -> CorruptKeyError | None:
    """The ``CorruptKeyError`` of a ``BADKEY <key> <problem>`` error reply of script ``name``
    called with ``keys``; None for any other reply. The key must be one of ``keys``, so no
    other error text is ever taken for one."""
    text = str(reply)
    for prefix in (BAD_KEY, "ERR " + BAD_KEY):
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            break
    else:
        return None
    named = [k for k in keys if rest.startswith(k + " ")]
    if not named:
        return None
    key = max(named, key=len)
    problem = rest[len(key) :].strip()
    return CorruptKeyError(f"script {name}: {key} {problem}", key=key, script=name)


def check_keys(script: Script, keys: Sequence[str], *, single_hashtag: bool = True) -> None:
    """Exactly the declared keys (whole groups for a batch script), all under one hashtag
    unless ``single_hashtag`` is False (the job engine on ARQ's key layout)."""
    per_item = script.keys_per_item
    if per_item:
        items, rest = divmod(len(keys) - script.fixed_keys, per_item)
        if items < 1 or rest:
            raise CacheError(
                f"script {script.name} takes {script.fixed_keys} keys and then groups of "
                f"{per_item}, got {len(keys)}"
            )
    elif len(keys) != script.declared_keys:
        raise CacheError(
            f"script {script.name} declares {script.declared_keys} keys, got {len(keys)}"
        )
    if single_hashtag and len(keys) > 1 and not _same_tag_prefix(keys):
        tags = {hashtag(k) for k in keys}
        if len(tags) > 1:
            raise CacheError(
                f"script {script.name}: keys span hashtags {sorted(tags)}; "
                "Dragonfly needs one {hashtag} per multi-key script"
            )


def _same_tag_prefix(keys: Sequence[str]) -> bool:
    """True when every key starts with the first key's leading ``{tag}``: they then share that
    hashtag (the first ``{`` is at 0 and the first ``}`` after it ends the tag). The queue's
    sharded keys all do; checking the prefix in C instead of ``hashtag`` per key took about 5 %
    of a sharded worker's CPU off (py-spy, bench/profile.py). False means "not shown", not
    "different": the caller then compares the hashtags themselves."""
    first = keys[0]
    if not first.startswith("{"):
        return False
    end = first.find("}", 1)
    if end < 2:
        return False
    return all(map(str.startswith, keys, itertools.repeat(first[: end + 1])))


# -- batches: many EVALSHAs in one round trip, packed in C ------------------------------------
# redis-py's asyncio client packs commands in pure Python; an apply call has 24 arguments, and
# packing was half the worker's time per update (profiled). ``send_batch`` packs with hiredis
# and sends the whole batch on one pooled connection, then reads one reply per command.
# Connection and timeout errors are retried with the pool's retry policy (batched scripts must
# be idempotent); a connection that failed mid-batch is disconnected, never reused with unread
# replies.


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


@dataclass(frozen=True, slots=True)
class Replicas:
    """How many replicas must confirm a batch's writes (``WAIT count timeout_ms``)."""

    count: int
    timeout_ms: int


async def send_batch_waiting(
    client: Redis,
    commands: Sequence[Sequence[ScriptArg]],
    first_keys: Sequence[str],
    replicas: Replicas,
) -> tuple[list[Any], list[bool]]:
    """``send_batch`` followed, on the very connection that sent the writes, by ``WAIT``:
    replies in order, and per command whether ``replicas.count`` replicas confirmed it.

    ``WAIT`` counts the replication of what its own connection wrote, so it must follow the
    commands on their connection: on one instance it is the batch's last command; on a cluster
    one ``WAIT`` per node goes last in that node's part of the pipeline (``target_nodes``)."""
    wait = ("WAIT", replicas.count, replicas.timeout_ms)
    if not is_cluster(client):
        single = await send_batch(client, [*commands, wait])
        count = single[-1]
        ok = isinstance(count, int) and count >= replicas.count
        return single[:-1], [ok] * len(commands)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    node_of = [client.get_node_from_key(key) for key in first_keys]
    nodes = {node.name: node for node in node_of}
    async with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        for node in nodes.values():
            pipe.execute_command(*wait, target_nodes=node)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    counts = dict(zip(nodes, replies[len(commands) :], strict=True))
    acked = [
        isinstance(counts[node.name], int) and counts[node.name] >= replicas.count
        for node in node_of
    ]
    return replies[: len(commands)], acked


async def send_batch(client: Redis, commands: Sequence[Sequence[ScriptArg]]) -> list[Any]:
    """One round trip for ``commands``; replies in order (error replies as exceptions).

    On a cluster the commands go through the cluster pipeline: one batch per node, sent
    concurrently, routed by each command's keys (every call's keys share one slot)."""
    if is_cluster(client):
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            cluster_replies: list[Any] = await pipe.execute(raise_on_error=False)
        return cluster_replies
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
