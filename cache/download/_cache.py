"""DownloadCache: download progress state, active downloads, users' lists, stale cleanup.

Progress is written only by ``download_apply.lua`` (monotonic by ``seq``, terminal states
final, speed/ETA, TTL, indexes, live event) so duplicated, reordered or replayed updates can
never regress a download. Layout and sharding: ``_layout``; the scripts' key and argument lists:
``_calls``; the coalescing producer path (``publish``, ``drain``): ``_pending``; live events:
``_events``. docs/progress.md explains the whole pipeline.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

from pydantic import BaseModel, TypeAdapter, ValidationError
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.codec import as_text
from cache.config import CacheConfig
from cache.counts import ReadCounts
from cache.download import _calls
from cache.download._events import EventFollower
from cache.download._layout import DownloadLayout, parse_member
from cache.download._models import (
    ApplyOutcome,
    ApplyResult,
    DownloadProgress,
    ProgressUpdate,
    apply_results,
    parse_progress,
    progress_from_fields,
)
from cache.download._pending import (
    DrainIdFactory,
    DrainReport,
    PendingUpdates,
    PutResult,
    new_drain_id,
)
from cache.errors import CorruptKeyError, InvalidKeyError, SerializationError, translate_errors
from cache.keys import KeyBuilder, validate_id
from cache.numbers import count_arg, seconds_arg
from cache.scripts import ScriptCall, ScriptRunner
from cache.service import TTL, CacheService
from cache.unreadable import Unreadable

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
KIND = "download"
"""The ``cache.unreadable`` kind of a download entry that cannot be read."""
DOWNLOAD_OUTCOMES = (
    "applied",
    "stale",
    "duplicate",
    "final",
    "rejected",
    "scheduled",
    "rescheduled",
    "coalesced",
    "ignored",
)


class DownloadCache:
    """Progress of every download, sharded over ``download.shards`` hashtags."""

    def __init__(
        self,
        client: Redis,
        service: CacheService,
        keys: KeyBuilder,
        scripts: ScriptRunner,
        config: CacheConfig,
        *,
        drain_ids: DrainIdFactory = new_drain_id,
        reads: ReadCounts | None = None,
    ) -> None:
        """``drain_ids`` makes the ids of the drain jobs ``publish`` and ``drain`` schedule;
        ``reads`` counts reads of cached lists (the manager's, shared by its caches)."""
        self.client = client
        self.service = service
        self.keys = keys
        self.scripts = scripts
        self.config = config
        self.layout = DownloadLayout(keys, config)
        self.reads = reads or ReadCounts()
        self.outcomes: Counter[ApplyOutcome] = Counter()
        """Applies by outcome in this process (direct and drained), read by the worker's
        metrics at scrape time."""
        self.pending = PendingUpdates(client, scripts, self.layout, drain_ids, self.outcomes)

    # -- applying updates ---------------------------------------------------------------
    async def set_progress(self, update: ProgressUpdate, *, now: int | None = None) -> ApplyOutcome:
        """Apply one update; stale/duplicate/post-terminal updates are ignored, not errors.

        A stored key of the download it cannot use raises ``CorruptKeyError`` naming the key
        (removed: sending the update again applies it)."""
        keys, args = _calls.apply(self.layout, update, now or wall_ms())
        try:
            reply = await self.scripts.run("download_apply", keys, args)
        except CorruptKeyError:
            self.outcomes[ApplyOutcome.CORRUPT] += 1
            raise
        outcome = ApplyOutcome(int(reply))
        self.outcomes[outcome] += 1
        return outcome

    def apply_call(self, update: ProgressUpdate, now: int) -> ScriptCall:
        """The key and argument lists of ``download_apply.lua`` for ``update``, for tools
        that send the script themselves (the benchmark's redis-benchmark run)."""
        return _calls.apply(self.layout, update, now)

    async def bulk_update_progress(
        self, updates: Sequence[ProgressUpdate], *, now: int | None = None
    ) -> list[ApplyOutcome]:
        """Apply many updates in one pipelined round trip; outcomes in input order
        (``CORRUPT`` for an update that met a bad stored key: ``apply_many`` says which)."""
        return [r.outcome for r in await self.apply_many(updates, now=now)]

    async def apply_many(
        self, updates: Sequence[ProgressUpdate], *, now: int | None = None
    ) -> list[ApplyResult]:
        """``bulk_update_progress`` with each bad key's ``CorruptKeyError``: one update's bad
        key fails that update alone, the others of the batch are applied."""
        stamp = now or wall_ms()
        calls = [_calls.apply(self.layout, u, stamp) for u in updates]
        results = apply_results(await self.scripts.run_many("download_apply", calls))
        self.outcomes.update(r.outcome for r in results)
        return results

    # -- coalescing: pending updates and one drain job per shard ------------------------
    async def publish(self, update: ProgressUpdate) -> PutResult:
        """Store ``update`` as its download's pending update (if newest); one round trip.
        ``result.drain_id``, when set, is a drain job the caller must enqueue."""
        return (await self.pending.put_many([update]))[0]

    async def publish_many(self, updates: Sequence[ProgressUpdate]) -> list[PutResult]:
        """``publish`` for many updates in one pipelined round trip; results in input order."""
        return await self.pending.put_many(updates)

    async def drain(
        self, shard: int, drain_id: str, *, batch: int | None = None, budget: float | None = None
    ) -> DrainReport:
        """Run drain job ``drain_id``: apply every pending update of ``shard`` (bounded by
        ``budget`` seconds; ``report.handoff_id`` is then a successor to enqueue)."""
        return await self.pending.drain(shard, drain_id, batch=batch, budget=budget)

    async def schedule_drains(self, *, lease_ms: int | None = None) -> dict[str, int]:
        """Schedule a drain for every shard with pending updates whose drain is missing or
        older than the lease; returns the new drain ids to enqueue, with their shards."""
        scheduled: dict[str, int] = {}
        for shard in self.layout.all_shards():
            drain_id = await self.pending.schedule(shard, lease_ms=lease_ms)
            if drain_id is not None:
                scheduled[drain_id] = shard
        return scheduled

    def coalescing_counts(self) -> dict[str, Any]:
        """This process's coalescing counters, no I/O: ``drain_jobs`` run, ``drained_updates``
        they consumed, and ``published`` (puts by ``PublishOutcome``, made by producers)."""
        p = self.pending
        return {
            "drain_jobs": p.drain_jobs,
            "drained_updates": p.drained_updates,
            "published": dict(p.published),
        }

    async def pending_count(self) -> int:
        """Downloads with a pending (not yet applied) update, over all shards."""
        return await self.pending.pending_count()

    # -- reading ------------------------------------------------------------------------
    async def get_progress(self, job_id: str) -> DownloadProgress | None:
        """The applied state of one download, None when unknown or expired."""
        return (await self.get_many([job_id]))[0]

    async def get_many(self, job_ids: Sequence[str]) -> list[DownloadProgress | None]:
        """Several downloads in one round trip, None for each unknown one."""
        if not job_ids:
            return []
        keys = [self.keys.download_progress(j, self.layout.shard(j)) for j in job_ids]
        with translate_errors(None, operation=f"HGETALL x{len(keys)}"):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                rows = await pipe.execute()
        return [progress_from_fields(f, j) for f, j in zip(rows, job_ids, strict=True)]

    async def get_active_downloads(
        self,
        user_id: str | None = None,
        *,
        limit: int = 1000,
        unreadable: Unreadable | None = None,
    ) -> list[DownloadProgress]:
        """Non-terminal downloads with their progress, most recently updated first.

        Without ``user_id``: from every shard's active index; with it: from the user's index.
        Entries whose progress has expired are skipped (``cleanup_stale`` removes them). An
        entry that cannot be read (an index member that breaks the id rule, a progress hash
        that is not a download's state or not a hash) is skipped and noted in ``unreadable``
        (kind ``download``, logged with its key); the others are returned.
        """
        found = await self._indexed(user_id, limit, unreadable)
        return [p for p in found if not p.terminal][:limit]

    async def get_user_downloads(
        self, user_id: str, *, limit: int = 1000, unreadable: Unreadable | None = None
    ) -> list[DownloadProgress]:
        """A user's downloads, terminal ones included (kept ``ttl.download_terminal``)."""
        user = validate_id(user_id, "user_id")
        return (await self._indexed(user, limit, unreadable))[:limit]

    async def _indexed(
        self, user_id: str | None, limit: int, unreadable: Unreadable | None
    ) -> list[DownloadProgress]:
        skipped = unreadable if unreadable is not None else Unreadable()
        shards = self.layout.all_shards()
        if user_id is None:
            index = [self.layout.shard_keys[s].active for s in shards]
        else:
            index = [self.keys.download_user_index(user_id, s) for s in shards]
        with translate_errors(None, operation="ZREVRANGE download index"):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in index:
                    pipe.zrevrange(key, 0, limit - 1)
                per_shard = await pipe.execute()
        jobs: list[tuple[str, str]] = []
        for shard, key, members in zip(shards, index, per_shard, strict=True):
            for raw in members:
                job = parse_member(raw)[0] if user_id is None else as_text(raw)
                try:
                    jobs.append((job, self.keys.download_progress(job, shard)))
                except InvalidKeyError as exc:
                    skipped.skip(KIND, f"{key} member {as_text(raw)!r}", str(exc))
        if not jobs:
            return []
        with translate_errors(None, operation="HGETALL download progress"):
            async with self.client.pipeline(transaction=False) as pipe:
                for _, progress_key in jobs:
                    pipe.hgetall(progress_key)
                rows = await pipe.execute(raise_on_error=False)
        present = []
        for (job, progress_key), fields in zip(jobs, rows, strict=True):
            try:
                if isinstance(fields, Exception):
                    raise ValueError(str(fields))
                progress = parse_progress(fields, job)
            except ValueError as exc:
                skipped.skip(KIND, progress_key, str(exc))
                continue
            if progress is not None:
                present.append(progress)
        present.sort(key=lambda p: p.updated_at, reverse=True)
        return present

    # -- a user's download list (cached page data) ---------------------------------------
    async def set_download_list(
        self, user_id: str, items: Iterable[BaseModel | Mapping[str, Any]], ttl: TTL | None = None
    ) -> None:
        """Cache a user's download list (JSON) for ``ttl`` (default ``ttl.download_list``)."""
        key = self.keys.download_list(user_id)
        payload = [
            i.model_dump(mode="json") if isinstance(i, BaseModel) else dict(i) for i in items
        ]
        await self.service.set_json(key, payload, ttl or self.config.ttl.download_list)

    @overload
    async def get_download_list(self, user_id: str) -> list[dict[str, Any]] | None: ...
    @overload
    async def get_download_list(self, user_id: str, model: type[M]) -> list[M] | None: ...
    async def get_download_list(
        self, user_id: str, model: type[M] | None = None
    ) -> list[M] | list[dict[str, Any]] | None:
        """The cached list, as ``model`` instances when given; None on a miss."""
        key = self.keys.download_list(user_id)
        with self.reads.errors("download_list"):
            raw = await self.service.get_json(key)
            if raw is None:
                self.reads.add("download_list", "miss")
                return None
            try:
                if model is None:
                    found = TypeAdapter(list[dict[str, Any]]).validate_python(raw)
                else:
                    found = TypeAdapter(list[model]).validate_python(raw)  # type: ignore[valid-type]
            except ValidationError as exc:
                raise SerializationError(
                    f"cached download list is not a list of {model}", key=key
                ) from exc
        self.reads.add("download_list", "hit")
        return found

    async def invalidate_user_downloads(self, user_id: str) -> int:
        """Drop the user's cached download list (live progress is state, not cache: kept)."""
        return await self.service.delete(self.keys.download_list(user_id))

    # -- maintenance ----------------------------------------------------------------------
    async def cleanup_stale(self, older_than: float = 3600.0, *, batch: int | None = None) -> int:
        """Remove downloads not updated for ``older_than`` seconds; returns how many.

        Works shard by shard in batches of ``download.cleanup_batch``: one script pops at most a
        batch from the active index, then one pipelined round trip forgets their progress and
        user-index entries. No command handles more than one batch, so other clients wait at
        most one short command (well under a millisecond for 500 entries).

        A bad key (a shard's active index, a download's progress hash or a user's index of the
        wrong type or with an unusable value) is removed by the script that meets it and
        logged; the cleanup goes on with the other downloads and shards.
        """
        size = count_arg(batch or self.config.download.cleanup_batch, "batch")
        cutoff = wall_ms() - round(seconds_arg(older_than, "older_than", allow_zero=True) * 1000)
        removed = 0
        for shard in self.layout.all_shards():
            while True:
                keys, args = _calls.pop_stale(self.layout, shard, cutoff, size)
                try:
                    popped = await self.scripts.run("download_pop_stale", keys, args)
                except CorruptKeyError as exc:
                    log.warning("cleanup_stale: shard %d skipped: %s", shard, exc)
                    break
                if not popped:
                    break
                removed += len(popped)
                calls = [
                    _calls.forget(self.layout, shard, *parse_member(raw), cutoff) for raw in popped
                ]
                for reply in await self.scripts.run_many("download_forget", calls):
                    if isinstance(reply, CorruptKeyError):
                        log.warning("cleanup_stale: %s", reply)
                if len(popped) < size:
                    break
        return removed

    async def count_active_by_shard(self) -> dict[int, int]:
        """Active (queued, downloading, paused) downloads per shard: one ZCARD per shard's
        active index, all in one pipelined round trip.

        A download whose progress expired without a final update is counted until
        ``cleanup_stale`` drops it from the index.
        """
        shards = self.layout.all_shards()
        with translate_errors(None, operation="ZCARD download active"):
            async with self.client.pipeline(transaction=False) as pipe:
                for shard in shards:
                    pipe.zcard(self.layout.shard_keys[shard].active)
                counts = await pipe.execute()
        return {shard: int(n) for shard, n in zip(shards, counts, strict=True)}

    async def count_active(self) -> int:
        """Active downloads over every shard (``count_active_by_shard`` summed)."""
        return sum((await self.count_active_by_shard()).values())

    async def stats(self) -> dict[str, int]:
        """Counters summed over the shards (applied, stale, duplicate, coalesced, ...) and
        ``active``, the count of active downloads (``download.active`` in manager stats).
        A field that is not an integer is left out and logged (``cache.unreadable``)."""
        keys = [self.layout.shard_keys[shard].stats for shard in self.layout.all_shards()]
        with translate_errors(None, operation="HGETALL download stats"):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                rows = await pipe.execute(raise_on_error=False)
        totals = dict.fromkeys(DOWNLOAD_OUTCOMES, 0)
        skipped = Unreadable()
        for key, row in zip(keys, rows, strict=True):
            # a corrupt counters hash is skipped here; the script counting into it next
            # removes it (docs/dragonfly.md, "Bad keys")
            if isinstance(row, Exception):
                skipped.skip("download_stats", key, f"unreadable ({row})")
                continue
            for name, value in row.items():
                field = as_text(name)
                try:
                    totals[field] = totals.get(field, 0) + int(value)
                except ValueError:
                    skipped.skip("download_stats", f"{key} field {field!r}", "not an integer")
        totals["active"] = await self.count_active()
        return totals

    def follower(self, *, block_ms: int = 1000, count: int = 500) -> EventFollower:
        """A reader of the live event streams of every shard (``seen-worker watch``)."""
        return EventFollower(self.client, self.layout, block_ms=block_ms, count=count)
