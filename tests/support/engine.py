"""An ``Engine`` of the tests' own: real store, job functions and observer chosen per test.

The engine takes every collaborator at construction, so a test can run it with a recording
observer, a handful of job functions and short timings, without a whole worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cache.backoff import Backoff
from cache.scripts import ScriptRunner
from jobs.outcome import Outcome
from jobs.wire.layout import QueueLayout
from tests.support.layout import LAYOUT
from tests.support.queue import queue_client
from worker.engine import Engine, EngineConfig
from worker.engine.functions import JobFunction
from worker.outage import OutageLog

JobBody = Callable[..., Awaitable[Any]]


@dataclass
class Recorder:
    """The engine's observer: every call, in order; ``fail_on`` makes ``job_started`` of that
    function raise (a bug in the bookkeeping)."""

    fail_on: str | None = None
    started: list[str] = field(default_factory=list)
    ran: list[tuple[str, BaseException | None, str | None]] = field(default_factory=list)
    ended: list[tuple[str, Outcome]] = field(default_factory=list)

    def job_started(self, function: str, queue_wait_s: float) -> None:
        if function == self.fail_on:
            raise RuntimeError("bookkeeping broke")
        self.started.append(function)

    def job_ran(
        self,
        function: str,
        seconds: float,
        *,
        error: BaseException | None,
        scheduled_outcome: str | None,
    ) -> None:
        self.ran.append((function, error, scheduled_outcome))

    def job_ended(self, function: str, outcome: Outcome) -> None:
        self.ended.append((function, outcome))


def functions(
    bodies: Mapping[str, JobBody], *, timeout_s: float = 10.0, max_tries: int = 5
) -> dict[str, JobFunction]:
    return {
        name: JobFunction(name, body, timeout_s, max_tries, 60_000, False)
        for name, body in bodies.items()
    }


@contextlib.asynccontextmanager
async def engine_on(
    url: str,
    table: Mapping[str, JobFunction],
    *,
    layout: QueueLayout | None = None,
    observer: Recorder | None = None,
    context: Mapping[str, Any] | None = None,
    **config: Any,
) -> AsyncIterator[Engine]:
    """An engine running on the store at ``url`` until the block ends (then stopped, bounded)."""
    client = queue_client(url, layout or LAYOUT)
    values: dict[str, Any] = {
        "max_jobs": 4,
        "poll_delay_s": 0.02,
        "job_lease_s": 2.0,
        "renew_every_s": 0.5,
        "shutdown_grace_s": 1.0,
        "failed_result_ms": 60_000,
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.1,
        **config,
    }
    engine = Engine(
        layout=layout or LAYOUT,
        client=client,
        scripts=ScriptRunner(client),
        functions=table,
        periodic=[],
        config=EngineConfig(**values),
        context=dict(context or {}),
        observer=observer or Recorder(),
        dead_letters=None,
        worker_id="test-engine",
        outage=OutageLog("queue store", Backoff(0.01, 0.1)),
    )
    task = asyncio.create_task(engine.run())
    try:
        yield engine
    finally:
        engine.stop(0)
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 15)
        await client.aclose()
