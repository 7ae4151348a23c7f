"""The store side of coalescing: pending updates and one scheduled drain job per shard.

A producer ``put``s an update as its download's pending update (only a newer seq replaces
it) and, in the same script, learns whether the shard needs a drain job: the put either finds one
scheduled (nothing to do) or schedules a fresh id that the caller must enqueue. A drain job
``claim``s (unschedules) itself first and then applies every pending update of the shard, each
consumed atomically with its apply. docs/progress.md proves this loses no update. This module
never enqueues: the jobs layer (``jobs.client.ProgressPublisher``) does, with the ids returned
here. Drain ids come from one factory given at construction (``new_drain_id`` by default).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as redis_exc
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.download import _calls
from cache.download._layout import DownloadLayout, parse_member
from cache.download._models import (
    ApplyOutcome,
    ApplyResult,
    ProgressUpdate,
    PublishOutcome,
    apply_results,
)
from cache.errors import CorruptKeyError, translate_errors
from cache.numbers import count_arg, seconds_arg
from cache.scripts import ScriptRunner

log = logging.getLogger(__name__)
DrainIdFactory = Callable[[int], str]
"""Makes a fresh drain job id for a shard; the id is the ARQ job id of the drain job."""


def new_drain_id(shard: int) -> str:
    """A fresh id for a shard's drain job (never re-used for a new schedule)."""
    return f"progress-drain:{shard}:{secrets.token_hex(8)}"


@dataclass(frozen=True)
class PutResult:
    """What one coalescing put did; ``drain_id`` is set when the caller must enqueue it;
    ``error`` names the bad stored key of a ``CORRUPT`` put."""

    outcome: PublishOutcome
    shard: int
    drain_id: str | None = None
    error: CorruptKeyError | None = None


@dataclass
class DrainReport:
    """What one drain job did; ``handoff_id`` is a drain job the caller must enqueue.

    ``corrupt`` counts the bad stored keys the drain met (each removed by the script that met
    it) and ``problems`` says which, one message each; ``lost`` maps each download
    (``<job>:<user>``) whose pending update was itself unusable, and was dropped, to that
    message (the drain job dead-letters them). An update that met any other bad key stays
    pending and is applied by the next round."""

    shard: int
    claimed: bool = False
    rounds: int = 0
    applied: int = 0
    ignored: int = 0
    rejected: int = 0
    empty: int = 0
    corrupt: int = 0
    handoff_id: str | None = None
    problems: list[str] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)

    def count(self, outcome: ApplyOutcome) -> None:
        if outcome is ApplyOutcome.APPLIED:
            self.applied += 1
        elif outcome is ApplyOutcome.EMPTY:
            self.empty += 1
        elif outcome is ApplyOutcome.REJECTED:
            self.rejected += 1
        elif outcome is ApplyOutcome.CORRUPT:
            self.corrupt += 1
        else:
            self.ignored += 1

    def problem(self, error: CorruptKeyError) -> None:
        """Note a bad key met outside an apply (the claim, the pending set, a hand-off)."""
        self.corrupt += 1
        self.problems.append(str(error))
        log.warning("drain of shard %d: %s", self.shard, error)


class PendingUpdates:
    """Pending pending updates, the per-shard pending set and the per-shard drain record."""

    def __init__(
        self,
        client: Redis,
        scripts: ScriptRunner,
        layout: DownloadLayout,
        drain_ids: DrainIdFactory = new_drain_id,
        outcomes: Counter[ApplyOutcome] | None = None,
    ) -> None:
        self.client = client
        self.scripts = scripts
        self.layout = layout
        self.drain_ids = drain_ids
        self.outcomes: Counter[ApplyOutcome] = Counter() if outcomes is None else outcomes
        self.published: Counter[PublishOutcome] = Counter()
        """Puts made by this process (a producer's), by what the put script did."""
        self.drain_jobs = 0
        """Drain jobs run in this process (a worker's)."""
        self.drained_updates = 0
        """Pending updates those drain jobs consumed (applied, ignored or rejected), so
        ``drained_updates / drain_jobs`` is the coalescing batch size."""

    async def put_many(self, updates: Sequence[ProgressUpdate]) -> list[PutResult]:
        """Store each update as its download's pending one (if newest), in one pipelined round
        trip; results in input order. One fresh drain id per shard touched."""
        now = wall_ms()
        candidates: dict[int, str] = {}
        calls = []
        shards: list[int] = []
        for update in updates:
            shard = self.layout.shard(update.job_id)
            if shard not in candidates:
                candidates[shard] = self.drain_ids(shard)
            shards.append(shard)
            calls.append(_calls.pending_put(self.layout, update, shard, candidates[shard], now))
        replies = await self.scripts.run_many("download_pending_put", calls)
        results = []
        for shard, reply in zip(shards, replies, strict=True):
            if isinstance(reply, CorruptKeyError):
                results.append(PutResult(PublishOutcome.CORRUPT, shard, error=reply))
                self.published[PublishOutcome.CORRUPT] += 1
                continue
            code, drain = reply
            outcome = PublishOutcome(int(code))
            drain_id = drain.decode() if outcome.needs_enqueue else None
            results.append(PutResult(outcome, shard, drain_id))
            self.published[outcome] += 1
        return results

    async def claim(self, shard: int, drain_id: str) -> bool:
        """Unschedule the shard's drain if it is ``drain_id``; True when it was. A drain
        record of the wrong type raises ``CorruptKeyError`` (the record is removed)."""
        keys, args = _calls.drain_claim(self.layout, shard, drain_id)
        return bool(await self.scripts.run("download_drain_claim", keys, args))

    async def oldest(self, shard: int, limit: int) -> tuple[list[tuple[str, str]], bool]:
        """Up to ``limit`` pending downloads (oldest first) and whether a drain is scheduled.

        A pending set of the wrong type raises ``CorruptKeyError`` after the kick script has
        removed it (its downloads come back with their next put)."""
        common = self.layout.shard_keys[shard]
        with translate_errors(common.pending_set, operation="ZRANGE pending"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zrange(common.pending_set, 0, limit - 1)
                pipe.exists(common.drain)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
        members, scheduled = replies
        if isinstance(members, redis_exc.ResponseError) and "WRONGTYPE" in str(members):
            await self.kick(shard, self.layout.lease_ms)  # its check removes the bad set
        for reply in replies:
            if isinstance(reply, Exception):
                with translate_errors(common.pending_set, operation="ZRANGE pending"):
                    raise reply
        return [parse_member(m) for m in members], bool(scheduled)

    async def apply(self, shard: int, downloads: Sequence[tuple[str, str]]) -> list[ApplyResult]:
        """Apply and consume the pending updates of ``downloads`` in one round trip."""
        now = wall_ms()
        calls = [_calls.apply_pending(self.layout, shard, j, u, now) for j, u in downloads]
        results = apply_results(await self.scripts.run_many("download_apply", calls))
        self.outcomes.update(r.outcome for r in results)
        return results

    async def drain(
        self,
        shard: int,
        drain_id: str,
        *,
        batch: int | None = None,
        budget: float | None = None,
    ) -> DrainReport:
        """Run drain job ``drain_id`` of ``shard``: claim, then apply until nothing is pending.

        Stops early when another drain is scheduled (it will apply whatever is left) or after
        ``budget`` seconds, in which case it schedules a successor (``report.handoff_id``,
        which the caller must enqueue) unless one is already scheduled.
        """
        size = count_arg(batch or self.layout.settings.drain_batch, "batch")
        if budget is None:
            budget = self.layout.settings.drain_budget
        deadline = time.monotonic() + seconds_arg(budget, "budget", allow_zero=True)
        report = DrainReport(shard)
        try:
            report.claimed = await self.claim(shard, drain_id)
        except CorruptKeyError as exc:  # the bad record is gone: drain all the same
            report.problem(exc)
        self.drain_jobs += 1
        while True:
            try:
                downloads, scheduled = await self.oldest(shard, size)
            except CorruptKeyError as exc:
                report.problem(exc)
                return report
            if not downloads:
                return report
            report.rounds += 1
            results = await self.apply(shard, downloads)
            for (job, user), result in zip(downloads, results, strict=True):
                report.count(result.outcome)
                self.drained_updates += result.outcome is not ApplyOutcome.EMPTY
                if result.error is not None:
                    report.problems.append(str(result.error))
                    log.warning("drain of shard %d: %s", shard, result.error)
                    if result.error.key == self.layout.keys.download_pending(job, shard):
                        report.lost[f"{job}:{user}"] = str(result.error)
            if scheduled:
                return report
            if time.monotonic() >= deadline:
                try:
                    report.handoff_id = await self.schedule(shard)
                except CorruptKeyError as exc:
                    report.problem(exc)
                return report

    async def schedule(self, shard: int, *, lease_ms: int | None = None) -> str | None:
        """Schedule a drain for ``shard`` if it has pending updates and none is scheduled (or
        the scheduled one is older than the lease). Returns the new id to enqueue, if any.

        A bad pending set or drain record is logged and removed by the kick script, which is
        then run once more (a second ``CorruptKeyError`` is raised)."""
        lease = self.layout.lease_ms if lease_ms is None else count_arg(lease_ms, "lease_ms")
        try:
            return await self.kick(shard, lease)
        except CorruptKeyError as exc:
            log.warning("scheduling a drain of shard %d: %s; trying again", shard, exc)
            return await self.kick(shard, lease)

    async def kick(self, shard: int, lease_ms: int) -> str | None:
        """One ``download_drain_kick``: the new drain id to enqueue, if any."""
        keys, args = _calls.drain_kick(
            self.layout, shard, self.drain_ids(shard), wall_ms(), lease_ms
        )
        code, found = await self.scripts.run("download_drain_kick", keys, args)
        outcome = PublishOutcome(int(code))  # 0 nothing pending, 1 scheduled, 2/3 enqueue
        return found.decode() if outcome.needs_enqueue else None

    async def pending_count(self) -> int:
        """Downloads with a pending (not yet applied) update, over all shards."""
        with translate_errors(None, operation="ZCARD pending"):
            async with self.client.pipeline(transaction=False) as pipe:
                for shard in self.layout.all_shards():
                    pipe.zcard(self.layout.shard_keys[shard].pending_set)
                counts = await pipe.execute()
        return sum(int(c) for c in counts)
