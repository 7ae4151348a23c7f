"""Where download state lives: shards, their hashtags and the keys each shard shares.

Every key of one download sits under its shard's hashtag ``{dl:<shard>}`` with
``shard = keys.shard_of(job_id, download.shards)``, so each script touches one shard only and
Dragonfly (``--lock_on_hashtags``) applies different shards in parallel. Index members are
``<job_id>:<user_id>`` (ids never contain ``:``), so a stale entry still names its user index.
How each download script is called (its key and argument lists): ``cache.download._calls``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cache.clock import wall_ms
from cache.codec import as_text
from cache.config import CacheConfig
from cache.keys import KeyBuilder, shard_of, validate_id

now_ms = wall_ms
"""Wall-clock milliseconds (``cache.clock.wall_ms``): the time base of ``updated_at``, index
scores and leases; the name ``cache.download.now_ms`` is public and kept."""


def member(job_id: str, user_id: str) -> str:
    """Index member naming a download and its owner."""
    return f"{job_id}:{user_id}"


def parse_member(raw: bytes | str) -> tuple[str, str]:
    """``(job_id, user_id)`` of an index member."""
    text = as_text(raw)
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
    """Shards, their shared keys and the settings the download scripts take."""

    def __init__(self, keys: KeyBuilder, config: CacheConfig) -> None:
        self.keys = keys
        self.settings = config.download
        self.shards = config.download.shards
        ttl = config.ttl
        self.ttl_active_ms = ttl.download_progress * 1000
        self.ttl_terminal_ms = ttl.download_terminal * 1000
        self.speed_window_ms = max(1, round(config.download.speed_window * 1000))
        self.pending_ttl_ms = config.download.pending_ttl * 1000
        self.lease_ms = round(config.download.pending_lease * 1000)
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
