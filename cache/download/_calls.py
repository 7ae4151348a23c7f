"""How each download script is called: one builder per script, returning ``(keys, args)`` in
the order of that script's header (``cache/scripts/<name>.lua``). Nothing else forms these
lists, so a header change has exactly one Python counterpart to update.
"""

from __future__ import annotations

from cache.download._layout import DownloadLayout
from cache.download._models import ProgressUpdate
from cache.scripts import ScriptArg, ScriptCall


def _update_args(update: ProgressUpdate) -> tuple[ScriptArg, ...]:
    """An update as the scripts take it: job, user, seq, status, done, total, emitted ms
    (0 = unknown), error ("" = none)."""
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


def _apply_keys(layout: DownloadLayout, job_id: str, user_id: str, shard: int) -> list[str]:
    k, common = layout.keys, layout.shard_keys[shard]
    return [
        k.download_progress(job_id, shard),
        common.active,
        k.download_user_index(user_id, shard),
        common.events,
        common.stats,
        k.download_pending(job_id, shard),
        common.pending_set,
    ]


def _apply_head(layout: DownloadLayout, mode: str, now: int) -> tuple[ScriptArg, ...]:
    """ARGV[1..6] of download_apply.lua: mode, now, the two TTLs, speed window, stream cap."""
    return (
        mode,
        now,
        layout.ttl_active_ms,
        layout.ttl_terminal_ms,
        layout.speed_window_ms,
        layout.settings.events_maxlen,
    )


def apply(layout: DownloadLayout, update: ProgressUpdate, now: int) -> ScriptCall:
    """download_apply.lua in "direct" mode: the update is ARGV[7..14]."""
    shard = layout.shard(update.job_id)
    keys = _apply_keys(layout, update.job_id, update.user_id, shard)
    return keys, (*_apply_head(layout, "direct", now), *_update_args(update))


def apply_pending(
    layout: DownloadLayout, shard: int, job_id: str, user_id: str, now: int
) -> ScriptCall:
    """download_apply.lua in "pending" mode: ARGV[1..8] only; the update is the download's
    pending hash (KEYS[6]), consumed with the apply."""
    keys = _apply_keys(layout, job_id, user_id, shard)
    return keys, (*_apply_head(layout, "pending", now), job_id, user_id)


def pending_put(
    layout: DownloadLayout, update: ProgressUpdate, shard: int, drain_id: str, now: int
) -> ScriptCall:
    """download_pending_put.lua: store ``update`` as the newest pending one of its download."""
    k, common = layout.keys, layout.shard_keys[shard]
    keys = [
        k.download_pending(update.job_id, shard),
        common.pending_set,
        common.drain,
        k.download_progress(update.job_id, shard),
        common.stats,
    ]
    args = (*_update_args(update), drain_id, now, layout.lease_ms, layout.pending_ttl_ms)
    return keys, args


def drain_claim(layout: DownloadLayout, shard: int, drain_id: str) -> ScriptCall:
    """download_drain_claim.lua: unschedule the shard's drain if it is ``drain_id``."""
    return [layout.shard_keys[shard].drain], (drain_id,)


def drain_kick(
    layout: DownloadLayout, shard: int, drain_id: str, now: int, lease_ms: int
) -> ScriptCall:
    """download_drain_kick.lua: schedule ``drain_id`` if updates are pending and no drain is
    scheduled within ``lease_ms``."""
    common = layout.shard_keys[shard]
    return [common.pending_set, common.drain], (drain_id, now, lease_ms, layout.pending_ttl_ms)


def pop_stale(layout: DownloadLayout, shard: int, cutoff: int, limit: int) -> ScriptCall:
    """download_pop_stale.lua: pop up to ``limit`` members idle since ``cutoff`` (ms)."""
    return [layout.shard_keys[shard].active], (cutoff, limit)


def forget(
    layout: DownloadLayout, shard: int, job_id: str, user_id: str, cutoff: int
) -> ScriptCall:
    """download_forget.lua: drop a stale download's progress hash and user-index entry."""
    k = layout.keys
    keys = [k.download_progress(job_id, shard), k.download_user_index(user_id, shard)]
    return keys, (job_id, user_id, cutoff)
