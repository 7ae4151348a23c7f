"""Periodic jobs: each one's recent slots with their state, its run history, its last success.

Built from what ``jobs.schedule`` and ``jobs.slotrun`` leave on the queue store: the slot
claims ``seen:cron:<job>:<slot>`` (``run:<id>`` owed or running, ``done:<id>`` closed; they
live two periods plus a minute) and the capped run history ``seen:cronlog:<job>`` (newest
first; each run's slot, outcome and the owed slots it ``covered``). Where a claim has expired the
history decides; a slot older than a full history is not shown (it can no longer be judged),
nor a slot whose grace ran out before the fleet left any trace (its oldest recorded run, its
earliest worker start): after a fresh deployment the slots before it are not "missed".
``models.SLOT_STATES`` says what each state means. One pipelined round trip for every job.

A row that cannot be read is skipped and noted in an ``Unreadable`` (``cache.unreadable``): a
history entry that is not a run (kind ``cron_history``; a history key of another type counts
once), a claim that is not ``run:<id>`` / ``done:<id>`` or not a string (kind ``cron_slot``:
that slot is not shown, as its state cannot be judged). The other slots and runs are shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from cache.codec import as_text
from cache.errors import translate_errors
from cache.keys import KeyBuilder
from cache.unreadable import Unreadable
from jobs.config import MaintenanceSettings
from jobs.schedule import scheduled_ms, slot_of
from worker.http.fleet.models import RunView, Schedule, SlotView


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_run(raw: bytes | str) -> RunView | None:
    """One history entry; None when it is not what ``SlotRun`` records."""
    try:
        entry = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("job_id"), str):
        return None
    seconds = entry.get("seconds")
    covered = entry.get("covered")
    return RunView(
        job_id=entry["job_id"],
        slot=_int(entry.get("slot")),
        outcome=str(entry.get("outcome", "?")),
        started_ms=_int(entry.get("started_ms")) or 0,
        seconds=float(seconds) if isinstance(seconds, int | float) else None,
        worker=entry.get("worker") if isinstance(entry.get("worker"), str) else None,
        job_try=_int(entry.get("try")),
        covered=tuple(s for s in covered if _int(s) is not None)
        if isinstance(covered, list)
        else (),
    )


CLAIM_STATES = ("run", "done")


def claim_of(raw: object) -> str | None:
    """A slot claim's text, ``run:<id>`` or ``done:<id>``; None when it is anything else."""
    if not isinstance(raw, bytes | str):
        return None
    text = as_text(raw)
    state, sep, job_id = text.partition(":")
    return text if sep and state in CLAIM_STATES and job_id else None


def last_success_ms(runs: list[RunView]) -> int | None:
    """When the newest successful run finished (its start plus its duration)."""
    for run in runs:
        if run.outcome == "ok":
            return run.started_ms + round((run.seconds or 0.0) * 1000)
    return None


def slot_state(
    name: str,
    period: int,
    slot: int,
    claim: str | None,
    runs: list[RunView],
    now_ms: int,
    grace_ms: int,
) -> SlotView:
    """The state of one slot from its claim (if it still exists) and the run history."""
    start_ms = slot * period * 1000
    if start_ms > now_ms:
        return SlotView(slot, start_ms, "expected")
    own = [r for r in runs if r.slot == slot]
    cover = next((r for r in runs if r.outcome == "ok" and slot in r.covered), None)
    succeeded = next((r for r in own if r.outcome == "ok"), None)
    failed = next((r for r in own if r.outcome.startswith("error")), None)
    if claim is not None:
        state, _, job_id = claim.partition(":")
        if state == "run":
            return SlotView(slot, start_ms, "claimed", job_id)
        if failed is not None and failed.job_id == job_id:
            return SlotView(slot, start_ms, "failed", job_id)
        scheduled = scheduled_ms(name, job_id)
        if scheduled is not None and slot_of(scheduled, period) == slot:
            return SlotView(slot, start_ms, "done", job_id)
        # closed by a later run (or a manual one): the claim names that run
        return SlotView(slot, start_ms, "done", own[0].job_id if own else None, job_id)
    if succeeded is not None:
        return SlotView(slot, start_ms, "done", succeeded.job_id)
    if cover is not None:
        return SlotView(slot, start_ms, "done", own[0].job_id if own else None, cover.job_id)
    if failed is not None:
        return SlotView(slot, start_ms, "failed", failed.job_id)
    if own:
        return SlotView(slot, start_ms, "skipped", own[0].job_id)
    if now_ms - start_ms < grace_ms:
        return SlotView(slot, start_ms, "expected")
    return SlotView(slot, start_ms, "missed")


async def read_schedules(
    queue: Redis,
    keys: KeyBuilder,
    maintenance: MaintenanceSettings,
    periods: Mapping[str, int],
    now_ms: int,
    *,
    slots: int,
    history: int,
    grace_s: float,
    first_worker_ms: int | None = None,
    unreadable: Unreadable | None = None,
) -> list[Schedule]:
    """Every periodic job in ``periods`` (name: period in force, 0 = off; ``JobRegistry.
    slot_periods``): the last ``slots`` slots and the next one.
    ``first_worker_ms``: when the earliest worker still in the heartbeat index started."""
    skipped = unreadable if unreadable is not None else Unreadable()
    enabled = [(name, period) for name, period in periods.items() if period > 0]
    keep = max(1, maintenance.history)
    windows: list[range] = []
    with translate_errors(keys.key("cronlog"), operation="read schedules"):
        async with queue.pipeline(transaction=False) as pipe:
            for name, period in enabled:
                current = now_ms // (period * 1000)
                window = range(current - slots + 1, current + 2)
                windows.append(window)
                for slot in window:
                    pipe.get(keys.cron_slot(name, slot))
                pipe.lrange(keys.cron_history(name), 0, keep - 1)
            replies = await pipe.execute(raise_on_error=False)
    out: list[Schedule] = []
    at = 0
    for (name, period), window in zip(enabled, windows, strict=True):
        claims = replies[at : at + len(window)]
        runs = _runs(replies[at + len(window)], keys.cron_history(name), skipped)
        at += len(window) + 1
        full = len(runs.raw) >= keep
        oldest_known = runs.good[-1].started_ms if full and runs.good else None
        traces = [
            t for t in (first_worker_ms, runs.good[-1].started_ms if runs.good else None) if t
        ]
        tracked_since = min(traces, default=None)
        grace_ms = round(min(grace_s, period) * 1000)
        views = []
        for slot, raw_claim in zip(window, claims, strict=True):
            claim = None if raw_claim is None else claim_of(raw_claim)
            if raw_claim is not None and claim is None:
                why = (
                    str(raw_claim)
                    if isinstance(raw_claim, Exception)
                    else "not run:<id> or done:<id>"
                )
                skipped.skip("cron_slot", keys.cron_slot(name, slot), why)
                continue  # its state cannot be judged
            start = slot * period * 1000
            if oldest_known is not None and start < oldest_known and claim is None:
                continue  # older than the whole kept history: cannot be judged
            untracked = tracked_since is not None and start + grace_ms <= tracked_since
            done_by_run = any(slot in (r.slot, *r.covered) for r in runs.good)
            if untracked and claim is None and not done_by_run:
                continue  # its grace ran out before any worker or run of the fleet
            views.append(slot_state(name, period, slot, claim, runs.good, now_ms, grace_ms))
        out.append(
            Schedule(
                name=name,
                period_s=period,
                slots=views,
                history=runs.good[:history],
                last_success_ms=last_success_ms(runs.good),
            )
        )
    return out


@dataclass(frozen=True)
class _Runs:
    raw: list[object]
    good: list[RunView]


def _runs(reply: object, key: str, skipped: Unreadable) -> _Runs:
    """The readable runs of one history reply; the others noted in ``skipped``."""
    if isinstance(reply, Exception) or not isinstance(reply, list):
        skipped.skip("cron_history", key, str(reply))
        return _Runs([], [])
    good = []
    for n, raw in enumerate(reply):
        run = parse_run(raw) if isinstance(raw, bytes | str) else None
        if run is None:
            skipped.skip("cron_history", f"{key} entry {n}", "not a recorded run")
        else:
            good.append(run)
    return _Runs(reply, good)
