"""A job module whose job's name is one of ours (tests/integration/test_outside_jobs.py)."""

from __future__ import annotations

from jobs import JobContext, job


@job
async def ping(ctx: JobContext) -> str:
    return "not our ping"
