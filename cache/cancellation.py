"""Bounded cancellation: cancel a task, and keep cancelling until it ends or a deadline passes.

``task.cancel()`` is a request, not a guarantee: a body may catch ``CancelledError`` (on
purpose or by accident), and on Python 3.11 ``asyncio.wait_for`` drops a cancellation that
lands as its inner operation finishes. A stop path that awaits a cancelled task without a
deadline can therefore hang forever. Every stop path here cancels, waits a little, cancels
again, and after its deadline abandons the task with one log line instead of waiting on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("seen.cancellation")

RECANCEL_EVERY_S = 0.1
"""How long a cancelled task gets before it is cancelled again."""


async def cancel_and_wait(
    tasks: Iterable[asyncio.Future[Any]],
    within: float,
    what: str,
    *,
    msg: str | None = None,
) -> bool:
    """Cancel ``tasks`` until all are done or ``within`` seconds pass; True when all ended.

    Idempotent (done tasks are skipped) and bounded. Tasks still running at the deadline are
    left alone and named in one warning: the caller goes on without them.
    """
    pending = {t for t in tasks if not t.done()}
    deadline = time.monotonic() + max(0.0, within)
    while pending:
        for task in pending:
            task.cancel(msg)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        _done, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY_S, left))
    if pending:
        names = ", ".join(sorted(_name(t) for t in pending))
        log.warning(
            "%s: %d task(s) still running after %.1fs, abandoned: %s",
            what,
            len(pending),
            within,
            names,
        )
        return False
    return True


async def wait_bounded(
    tasks: Iterable[asyncio.Future[Any]], within: float
) -> set[asyncio.Future[Any]]:
    """Wait up to ``within`` seconds for ``tasks`` to end (cancelling none); returns the rest."""
    pending = {t for t in tasks if not t.done()}
    if pending and within > 0:
        _done, pending = await asyncio.wait(pending, timeout=within)
    return pending


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
