"""The tests' producer: ARQ's ``ArqRedis.enqueue_job`` / ``Job`` surface on the lane's layout.

Most tests enqueue a job and wait for its result; written against ARQ's client they ran on
ARQ's layout only. ``TestQueue`` offers the same calls over the project's own producer API
(``jobs.enqueue``, ``jobs.JobHandle``), which work on both layouts, so those tests run on the
lane's layout (``tests.support.layout``). ARQ compatibility itself is tested with ARQ's client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from cache.client import create_client
from cache.clock import wall_ms
from jobs.client import enqueue_job
from jobs.handle import JobHandle, JobInfo, JobStatus
from jobs.wire.layout import QueueLayout
from tests.support.layout import LAYOUT
from worker.settings import load_settings


class TestJob:
    """One enqueued job (ARQ's ``Job`` calls the tests use)."""

    __test__ = False

    def __init__(self, handle: JobHandle) -> None:
        self.handle = handle
        self.job_id = handle.job_id

    async def result(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - ARQ's Job.result(timeout), bounded
        *,
        poll_delay: float = 0.5,
    ) -> Any:
        """The job's result, waiting at most ``timeout`` seconds (30 when not given)."""
        return await self.handle.result(30.0 if timeout is None else timeout, poll_delay=poll_delay)

    async def status(self) -> JobStatus:
        return await self.handle.status()

    async def info(self) -> JobInfo | None:
        return await self.handle.info()

    async def result_info(self) -> JobInfo | None:
        """The result record's view, None until the job finished."""
        info = await self.handle.info()
        return info if info is not None and info.success is not None else None

    async def abort(self, *, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - as ARQ's
        return await self.handle.abort(timeout)


class TestQueue:
    """Enqueues on ``layout`` (the lane's) through the producer API; closes its client."""

    __test__ = False

    def __init__(self, client: Redis, layout: QueueLayout = LAYOUT) -> None:
        self.client = client
        self.layout = layout

    async def enqueue_job(
        self,
        function: str,
        *args: Any,
        _job_id: str | None = None,
        _defer_by: float | None = None,
        _defer_until: datetime | None = None,
        _queue_name: str | None = None,
    ) -> TestJob | None:
        defer_ms: int | None = None
        if _defer_by is not None:
            defer_ms = wall_ms() + round(_defer_by * 1000)
        elif _defer_until is not None:
            defer_ms = round(_defer_until.timestamp() * 1000)
        layout = self.layout
        if _queue_name is not None:
            layout = QueueLayout.of(layout.kind, _queue_name, layout.count)
        job_id = await enqueue_job(
            self.client,
            function,
            *args,
            job_id=_job_id,
            layout=layout,
            defer_until_ms=defer_ms,
        )
        return None if job_id is None else TestJob(JobHandle(self.client, layout, job_id))

    def job(self, job_id: str) -> TestJob:
        return TestJob(JobHandle(self.client, self.layout, job_id))

    async def aclose(self) -> None:
        await self.client.aclose()


def queue_client(addr: str, layout: QueueLayout = LAYOUT) -> Redis:
    """A client of the queue store at ``addr`` as the worker makes it: a cluster client on a
    cluster (the cluster lane, sharded layout), else a plain one; replies are bytes."""
    settings = load_settings(cache={"addr": addr}, queue={"layout": layout.kind})
    return create_client(settings.queue_cache_settings())


def producer(addr: str, layout: QueueLayout = LAYOUT) -> TestQueue:
    """A producer on the queue store at ``addr`` (a cluster's nodes in the cluster lane)."""
    return TestQueue(queue_client(addr, layout), layout)
