"""Where download state lives and how the download scripts are called.

Every key of one download sits under its shard's hashtag ``{dl:<shard>}`` with
``shard = keys.shard_of(job_id, download.shards)``, so each script touches one shard only and
Dragonfly (``--lock_on_hashtags``) applies different shards in parallel. Index members are
``<job_id>:<user_id>`` (ids never contain ``:``), so a stale entry still names its user index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cache.config import CacheConfig
from cache.download_models import ProgressUpdate
from cache.keys import KeyBuilder, shard_of, validate_id
from cache.scripts import ScriptArg, ScriptCall

NO_UPDATE: tuple[ScriptArg, ...] = ("", "", "", "", "", "")


def now_ms() -> int:
    """Wall-clock milliseconds: the time base of ``updated_at``, index scores and leases."""
    return time.time_ns() // 1_000_000


def update_args(update: ProgressUpdate) -> tuple[ScriptArg, ...]:
    """An update as the download scripts take it: job, user, seq, status, done, total,
    emitted ms (0 = unknown), error ("" = none)."""
    return (
        update.job_id,
        update.user_id,
        update.seq,
        update.status.value,
        update.bytes_done,
        update.bytes_total,
        update.emitted_at_ms or 0,
        update.error or "",
    )


def member(job_id: str, user_id: str) -> str:
    """Index member naming a download and its owner."""
    return f"{job_id}:{user_id}"


def parse_member(raw: bytes | str) -> tuple[str, str]:
    """``(job_id, user_id)`` of an index member."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    job, _, user = text.partition(":")
    return job, user


@dataclass(frozen=True)
class ShardKeys:
    """The keys one shard's downloads share (formed once per shard)."""

    active: str
    events: str
    stats: str
    pending_set: str
    drain: str


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
        self.shard_keys = [
            ShardKeys(
                keys.download_active(s),
                keys.download_events(s),
                keys.download_stats(s),
                keys.download_pending_set(s),
                keys.download_drain(s),
            )
            for s in range(self.shards)
        ]

    def shard(self, job_id: str) -> int:
        return shard_of(validate_id(job_id, "job_id"), self.shards)

    def all_shards(self) -> range:
        return range(self.shards)

    def apply_keys(self, job_id: str, user_id: str, shard: int) -> list[str]:
        """KEYS of download_apply.lua, in its header's order."""
        k, common = self.keys, self.shard_keys[shard]
        return [
            k.download_progress(job_id, shard),
            common.active,
            k.download_user_index(user_id, shard),
            common.events,
            common.stats,
            k.download_pending(job_id, shard),
            common.pending_set,
        ]

    def apply_call(self, update: ProgressUpdate, now: int) -> ScriptCall:
        """download_apply.lua in "direct" mode for ``update``."""
        shard = self.shard(update.job_id)
        args = ("direct", now, *self._apply_head, *update_args(update))
        return self.apply_keys(update.job_id, update.user_id, shard), args

    def apply_pending_call(self, shard: int, job_id: str, user_id: str, now: int) -> ScriptCall:
        """download_apply.lua in "pending" mode: apply and consume the download's slot."""
        args = ("pending", now, *self._apply_head, job_id, user_id, *NO_UPDATE)
        return self.apply_keys(job_id, user_id, shard), args
