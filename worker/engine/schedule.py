"""Periodic jobs: when each is due next, and its job id for that time (ARQ's cron ids).

A periodic job runs every ``period`` seconds on UTC boundaries (periods divide a UTC day, so
every worker computes the same times: ``jobs.schedule.check_period``). As ARQ's ``cron(...,
unique=True)`` it is enqueued by every worker up to ``ahead_s`` before it is due, under the id
``<name>:<due ms>`` (ARQ's own format, with ARQ's default 123.456 ms past the boundary, so plain
ARQ workers on the same queue enqueue the very same id): the id de-duplicates the copies, and
the slot claim (``jobs.schedule``) runs the body once per slot across the fleet. A test checks
the times against ``arq.cron.next_cron``.
"""

from __future__ import annotations

from dataclasses import dataclass

ARQ_CRON_OFFSET_MS = 123
"""ARQ's ``cron(microsecond=123_456)``: runs fall 123.456 ms past the boundary; ids use ms."""


@dataclass(slots=True)
class Periodic:
    """One periodic job and the next time it is due."""

    name: str
    period_s: int
    next_ms: int = 0

    def due_after(self, now_ms: int) -> int:
        """The first due time strictly after ``now_ms``."""
        period = self.period_s * 1000
        base = (now_ms // period) * period
        due = base + ARQ_CRON_OFFSET_MS
        return due if due > now_ms else due + period

    def job_id(self, due_ms: int) -> str:
        return f"{self.name}:{due_ms}"


def due_now(schedules: list[Periodic], now_ms: int, ahead_ms: int) -> list[tuple[Periodic, int]]:
    """The (schedule, due time) pairs to enqueue now: those due before ``now + ahead``; each
    then moves one period on (as ARQ's ``calculate_next``: a worker that stalled catches up one
    slot per call). A first call only sets the times."""
    out: list[tuple[Periodic, int]] = []
    for schedule in schedules:
        if schedule.next_ms == 0:
            schedule.next_ms = schedule.due_after(now_ms)
            continue
        if schedule.next_ms < now_ms + ahead_ms:
            out.append((schedule, schedule.next_ms))
            schedule.next_ms = schedule.due_after(schedule.next_ms)
    return out
