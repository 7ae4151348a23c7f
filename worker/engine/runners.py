"""A fixed set of long-lived runners instead of one asyncio Task per job.

ARQ creates a Task per job (and another for the job's function under ``asyncio.wait_for``);
creating, scheduling and collecting them was the largest single cost of a short job. Here the
engine starts ``max_jobs`` runners once; each takes the next claimed job from the ``ReadyQueue``
and awaits its function directly, so a job that never waits on I/O runs without a single trip
through the event loop. What a Task gave each job for free is kept:

- **Its own context variables**: each job's coroutine is driven by ``in_context`` step by step
  inside a fresh copy of the runner's context (what a new Task would have copied), so a job's
  ``ContextVar`` values (Sentry scopes, OpenTelemetry spans) never leak into the next job.
- **Cancellation**: the engine cancels a job by cancelling its runner's Task while the job's
  body awaits (``Runner.body``); the runner catches that one cancellation, clears it
  (``Task.uncancel``) and goes on with the next job. Timeouts are one shared timer
  (``worker.engine.watchdog``), not a ``wait_for`` per job.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections import deque
from collections.abc import Awaitable, Coroutine, Generator, Iterable
from typing import Any, TypeVar

from worker.engine.job import Job

T = TypeVar("T")


class _InContext:
    """Awaits ``coro`` with every step of it run inside ``context`` (as a Task would)."""

    __slots__ = ("context", "coro")

    def __init__(self, coro: Awaitable[Any], context: contextvars.Context) -> None:
        if not isinstance(coro, Coroutine):
            raise TypeError(f"a job function must be a coroutine function, got {coro!r}")
        self.coro = coro
        self.context = context

    def __await__(self) -> Generator[Any, Any, Any]:
        run = self.context.run
        send = self.coro.send
        throw = self.coro.throw
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = run(send, value) if error is None else run(throw, error)
            except StopIteration as stop:
                return stop.value
            error = None
            try:
                value = yield yielded
            except BaseException as exc:  # a cancellation (or another error) thrown into us
                value, error = None, exc


def in_context(coro: Awaitable[T], context: contextvars.Context) -> Any:
    """Await ``coro`` inside ``context`` (a fresh ``contextvars.copy_context()`` per job)."""
    return _InContext(coro, context)


class Runner:
    """One long-lived runner: its Task, and the job whose body it runs now, if any."""

    __slots__ = ("deadline", "index", "job", "task")

    def __init__(self, index: int) -> None:
        self.index = index
        self.task: asyncio.Task[None] | None = None
        self.job: Job | None = None
        """The job whose function runs now (set only while its body runs)."""
        self.deadline = math.inf
        """Loop time at which the body is cancelled as timed out (inf while idle)."""

    def cancel_body(self) -> bool:
        """Cancel the body this runner runs now; False when it runs none."""
        if self.job is None or self.task is None or self.task.done():
            return False
        self.task.cancel()
        return True


class ReadyQueue:
    """Claimed jobs waiting for a runner; idle runners wait here (one future while idle, none
    per job while busy)."""

    def __init__(self) -> None:
        self._jobs: deque[Job] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._closed = False

    def __len__(self) -> int:
        return len(self._jobs)

    def push(self, jobs: Iterable[Job]) -> None:
        self._jobs.extend(jobs)
        wake = len(self._jobs)
        while wake and self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():  # a runner cancelled while idle left a done future
                waiter.set_result(None)
                wake -= 1

    async def get(self) -> Job | None:
        """The next job; None once closed and empty."""
        while True:
            if self._jobs:
                return self._jobs.popleft()
            if self._closed:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()

    def take_all(self) -> list[Job]:
        """Every waiting job, removed (a stopping worker hands them back)."""
        jobs = list(self._jobs)
        self._jobs.clear()
        return jobs

    def remove(self, job: Job) -> bool:
        try:
            self._jobs.remove(job)
        except ValueError:
            return False
        return True

    def close(self) -> None:
        """No more jobs: idle runners end once the queue is empty."""
        self._closed = True
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
