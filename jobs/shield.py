"""A step that a cancellation must not cut short, and that is bounded once cancelled.

Closing a periodic run (slot done, history, guard) or handing it back (guard released, retry
freed) is a few round trips to the queue store. A cancellation arriving meanwhile (the grace of
a stopping worker ending, a job timeout, the repeated cancels of a bounded stop) must neither
leave half of it done nor hold the stop up: the step runs in its own task, and once the caller
is cancelled it gets at most ``deadline_s`` more; then it is abandoned with one log line (what
it did not write expires by itself: claims, guards and ARQ's markers all carry TTLs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("seen.jobs.shield")

T = TypeVar("T")

STEP_DEADLINE_S = 2.0
"""What a step may still take after a cancellation: a few round trips, never the grace."""


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # an abandoned step's error is logged by us, not as "never retrieved"


async def complete(
    step: Coroutine[Any, Any, T],
    what: str,
    *,
    cancelled: bool = False,
    deadline_s: float = STEP_DEADLINE_S,
) -> T:
    """Run ``step`` to its end in spite of cancellations.

    Never cancelled: returns its result or raises its error. Cancelled already (``cancelled``,
    the caller is handling a ``CancelledError``) or while it runs: waits for it at most
    ``deadline_s`` from then, logs its failure or its abandonment, and raises ``CancelledError``.
    """
    task = asyncio.ensure_future(step)
    task.add_done_callback(_retrieve)
    loop = asyncio.get_running_loop()
    since = loop.time() if cancelled else None
    while not task.done():
        remaining = None if since is None else since + deadline_s - loop.time()
        if remaining is not None and remaining <= 0:
            task.cancel()
            log.warning("%s abandoned %.1f s after the cancellation", what, deadline_s)
            raise asyncio.CancelledError
        try:
            await asyncio.wait({task}, timeout=remaining)
        except asyncio.CancelledError:
            since = loop.time() if since is None else since
    if since is None:
        return task.result()
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("%s failed after the cancellation: %s: %s", what, type(exc).__name__, exc)
    raise asyncio.CancelledError
