"""The two operator actions: requeue dead letters, run a periodic job now.

Both are POST only, allowed only with ``--allow-actions`` (``app.py`` checks that, the origin and
the CSRF token before calling here), bounded (``dashboard.max_action_items`` entries per call)
and logged. A dead letter is named by ``jobs.deadletter.letter_id`` (a digest of its stored text,
the ``id`` the fleet's ``DeadLetterView`` carries), so a form can never point at an entry it
did not show; requeueing enqueues the job again with the JSON wire format
(``jobs.client.enqueue_job``) and then removes exactly that entry (``LREM`` of its text). An
entry whose payload was truncated, names a function this deployment does not run or carries
keyword arguments is refused with the reason, and stays.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Collection
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis

from cache.errors import translate_errors
from cache.manager import CacheManager
from jobs.client import BATCH_FUNCTION, UPDATE_FUNCTION, enqueue_job
from jobs.deadletter import DeadLetter, read_stored

log = logging.getLogger("seen.dashboard.actions")

UPDATE_FUNCTIONS = (UPDATE_FUNCTION, BATCH_FUNCTION)


@dataclass
class ActionResult:
    done: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{len(self.done)} done"]
        parts += [f"{k}: {v}" for k, v in list(self.refused.items())[:5]]
        return "; ".join(parts)


class ActionError(ValueError):
    """An action refused as a whole (too many items, unknown job)."""


def requeue_plan(letter: DeadLetter, known: Collection[str]) -> tuple[str, list[Any]] | str:
    """(function, args) to enqueue again, or why this letter cannot be requeued."""
    if letter.truncated:
        return "payload was truncated when dead-lettered"
    try:
        payload = json.loads(letter.payload)
    except ValueError:
        return "payload is not JSON"
    function: Any = letter.function
    args: Any
    kwargs: Any = {}
    if isinstance(payload, dict) and "f" in payload and "a" in payload:  # a whole job record
        function, args, kwargs = payload["f"], payload["a"], payload.get("k") or {}
    elif isinstance(payload, dict) and set(payload) == {"args", "kwargs"}:
        args, kwargs = payload["args"], payload["kwargs"]
    elif letter.function in UPDATE_FUNCTIONS and isinstance(payload, dict):
        function, args = UPDATE_FUNCTION, [payload]  # one rejected update
    else:
        return "payload is not a job's arguments"
    if not isinstance(function, str) or function not in known:
        return f"function {function!r} is not run by this deployment"
    if not isinstance(args, list) or kwargs:
        return "only positional arguments can be requeued"
    return function, args


async def requeue_dead_letters(
    manager: CacheManager,
    queue: Redis,
    queue_name: str,
    ids: list[str],
    *,
    known: Collection[str],
    limit: int,
    who: str,
) -> ActionResult:
    """Requeue the letters named by ``ids`` (at most ``limit``); see the module docstring."""
    if not ids:
        raise ActionError("no dead letter selected")
    if len(ids) > limit:
        raise ActionError(f"at most {limit} dead letters per action, got {len(ids)}")
    wanted = set(ids)
    key = manager.keys.dead_letter()
    cap = manager.config.deadletter.max_entries
    stored, _ = await read_stored(manager, cap)
    result = ActionResult()
    for entry in stored:
        ident, letter = entry.id, entry.letter
        if ident not in wanted or ident in result.done:
            continue
        wanted.discard(ident)
        if not entry.readable:
            result.refused[ident] = "unreadable entry"
            continue
        plan = requeue_plan(letter, known)
        if isinstance(plan, str):
            result.refused[ident] = plan
            continue
        function, args = plan
        job_id = await enqueue_job(queue, function, *args, queue_name=queue_name)
        with translate_errors(key, operation="LREM dead letter"):
            await cast(Awaitable[int], manager.client.lrem(key, 1, cast(str, entry.raw)))
        result.done.append(ident)
        log.info(
            "dashboard action by %s: requeued dead letter %s (%s, was %r) as job %s",
            who,
            ident,
            function,
            letter.reason[:200],
            job_id,
        )
    for ident in wanted:
        result.refused[ident] = "no such dead letter (already requeued or trimmed)"
    return result


async def run_now(
    queue: Redis, queue_name: str, name: str, *, known: Collection[str], who: str
) -> str:
    """Enqueue one manual run of the periodic job ``name``; returns the job id."""
    if name not in known:
        raise ActionError(f"{name!r} is not a periodic job of this deployment")
    job_id = await enqueue_job(queue, name, queue_name=queue_name)
    if job_id is None:  # a fresh uuid never exists already
        raise ActionError(f"{name}: not enqueued")
    log.info("dashboard action by %s: run %s now (job %s)", who, name, job_id)
    return job_id
