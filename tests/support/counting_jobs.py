"""A job that counts its runs, for tests that must prove no job ran twice (or never).

Loaded by worker processes through ``worker.job_modules = ["tests.support.counting_jobs"]``.
Each run adds one to the job id's field of the hash ``test:runs`` and to its layout's field of
``test:runs:layout`` (one transaction) and returns the id's count: a result record of 1 is a
first run, and ``HGETALL test:runs`` shows any id that ran twice.
"""

from __future__ import annotations

import asyncio

from jobs import JobContext, job
from jobs.context import queue_layout

RUNS = "test:runs"
RUNS_BY_LAYOUT = "test:runs:layout"


@job(name="count_run", keep_result=3600)
async def count_run(ctx: JobContext, pause: float = 0.0) -> int:
    """Counts this run of the job id (after ``pause`` seconds: the worker holds it meanwhile)."""
    if pause:
        await asyncio.sleep(pause)
    async with ctx["redis"].pipeline(transaction=True) as tx:
        tx.hincrby(RUNS, ctx["job_id"], 1)
        tx.hincrby(RUNS_BY_LAYOUT, queue_layout(ctx).kind, 1)
        count, _ = await tx.execute()
    return int(count)
