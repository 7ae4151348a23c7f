"""Where download state lives and how the download scripts are called.

Every key of one download sits under its shard's hashtag ``{dl:<shard>}`` with
``shard = keys.shard_of(job_id, download.shards)``, so each script touches one shard only and
Dragonfly (``--lock_on_hashtags``) applies different shards in parallel. Index members are
``<job_id>:<user_id>`` (ids never contain ``:``), so a stale entry still names its user index.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis import exceptions as redis_exc

from cache.config import CacheConfig
from cache.download_models import ProgressUpdate
from cache.errors import CacheResponseError, translate_errors
from cache.keys import KeyBuilder, shard_of, validate_id
from cache.scripts import ScriptArg, ScriptRunner, check_keys

ScriptCall = tuple[Sequence[str], Sequence[ScriptArg]]
NO_UPDATE: tuple[ScriptArg, ...] = ("", "", "", "", "", "")


def now_ms() -> int:
    """Wall-clock milliseconds: the time base of ``updated_at``, index scores and leases."""
    return time.time_ns() // 1_000_000


def member(job_id: str, user_id: str) -> str:
    """Index member naming a download and its owner."""
    return f"{job_id}:{user_id}"


def parse_member(raw: bytes | str) -> tuple[str, str]:
    """``(job_id, user_id)`` of an index member."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    job, _, user = text.partition(":")
    return job, user


class DownloadLayout:
    """Key sets and argument lists of the download scripts, from settings."""

    def __init__(self, keys: KeyBuilder, config: CacheConfig) -> None:
        self.keys = keys
        self.settings = config.download
        self.shards = config.download.shards
        ttl = config.ttl
        self.ttl_active_ms = ttl.download_progress * 1000
        self.ttl_terminal_ms = ttl.download_terminal * 1000
        self.pending_ttl_ms = config.download.pending_ttl * 1000
        self.lease_ms = round(config.download.pending_lease * 1000)
        self._apply_head: tuple[ScriptArg, ...] = (
            self.ttl_active_ms,
            self.ttl_terminal_ms,
            max(1, round(config.download.speed_window * 1000)),
            config.download.events_maxlen,
        )

    def shard(self, job_id: str) -> int:
        return shard_of(validate_id(job_id, "job_id"), self.shards)

    def all_shards(self) -> range:
        return range(self.shards)

    def apply_keys(self, job_id: str, user_id: str, shard: int) -> list[str]:
        """KEYS of download_apply.lua, in its header's order."""
        k = self.keys
        return [
            k.download_progress(job_id, shard),
            k.download_active(shard),
            k.download_user_index(user_id, shard),
            k.download_events(shard),
            k.download_stats(shard),
            k.download_pending(job_id, shard),
            k.download_pending_set(shard),
        ]

    def apply_call(self, update: ProgressUpdate, now: int) -> ScriptCall:
        """download_apply.lua in "direct" mode for ``update``."""
        shard = self.shard(update.job_id)
        args: tuple[ScriptArg, ...] = (
            "direct",
            now,
            *self._apply_head,
            update.job_id,
            update.user_id,
            update.seq,
            update.status.value,
            update.bytes_done,
            update.bytes_total,
            update.emitted_at_ms or 0,
            update.error or "",
        )
        return self.apply_keys(update.job_id, update.user_id, shard), args

    def apply_pending_call(self, shard: int, job_id: str, user_id: str, now: int) -> ScriptCall:
        """download_apply.lua in "pending" mode: apply and consume the download's slot."""
        args = ("pending", now, *self._apply_head, job_id, user_id, *NO_UPDATE)
        return self.apply_keys(job_id, user_id, shard), args


async def run_many(scripts: ScriptRunner, name: str, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run one script many times in a single pipelined round trip (EVALSHA each).

    A server that lost its scripts answers NOSCRIPT: the script is loaded and only those calls
    are sent again, so an update is never applied twice by this function itself (and applying
    one twice would be harmless anyway: the scripts are idempotent). Any other error reply
    raises ``CacheResponseError``.
    """
    if not calls:
        return []
    script = scripts.get(name)
    for keys, _ in calls:
        check_keys(script, keys)
    results: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for _attempt in range(2):
        with translate_errors(calls[todo[0]][0][0], operation=f"script {name} x{len(todo)}"):
            async with scripts.client.pipeline(transaction=False) as pipe:
                for i in todo:
                    keys, args = calls[i]
                    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
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
