"""The dead-letter list: job payloads that could not be applied, with the reason.

A capped list (``LPUSH`` + ``LTRIM`` in one transaction, newest first) at
``keys.dead_letter()``; ``deadletter.max_entries`` entries of at most
``deadletter.payload_chars`` characters of payload each. Operators read it with
``read_dead_letters`` (or ``LRANGE seen:jobs:dead 0 -1``): every entry is one JSON object.
Job functions dead-letter invalid payloads; ``SeenWorker`` dead-letters whole job records ARQ
cannot run (``letter_for_record``).
"""

from __future__ import annotations

import json
from collections.abc import Container, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from cache.clock import wall_ms
from cache.errors import translate_errors
from cache.manager import CacheManager
from jobs.serializer import InvalidJobRecordError, parse_record, record_problem


class DeadLetter(BaseModel):
    """One rejected payload."""

    at_ms: int
    job_id: str | None
    function: str
    reason: str
    payload: str
    truncated: bool = False
    job_try: int | None = None


def payload_text(payload: Any, limit: int) -> tuple[str, bool]:
    """``payload`` as JSON text (repr when not JSON), cut to ``limit`` characters."""
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(payload)
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def make_dead_letter(
    manager: CacheManager,
    *,
    job_id: str | None,
    function: str,
    reason: str,
    payload: Any,
    job_try: int | None = None,
) -> DeadLetter:
    text, cut = payload_text(payload, manager.config.deadletter.payload_chars)
    return DeadLetter(
        at_ms=wall_ms(),
        job_id=job_id,
        function=function,
        reason=reason[:1000],
        payload=text,
        truncated=cut,
        job_try=job_try,
    )


async def push_dead_letters(manager: CacheManager, entries: Sequence[DeadLetter]) -> None:
    """Append entries (newest first) and trim the list to its cap, atomically."""
    if not entries:
        return
    key = manager.keys.dead_letter()
    cap = manager.config.deadletter.max_entries
    with translate_errors(key, operation="LPUSH dead letter"):
        async with manager.client.pipeline(transaction=True) as tx:
            tx.lpush(key, *(e.model_dump_json() for e in entries))
            tx.ltrim(key, 0, cap - 1)
            await tx.execute()


async def read_dead_letters(manager: CacheManager, limit: int = 100) -> list[DeadLetter]:
    """The newest ``limit`` entries; an unreadable entry is shown with its raw text."""
    key = manager.keys.dead_letter()
    with translate_errors(key, operation="LRANGE dead letter"):
        raw: list[bytes] = await manager.client.lrange(key, 0, limit - 1)  # type: ignore[misc]
    out = []
    for item in raw:
        try:
            out.append(DeadLetter.model_validate_json(item))
        except ValidationError:
            text = item.decode("utf-8", errors="replace")
            out.append(
                DeadLetter(at_ms=0, job_id=None, function="?", reason="unreadable", payload=text)
            )
    return out


UNKNOWN_FUNCTION = "<unknown>"


def letter_for_record(
    manager: CacheManager,
    job_id: str,
    raw: bytes,
    known: Container[str],
    job_try: int | None = None,
) -> DeadLetter | None:
    """The dead letter of a stored job record ARQ cannot run, or None for a runnable one.

    A record is not runnable when ``jobs.serializer`` refuses it or it names a function not in
    ``known``. The payload is the record itself (its text when it is not JSON).
    """
    reason = record_problem(raw)
    try:
        record: Any = parse_record(raw)
    except InvalidJobRecordError:
        record = raw.decode("utf-8", errors="replace")
    function = record.get("f") if isinstance(record, dict) else None
    if not isinstance(function, str):
        function = UNKNOWN_FUNCTION
    if reason is None:
        if function in known:
            return None
        reason = f"function {function!r} not found"
    else:
        reason = f"invalid job record: {reason}"
    return make_dead_letter(
        manager, job_id=job_id, function=function, reason=reason, payload=record, job_try=job_try
    )
