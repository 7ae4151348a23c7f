"""The store side of coalescing: pending slots and one scheduled drain job per shard.

A producer ``put``s an update into its download's slot (only a newer seq replaces it) and, in
the same script, learns whether the shard needs a drain job: the put either finds one
scheduled (nothing to do) or schedules a fresh id that the caller must enqueue. A drain job
``claim``s (unschedules) itself first and then applies every pending slot of the shard, each
consumed atomically with its apply. docs/progress.md proves this loses no update. This module
never enqueues: the jobs layer (``jobs.client.ProgressPublisher``) does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from cache.download_layout import DownloadLayout, now_ms, parse_member, update_args
from cache.download_models import ApplyOutcome, ProgressUpdate, PublishOutcome
from cache.errors import translate_errors
from cache.numbers import count_arg, seconds_arg
from cache.scripts import ScriptCall, ScriptRunner

DrainIdFactory = Callable[[int], str]
"""Makes a fresh drain job id for a shard (the jobs layer owns the id format)."""


@dataclass(frozen=True)
class PutResult:
    """What one coalescing put did; ``drain_id`` is set when the caller must enqueue it."""

    outcome: PublishOutcome
    shard: int
    drain_id: str | None = None


@dataclass
class DrainReport:
    """What one drain job did; ``handoff_id`` is a drain job the caller must enqueue."""

    shard: int
    claimed: bool = False
    rounds: int = 0
    applied: int = 0
    ignored: int = 0
    rejected: int = 0
    empty: int = 0
    handoff_id: str | None = None

    def count(self, outcome: ApplyOutcome) -> None:
        if outcome is ApplyOutcome.APPLIED:
            self.applied += 1
        elif outcome is ApplyOutcome.EMPTY:
            self.empty += 1
        elif outcome is ApplyOutcome.REJECTED:
            self.rejected += 1
        else:
            self.ignored += 1


class PendingUpdates:
    """Pending slots, the per-shard pending set and the per-shard drain record."""

    def __init__(self, client: Redis, scripts: ScriptRunner, layout: DownloadLayout) -> None:
        self.client = client
        self.scripts = scripts
        self.layout = layout
        self.keys = layout.keys

    def _put_call(self, update: ProgressUpdate, shard: int, drain_id: str, now: int) -> ScriptCall:
        k, common = self.keys, self.layout.shard_keys[shard]
        keys = [
            k.download_pending(update.job_id, shard),
            common.pending_set,
            common.drain,
            k.download_progress(update.job_id, shard),
            common.stats,
        ]
        args = (
            *update_args(update),
            drain_id,
            now,
            self.layout.lease_ms,
            self.layout.pending_ttl_ms,
        )
        return keys, args

    async def put(self, update: ProgressUpdate, new_id: DrainIdFactory) -> PutResult:
        """Store ``update`` as its download's pending update (if newest); one round trip."""
        return (await self.put_many([update], new_id))[0]

    async def put_many(
        self, updates: Sequence[ProgressUpdate], new_id: DrainIdFactory
    ) -> list[PutResult]:
        """``put`` for many updates in one pipelined round trip; results in input order."""
        now = now_ms()
        candidates: dict[int, str] = {}
        calls: list[ScriptCall] = []
        shards: list[int] = []
        for update in updates:
            shard = self.layout.shard(update.job_id)
            if shard not in candidates:
                candidates[shard] = new_id(shard)
            shards.append(shard)
            calls.append(self._put_call(update, shard, candidates[shard], now))
        replies = await self.scripts.run_many("download_pending_put", calls)
        results = []
        for shard, (code, drain) in zip(shards, replies, strict=True):
            outcome = PublishOutcome(int(code))
            drain_id = drain.decode() if outcome.needs_enqueue else None
            results.append(PutResult(outcome, shard, drain_id))
        return results

    async def claim(self, shard: int, drain_id: str) -> bool:
        """Unschedule the shard's drain if it is ``drain_id``; True when it was."""
        key = self.layout.shard_keys[shard].drain
        return bool(await self.scripts.run("download_drain_claim", [key], [drain_id]))

    async def peek(self, shard: int, limit: int) -> tuple[list[tuple[str, str]], bool]:
        """Up to ``limit`` pending downloads (oldest first) and whether a drain is scheduled."""
        pending, drain = (
            self.layout.shard_keys[shard].pending_set,
            self.layout.shard_keys[shard].drain,
        )
        with translate_errors(pending, operation="ZRANGE pending"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zrange(pending, 0, limit - 1)
                pipe.exists(drain)
                members, scheduled = await pipe.execute()
        return [parse_member(m) for m in members], bool(scheduled)

    async def apply(
        self, shard: int, downloads: Sequence[tuple[str, str]], *, now: int | None = None
    ) -> list[ApplyOutcome]:
        """Apply and consume the pending slots of ``downloads`` in one round trip."""
        stamp = now or now_ms()
        calls = [self.layout.apply_pending_call(shard, j, u, stamp) for j, u in downloads]
        return [ApplyOutcome(int(r)) for r in await self.scripts.run_many("download_apply", calls)]

    async def drain(
        self,
        shard: int,
        drain_id: str,
        new_id: DrainIdFactory,
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
        report = DrainReport(shard, claimed=await self.claim(shard, drain_id))
        while True:
            downloads, scheduled = await self.peek(shard, size)
            if not downloads:
                return report
            report.rounds += 1
            for outcome in await self.apply(shard, downloads):
                report.count(outcome)
            if scheduled:
                return report
            if time.monotonic() >= deadline:
                code, handoff = await self.kick(shard, new_id(shard))
                report.handoff_id = handoff if code.needs_enqueue else None
                return report

    async def kick(
        self, shard: int, drain_id: str, *, lease_ms: int | None = None
    ) -> tuple[PublishOutcome, str | None]:
        """Schedule a drain for ``shard`` if it has pending updates and none is scheduled (or
        the scheduled one is older than the lease). Returns the id to enqueue, if any."""
        common = self.layout.shard_keys[shard]
        keys = [common.pending_set, common.drain]
        lease = self.layout.lease_ms if lease_ms is None else count_arg(lease_ms, "lease_ms")
        args = (drain_id, now_ms(), lease, self.layout.pending_ttl_ms)
        code, found = await self.scripts.run("download_drain_kick", keys, args)
        outcome = PublishOutcome(int(code))  # 0 nothing pending, 1 scheduled, 2/3 enqueue
        return outcome, (found.decode() if outcome.needs_enqueue else None)

    async def pending_count(self) -> int:
        """Downloads with a pending (not yet applied) update, over all shards."""
        with translate_errors(None, operation="ZCARD pending"):
            async with self.client.pipeline(transaction=False) as pipe:
                for shard in self.layout.all_shards():
                    pipe.zcard(self.layout.shard_keys[shard].pending_set)
                counts = await pipe.execute()
        return sum(int(c) for c in counts)
