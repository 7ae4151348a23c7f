"""A job module whose job's name is taken by the outside package of docs/write-your-own-job.md
(tests/integration/test_outside_jobs.py)."""

from __future__ import annotations

from jobs import JobContext, job


@job(name="greet")
async def other_greet(ctx: JobContext) -> str:
    return "hi"
