"""One run of a periodic job: slot claim, run guard, body, history, and how the run ends.

A scheduled run (ARQ cron id ``<name>:<ms>``) claims its slot (``jobs.schedule``); every run
then holds the job's run guard (``jobs.guard``) for its body. A run ends in one of these ways:

- skipped, unrecorded: its slot is done, or claimed by another copy.
- ``deferred``: another run holds the guard. A scheduled run leaves its slot owed (``run:<id>``)
  instead of closing it: the next run that finishes its body closes it (``cover``). A manual
  run is recorded as ``skipped``.
- ``ok`` / ``error``: the body finished. The slot is closed (``done:<id>``) and, on success, so
  is every owed slot scheduled before the body started: this run did their work too.
- ``cancelled``: cancelled before its body finished (shutdown grace over, timeout, abort). The
  run hands its slot back: guard released, the claim kept as ``run:<id>`` so only the retry of
  this job id resumes it, and, when its worker is stopping, ARQ's ``arq:in-progress:<id>``
  marker deleted so that retry starts at once on any worker instead of 60 s later
  (``keep_cronjob_progress``). The marker is deleted only after the guard is released, and only
  for a function ARQ runs as a cron job (its end keeps the marker with PEXPIRE and never deletes
  it, so the stopping worker cannot touch the retry's marker afterwards).

The way a run ended without running its body is left in ``ctx["run_outcome"]`` (``skipped``
or ``deferred``) for the worker's ``seen_cron_runs_total``; a finished body, an error and a
hand-back are told apart by the job's own return, exception and cancellation.

Closing and handing back are single steps that a cancellation does not cut short
(``jobs.shield``); a run whose body finished is never handed back. A killed worker hands nothing
back: its job's lease (``worker.job_lease``) and its guard expire, and the retry resumes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from cache.clock import wall_s
from cache.errors import CacheError, translate_errors
from cache.scripts import ScriptRunner
from jobs.context import JobContext, queue_layout
from jobs.guard import RunGuard
from jobs.schedule import ClaimState, SlotClaims, now_ms, owed_window, scheduled_ms, slot_of
from jobs.shield import complete

log = logging.getLogger("seen.jobs.maintenance")

Result = dict[str, Any]


@dataclass
class SlotRun:
    """The state of one run; see the module docstring for how it ends."""

    name: str
    job_id: str
    period: int
    slot: int | None
    claims: SlotClaims
    guard: RunGuard
    guard_ttl: float
    keep: int
    entry: Result
    started: float
    claimed: bool = False
    holds_guard: bool = False

    @classmethod
    def create(cls, ctx: JobContext, name: str, period: int, guard_ttl: float) -> SlotRun:
        """``period``: the job's period in force (0 = not scheduled: every run is manual);
        ``guard_ttl``: its timeout (the run guard outlives a live run by a margin)."""
        manager = ctx["cache"]
        cfg = ctx["settings"].maintenance
        scripts = ctx.get("queue_scripts") or ScriptRunner(ctx["redis"])
        job_id = str(ctx.get("job_id") or f"manual-{secrets.token_hex(6)}")
        scheduled = scheduled_ms(name, job_id) if period else None
        slot = None if scheduled is None else slot_of(scheduled, period)
        started = wall_s()
        entry: Result = {
            "job_id": job_id,
            "slot": slot,
            "try": ctx.get("job_try", 1),
            "worker": ctx.get("worker_id"),
            "started_ms": int(started * 1000),
        }
        return cls(
            name=name,
            job_id=job_id,
            period=period,
            slot=slot,
            claims=SlotClaims(scripts, manager.keys),
            guard=RunGuard(scripts, manager.keys),
            guard_ttl=guard_ttl,
            keep=cfg.history,
            entry=entry,
            started=started,
        )

    # -- before the body ------------------------------------------------------------------
    async def claim(self) -> bool:
        """Claim the slot of a scheduled run; False when it is done or another copy's."""
        slot = self.slot
        if slot is None:
            return True
        state = await self.claims.claim(self.name, slot, self.job_id, self.period)
        if state is ClaimState.TAKEN:
            log.info("%s: slot %d already ran or is running elsewhere; skipped", self.name, slot)
            return False
        if state is ClaimState.RESUMED:
            log.info("%s: resuming slot %d (try %s)", self.name, self.slot, self.entry["try"])
        self.claimed = True
        return True

    async def acquire(self) -> bool:
        self.holds_guard = await self.guard.acquire(self.name, self.job_id, self.guard_ttl)
        return self.holds_guard

    async def still_owed(self) -> bool:
        """With the guard held: is the slot still ours to run (not closed by a later run)?"""
        if self.slot is None or await self.claims.owns(self.name, self.slot, self.job_id):
            return True
        log.info("%s: slot %d was done by another run meanwhile; skipped", self.name, self.slot)
        await self._release()
        return False

    async def defer(self) -> None:
        """The guard is busy: record it; a scheduled run's slot stays owed."""
        if self.slot is None:
            log.info("%s: another run is in progress; this one is skipped", self.name)
            outcome = "skipped"
        else:
            log.info(
                "%s: another run is in progress; slot %d stays owed to the next run that finishes",
                self.name,
                self.slot,
            )
            outcome = "deferred"
        await self._record(outcome)

    # -- how it ends ----------------------------------------------------------------------
    async def close(self, outcome: str, body_started_ms: int | None) -> None:
        """The body finished: close the slot (and, on success, the owed ones before it)."""
        try:
            if self.claimed and not await self._finish_own():
                log.warning("%s: claim of slot %s expired before it finished", self.name, self.slot)
            if outcome == "ok" and body_started_ms is not None and self.period > 0:
                window = owed_window(slot_of(body_started_ms, self.period), self.period)
                owed = [s for s in window if s != self.slot]
                covered = await self.claims.cover(self.name, owed, self.job_id)
                if covered:
                    self.entry["covered"] = covered
                    log.info("%s: also did the owed work of slots %s", self.name, covered)
            await self._record(outcome)
        finally:
            await self._release()

    async def hand_back(
        self, queue: Redis | None, stopping: bool, lease: tuple[str, bytes | None]
    ) -> None:
        """Cancelled before the body finished: free the slot for this job id's retry.

        ``lease`` is this run's lease key and token (the engine's; no token under plain ARQ):
        the marker is deleted only while it still holds the token (compare-and-delete), so a
        retry's marker is never touched."""
        try:
            await self.guard.release(self.name, self.job_id)
        except CacheError as exc:
            # The retry could start while this guard still stands: leave ARQ's marker alone.
            log.warning("%s: guard not released (%s); the retry waits for it", self.name, exc)
            return
        self.holds_guard = False
        if stopping and self.period > 0 and queue is not None:
            key, token = lease
            if token is None:  # claimed by plain ARQ: its marker holds no token
                with translate_errors(key, operation="DEL"):
                    await queue.delete(key)
            elif not await self.guard.lease.release(key, token):  # same (queue) store
                log.warning("%s: lease already gone; its retry may have started", self.name)
            log.info(
                "%s: cancelled by the shutdown; %s handed back, its retry can start at once",
                self.name,
                "manual run" if self.slot is None else f"slot {self.slot}",
            )
        await self._record("cancelled")

    async def _finish_own(self) -> bool:
        return self.slot is None or await self.claims.finish(self.name, self.slot, self.job_id)

    async def _record(self, outcome: str) -> None:
        self.entry.update(outcome=outcome, seconds=round(wall_s() - self.started, 3))
        await self.claims.record(self.name, self.entry, self.keep)

    async def _release(self) -> None:
        if not self.holds_guard:
            return
        try:
            await self.guard.release(self.name, self.job_id)
        except CacheError as exc:
            log.warning("%s: guard not released (%s); it expires by itself", self.name, exc)
        self.holds_guard = False


def run_lease(ctx: JobContext) -> tuple[str, bytes | None]:
    """This run's lease key and token: the engine's (``ctx["lease"]``), or under plain ARQ the
    in-progress key of ARQ's layout, which holds no token."""
    lease = ctx.get("lease")
    if lease is not None:
        return lease.key, lease.token
    return queue_layout(ctx).for_job(str(ctx.get("job_id", ""))).in_progress(
        str(ctx.get("job_id", ""))
    ), None


def stopping(ctx: JobContext) -> bool:
    """Is this worker stopping? (The engine sets its runtime's state on SIGTERM/SIGINT.)"""
    runtime = ctx.get("runtime")
    return runtime is not None and runtime.state == "stopping"


async def run_slot(
    ctx: JobContext,
    name: str,
    body: Callable[[], Awaitable[Result]],
    prelude: Callable[[], Awaitable[Result]] | None = None,
    *,
    period: int,
    guard_ttl: float,
) -> Result:
    """Claim, guard, body and the end of one run (module docstring). ``prelude`` runs before
    the guard is taken and even when it is busy (per-process work). ``@periodic``
    (``jobs.registry``) calls it with the job's period and timeout in force."""
    run = SlotRun.create(ctx, name, period, guard_ttl)
    try:
        if not await run.claim():
            ctx["run_outcome"] = "skipped"
            return {"skipped": "slot already ran", "slot": run.slot}
        result: Result = await prelude() if prelude is not None else {}
        if not await run.acquire():
            await run.defer()
            ctx["run_outcome"] = "skipped" if run.slot is None else "deferred"
            result["skipped"] = "another run in progress"
            return result
        if not await run.still_owed():
            ctx["run_outcome"] = "skipped"
            return {"skipped": "slot already ran", "slot": run.slot}
        body_started = now_ms()
        result.update(await body())
    except asyncio.CancelledError:
        step = run.hand_back(ctx.get("redis"), stopping(ctx), run_lease(ctx))
        await complete(step, f"{name}: hand-back", cancelled=True)
        raise
    except Exception as exc:
        await complete(run.close(f"error: {type(exc).__name__}", None), f"{name}: closing")
        raise
    await complete(run.close("ok", body_started), f"{name}: closing")
    return result
