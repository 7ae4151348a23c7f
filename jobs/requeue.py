"""Requeue dead letters: each entry becomes a job again, under its original id by default.

A dead letter (``jobs.deadletter``) is named by ``letter_id`` (a digest of its stored text), so
a caller can never point at an entry it did not read. ``requeue_plan`` says what a letter
would become, or why it cannot be requeued: a payload cut when it was dead-lettered, one that
is not JSON or not a job's arguments, a function this deployment does not run, keyword
arguments. Pages offer requeue only for letters with a plan.

Requeueing enqueues the job with the JSON wire format on the queue's layout and then removes
exactly that entry (``LREM`` of its text), bounded to ``limit`` entries per call:

- a letter that is a whole job (its record, or its ``{"args", "kwargs"}``) goes back **under its
  original id**; when that id is taken (a job or a result with it still exists: ARQ's rule, a
  failed job's result is kept ``keep_result`` seconds) it is refused with that reason and the
  letter stays, unless ``new_id`` is asked for: then it gets a fresh id, said in the result;
- one rejected update of a batch job (``update_progress_batch``) is not that job: it is
  enqueued as its own ``update_progress`` job under a fresh id.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from cache.errors import InvalidKeyError, translate_errors
from cache.keys import validate_name
from cache.manager import CacheManager
from jobs.admin import ActionResult, Verdict
from jobs.client import BATCH_FUNCTION, UPDATE_FUNCTION, enqueue_job
from jobs.deadletter import DeadLetter, read_stored
from jobs.wire.layout import QueueLayout

log = logging.getLogger("seen.jobs.requeue")

UPDATE_FUNCTIONS = (UPDATE_FUNCTION, BATCH_FUNCTION)


class RequeueError(ValueError):
    """A requeue refused as a whole (nothing selected, too many at once)."""


@dataclass(frozen=True)
class RequeuePlan:
    """What a dead letter becomes when requeued."""

    function: str
    args: list[Any]
    job_id: str | None
    """The id it goes back under (its own), or None: a fresh id (not the original job)."""


def requeue_plan(letter: DeadLetter, known: Collection[str]) -> RequeuePlan | str:
    """What requeueing ``letter`` enqueues, or why it cannot be requeued."""
    if letter.truncated:
        return "payload was truncated when dead-lettered"
    try:
        payload = json.loads(letter.payload)
    except (ValueError, RecursionError):
        return "payload is not JSON"
    function: Any = letter.function
    args: Any
    kwargs: Any = {}
    same_job = True
    if isinstance(payload, dict) and "f" in payload and "a" in payload:  # a whole job record
        function, args, kwargs = payload["f"], payload["a"], payload.get("k") or {}
    elif isinstance(payload, dict) and set(payload) == {"args", "kwargs"}:
        args, kwargs = payload["args"], payload["kwargs"]
    elif letter.function in UPDATE_FUNCTIONS and isinstance(payload, dict):
        function, args = UPDATE_FUNCTION, [payload]  # one rejected update
        same_job = letter.function == UPDATE_FUNCTION
    else:
        return "payload is not a job's arguments"
    if not isinstance(function, str) or function not in known:
        return f"function {str(function)[:100]!r} is not run by this deployment"
    if not isinstance(args, list) or kwargs:
        return "only positional arguments can be requeued"
    job_id = letter.job_id if same_job else None
    if job_id is not None:
        try:
            validate_name(job_id, "job id")
        except InvalidKeyError:
            job_id = None
    return RequeuePlan(function, args, job_id)


async def requeue_dead_letters(
    manager: CacheManager,
    queue: Redis,
    layout: QueueLayout,
    ids: Sequence[str],
    *,
    known: Collection[str],
    limit: int,
    who: str,
    new_id: bool = False,
) -> list[ActionResult]:
    """Requeue the letters named by ``ids`` (``letter_id``s, at most ``limit``); one result per
    id (its ``job_id`` is the letter's id; ``new_id`` the job id it was enqueued under)."""
    if not ids:
        raise RequeueError("no dead letter selected")
    if len(ids) > limit:
        raise RequeueError(f"at most {limit} dead letters per action, got {len(ids)}")
    wanted = dict.fromkeys(ids)
    key = manager.keys.dead_letter()
    stored, _ = await read_stored(manager, manager.config.deadletter.max_entries)
    results: dict[str, ActionResult] = {}
    for entry in stored:
        ident = entry.id
        if ident not in wanted or ident in results:
            continue

        def refused(why: str, ident: str = ident) -> ActionResult:
            return ActionResult("requeue", ident, Verdict.REFUSED, why)

        if not entry.readable:
            results[ident] = refused("unreadable entry (not a dead letter)")
            continue
        letter = entry.letter
        plan = requeue_plan(letter, known)
        if isinstance(plan, str):
            results[ident] = refused(plan)
            continue
        target = plan.job_id if plan.job_id is not None and not new_id else uuid.uuid4().hex
        job_id = await enqueue_job(queue, plan.function, *plan.args, job_id=target, layout=layout)
        if job_id is None:
            results[ident] = refused(
                f"job id {target} is taken (a job or a result with it still exists): "
                "requeue it under a new id"
            )
            continue
        with translate_errors(key, operation="LREM dead letter"):
            await cast(Awaitable[int], manager.client.lrem(key, 1, cast(str, entry.raw)))
        same = job_id == letter.job_id
        results[ident] = ActionResult(
            "requeue",
            ident,
            Verdict.DONE,
            f"requeued as job {job_id}" + (" (its original id)" if same else " (a new id)"),
            new_id=job_id,
        )
        log.info(
            "action by %s: requeued dead letter %s (%s, job %s, was %r) as job %s",
            who,
            ident,
            plan.function,
            letter.job_id,
            letter.reason[:200],
            job_id,
        )
    for ident in wanted:
        if ident not in results:
            results[ident] = ActionResult(
                "requeue",
                ident,
                Verdict.NOT_FOUND,
                "no such dead letter (already requeued or trimmed)",
            )
    return [results[ident] for ident in wanted]
