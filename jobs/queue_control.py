"""Pause and resume a queue, fleet-wide: one flag key in the store that every worker reads.

The flag is ``QueueLayout.paused_key`` (``<queue name>:paused``, one key for every shard of the
queue). Each worker's engine reads it with every poll (``worker.engine``, once per
``worker.poll_delay``) and claims nothing while it exists: a pause takes effect across the
fleet within one poll, jobs already running finish, and periodic jobs are not enqueued.
Deleting it resumes. The key's value says who paused and when (JSON ``{"by", "at_ms",
"reason"}``), so ``seen-worker queue status``, the dashboard's overview and its banner can say
it; a value that is not such JSON (set by hand: ``SET arq:queue:paused 1``) still pauses, and
reads as paused by an unknown operator. The flag never expires on its own.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.codec import as_text
from cache.errors import translate_errors
from jobs.wire.layout import QueueLayout

MAX_TEXT = 200
"""Characters of ``by`` and ``reason`` kept in the flag."""


@dataclass(frozen=True)
class PauseState:
    """Whether the queue is paused, and by whom, when and why (as the flag says)."""

    queue: str
    paused: bool
    by: str | None = None
    at_ms: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        """One line: ``queue arq:queue paused by alice at ... (reason)`` or ``... running``."""
        if not self.paused:
            return f"queue {self.queue} is running (not paused)"
        who = self.by or "an unknown operator"
        return f"queue {self.queue} is paused by {who}" + (
            f" ({self.reason})" if self.reason else ""
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "paused": self.paused,
            "by": self.by,
            "at_ms": self.at_ms,
            "reason": self.reason,
        }


def parse_flag(queue: str, raw: bytes | str | None) -> PauseState:
    """The state a flag value stands for (None: not paused)."""
    if raw is None:
        return PauseState(queue, False)
    try:
        data = json.loads(as_text(raw))
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return PauseState(queue, True)
    by, at, reason = data.get("by"), data.get("at_ms"), data.get("reason")
    return PauseState(
        queue,
        True,
        by=by[:MAX_TEXT] if isinstance(by, str) else None,
        at_ms=at if isinstance(at, int) and not isinstance(at, bool) else None,
        reason=reason[:MAX_TEXT] if isinstance(reason, str) and reason else None,
    )


async def pause_state(client: Redis, layout: QueueLayout) -> PauseState:
    key = layout.paused_key
    with translate_errors(key, operation="GET pause flag"):
        raw = await cast(Awaitable[bytes | str | None], client.get(key))
    return parse_flag(layout.name, raw)


async def pause(client: Redis, layout: QueueLayout, *, by: str, reason: str = "") -> PauseState:
    """Pause the queue (idempotent: pausing a paused queue keeps the first pause's record);
    returns the state now in force."""
    key = layout.paused_key
    flag = json.dumps(
        {"by": by[:MAX_TEXT], "at_ms": wall_ms(), "reason": reason[:MAX_TEXT]},
        ensure_ascii=False,
    )
    with translate_errors(key, operation="SET pause flag"):
        await cast(Awaitable[bool | None], client.set(key, flag, nx=True))
    return await pause_state(client, layout)


async def resume(client: Redis, layout: QueueLayout) -> bool:
    """Resume the queue; False when it was not paused."""
    key = layout.paused_key
    with translate_errors(key, operation="DEL pause flag"):
        return bool(await cast(Awaitable[int], client.delete(key)))
