"""``SeenWorker``'s poll loop reads every finished job task, and an error in one job's
bookkeeping is logged with its traceback and counted instead of ending the loop."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis

from tests.conftest import TestServer
from tests.integration.test_worker import fast_settings, make_worker


async def test_finished_job_tasks_are_read_and_their_errors_do_not_end_the_loop(
    server: TestServer, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(fast_settings(server.addr))

    async def bookkeeping_breaks() -> None:
        raise RuntimeError("bookkeeping broke")

    async def never() -> None:
        await asyncio.Event().wait()

    failed = asyncio.create_task(bookkeeping_breaks())
    cancelled = asyncio.create_task(never())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.sleep(0.01)
    worker.tasks.update({"j-failed": failed, "j-cancelled": cancelled, "j-ok": finished})
    try:
        with caplog.at_level(logging.ERROR, "seen.worker"):
            await worker._poll_iteration()
            await worker._poll_iteration()
        assert worker.tasks == {}
        assert worker.poll_errors == 1
        [record] = [r for r in caplog.records if r.name == "seen.worker"]
        assert "bookkeeping of job j-failed failed (RuntimeError: bookkeeping broke" in (
            record.getMessage()
        )
        assert record.exc_info is not None and record.exc_info[1] is failed.exception()
    finally:
        await worker.close()
