"""Jobs the tests' worker processes load through ``worker.job_modules = ["tests.support.jobs"]``:
a slow one (to abort while it runs), a failing one and an echo, declared as any team would."""

from __future__ import annotations

import asyncio
from typing import Any

from jobs import JobContext, job


@job(timeout=30)
async def test_sleep(ctx: JobContext, seconds: float) -> str:
    """Sleeps ``seconds``; aborted tests cancel it."""
    await asyncio.sleep(seconds)
    return "slept"


@job(max_tries=1)
async def test_fail(ctx: JobContext, message: str) -> None:
    """Fails with ``ValueError(message)``."""
    raise ValueError(message)


@job(name="test_echo_job")
async def echo(ctx: JobContext, *args: Any) -> list[Any]:
    """Returns its arguments (its name is not its function's)."""
    return list(args)
