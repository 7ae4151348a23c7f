"""One job as the store holds it, on either queue layout: what ``seen-worker jobs show`` and the
dashboard's job page say about "what is job X doing?".

``inspect_job`` reads every key of the job's shard in one round trip (its record, result,
lease and the lease's time left, try counter, queue score, abort request) and the dead letters
that name it (the capped list, newest first: bounded by ``deadletter.max_entries``). Nothing is
written. The state it reports:

- ``running``: a run holds the job's lease (``holder`` is the worker id in the lease token,
  ``<worker id>:<random>-<n>``; plain ARQ's ``1`` names nobody);
- ``retrying``: queued, not running, and tried before (a try counter exists: it waits out a
  retry's backoff or the next poll);
- ``waiting`` / ``deferred``: queued, never tried, due now / later;
- ``complete`` / ``failed``: finished, its result kept (``keep_result``); a failure's result
  carries the error type, message and, from this version, the end of its traceback;
- ``not_found``: none of these (finished without a kept result, expired, or never enqueued):
  its dead letters may still say what happened.

A record or result that cannot be read is reported as such (``problem``), with its raw text
cut to what a page shows, never as a failure of the whole view.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.codec import as_text
from cache.errors import translate_errors
from cache.keys import validate_name
from cache.manager import CacheManager
from cache.unreadable import Unreadable
from jobs.deadletter import StoredLetter, read_stored
from jobs.serializer import InvalidJobRecordError, deserialize
from jobs.wire.layout import QueueLayout

JOB_STATES = ("waiting", "deferred", "retrying", "running", "complete", "failed", "not_found")
NO_HOLDER = "arq (no token)"
"""The holder of a lease plain ARQ wrote (its value is ``1``: no worker named)."""


def lease_holder(token: str) -> str:
    """The worker id in a job lease token ``<worker id>:<random>-<n>``."""
    worker_id, sep, _ = token.partition(":")
    return worker_id if sep and worker_id else NO_HOLDER


def json_text(value: Any) -> str:
    """``value`` as compact JSON text (non-ASCII kept), for pages and ``--json``."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(value)


@dataclass(frozen=True)
class LeaseView:
    """The run that holds a job: who (worker id) and how long its lease has left."""

    holder: str
    ttl_ms: int | None
    """Milliseconds left on the lease; None when the key has no expiry."""


@dataclass(frozen=True)
class ResultView:
    """A finished job's result record."""

    success: bool
    value: str
    """The return value as JSON text (a success), or the error's message (a failure)."""
    error: str | None
    """The exception's type name (a failure)."""
    traceback: str | None
    start_ms: int
    finish_ms: int
    job_try: int | None
    ttl_ms: int | None
    """How long the result is kept yet; None: forever."""


@dataclass(frozen=True)
class JobDetail:
    """Everything the store says about one job (module docstring)."""

    job_id: str
    queue: str
    shard: int
    state: str
    """One of ``JOB_STATES``."""
    function: str | None = None
    args: str | None = None
    """Positional arguments as JSON text (whole: a page cuts it)."""
    kwargs: str | None = None
    enqueue_ms: int | None = None
    score_ms: int | None = None
    """When it is (was) due, while it is in the queue."""
    tries: int | None = None
    """Tries made: the try counter while queued or running, the result's once finished."""
    lease: LeaseView | None = None
    abort_requested: bool = False
    result: ResultView | None = None
    problem: str | None = None
    """Why the record or result could not be read (its key named), if so."""
    dead_letters: list[StoredLetter] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.result is not None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ttl(pttl: Any) -> int | None:
    ms = int(pttl) if isinstance(pttl, int) else -2
    return None if ms < 0 else ms


def result_view(record: Mapping[str, Any], ttl_ms: int | None) -> ResultView:
    """The parts of a checked result record a page shows."""
    success = bool(record["s"])
    value = record["r"]
    error = message = trace = None
    if not success and isinstance(value, dict) and isinstance(value.get("error"), str):
        error = value["error"]
        message = str(value.get("message", ""))
        trace = value.get("traceback") if isinstance(value.get("traceback"), str) else None
    shown = message if message is not None else json_text(value)
    return ResultView(
        success=success,
        value=shown,
        error=error,
        traceback=trace,
        start_ms=_int(record.get("st")) or 0,
        finish_ms=_int(record.get("ft")) or 0,
        job_try=_int(record.get("t")),
        ttl_ms=ttl_ms,
    )


async def inspect_job(
    queue: Redis,
    layout: QueueLayout,
    job_id: str,
    *,
    manager: CacheManager | None = None,
    now_ms: int | None = None,
    unreadable: Unreadable | None = None,
) -> JobDetail:
    """The job's state and records (module docstring); ``manager`` (the cache store's) adds
    the dead letters naming it; a key that cannot be read is counted in ``unreadable`` (kind
    ``job``) besides being said in ``problem``. ``ValueError`` for an id that breaks the id
    rule."""
    validate_name(job_id, "job id")
    shard = layout.for_job(job_id)
    now = wall_ms() if now_ms is None else now_ms
    with translate_errors(shard.job(job_id), operation="inspect job"):
        async with queue.pipeline(transaction=False) as pipe:
            pipe.get(shard.job(job_id))
            pipe.get(shard.result(job_id))
            pipe.pttl(shard.result(job_id))
            pipe.get(shard.in_progress(job_id))
            pipe.pttl(shard.in_progress(job_id))
            pipe.get(shard.retry(job_id))
            pipe.zscore(shard.queue, job_id)
            pipe.zscore(shard.abort, job_id)
            replies = await pipe.execute(raise_on_error=False)
    raw_record, raw_result, result_ttl, token, lease_ttl, retry, score, abort = replies
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for key, raw, what in (
        (shard.job(job_id), raw_record, "record"),
        (shard.result(job_id), raw_result, "result"),
    ):
        if isinstance(raw, Exception):
            problems.append(f"{key}: {raw}")
            continue
        if raw is None:
            continue
        try:
            fields[what] = deserialize(raw)
        except InvalidJobRecordError as exc:
            problems.append(f"{key}: {exc.reason}")
    record = fields.get("record") or fields.get("result")
    result = fields.get("result")
    lease = None
    if isinstance(token, bytes | str):
        lease = LeaseView(lease_holder(as_text(token)), _ttl(lease_ttl))
    elif isinstance(token, Exception):
        problems.append(f"{shard.in_progress(job_id)}: {token}")
    tries = None
    if isinstance(retry, bytes | str) and as_text(retry).isdigit():
        tries = int(as_text(retry))
    queued = isinstance(score, int | float)
    result_shown = result_view(result, _ttl(result_ttl)) if result is not None else None
    if lease is not None:
        state = "running"
    elif result_shown is not None and not queued:
        state = "complete" if result_shown.success else "failed"
    elif queued and tries:
        state = "retrying"
    elif queued:
        state = "waiting" if float(score) <= now else "deferred"
    else:
        state = "not_found"
    if result_shown is not None and tries is None:
        tries = result_shown.job_try
    letters: list[StoredLetter] = []
    if manager is not None:
        stored, _ = await read_stored(manager, manager.config.deadletter.max_entries)
        letters = [s for s in stored if s.readable and s.letter.job_id == job_id]
    skipped = unreadable if unreadable is not None else Unreadable()
    for problem in problems:
        key, _, why = problem.partition(": ")
        skipped.skip("job", key, why)
    return JobDetail(
        job_id=job_id,
        queue=layout.name,
        shard=shard.index,
        state=state,
        function=record["f"] if record is not None else None,
        args=json_text(record["a"]) if record is not None else None,
        kwargs=json_text(record["k"]) if record is not None else None,
        enqueue_ms=record["et"] if record is not None else None,
        score_ms=round(float(score)) if queued else None,
        tries=tries,
        lease=lease,
        abort_requested=isinstance(abort, int | float),
        result=result_shown,
        problem="; ".join(problems) or None,
        dead_letters=letters,
    )
