"""The engine's two Lua scripts on the queue store, run by SHA with hiredis packing.

Unlike ``cache.scripts`` (a fixed key list under one ``{hashtag}`` per script), these take a
key list whose length depends on the batch, over ARQ's key prefixes: every key a script touches
is still passed in its key list (Dragonfly's rule), the keys simply have no common hashtag. The
queue store is one instance, never a cluster (docs/dragonfly.md, "The batch claim").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis import exceptions as redis_exc
from redis.asyncio import Redis

from cache.errors import CacheOutOfMemoryError, CacheResponseError, is_out_of_memory
from cache.scripts import ScriptArg, send_batch


@dataclass(frozen=True)
class QueueScript:
    """One engine script: its name, source and SHA."""

    name: str
    source: str
    fixed_keys: int
    """Keys before the per-job ones (the queue and the abort set)."""
    keys_per_job: int

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()

    @classmethod
    def load(cls, name: str, keys_per_job: int) -> QueueScript:
        source = resources.files("worker.engine").joinpath(f"{name}.lua").read_text("utf-8")
        return cls(name, source, 2, keys_per_job)


CLAIM = QueueScript.load("claim", 3)
FINISH = QueueScript.load("finish", 4)
SCRIPTS = (CLAIM, FINISH)


async def run_queue_script(
    client: Redis, script: QueueScript, keys: Sequence[str], args: Sequence[ScriptArg]
) -> Any:
    """EVALSHA ``script`` (loading it on NOSCRIPT); error replies raise, out of memory as
    ``CacheOutOfMemoryError`` (a store outage to the worker)."""
    if (len(keys) - script.fixed_keys) % script.keys_per_job:
        raise ValueError(f"script {script.name}: {len(keys)} keys is not a whole batch")
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    for _attempt in range(2):
        [reply] = await send_batch(client, [command])
        if isinstance(reply, redis_exc.NoScriptError):
            await client.script_load(script.source)
            continue
        if isinstance(reply, Exception):
            kind = CacheOutOfMemoryError if is_out_of_memory(reply) else CacheResponseError
            raise kind(f"script {script.name}: {reply}", key=keys[0]) from reply
        return reply
    raise CacheResponseError(f"script {script.name}: NOSCRIPT again after loading it")
