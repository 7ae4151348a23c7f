"""The dead-letter list: job payloads that could not be applied, with the reason.

A capped list (``LPUSH`` + ``LTRIM`` in one transaction, newest first) at
``keys.dead_letter()``; ``deadletter.max_entries`` entries of at most
``deadletter.payload_chars`` characters of payload each. Operators read it with
``read_dead_letters`` (or ``LRANGE seen:jobs:dead 0 -1``): every entry is one JSON object.
An entry has no id of its own; ``letter_id`` (a digest of its exact stored text) names it for
the fleet views and the dashboard's requeue action, which both read through ``read_stored``.
Job functions dead-letter invalid payloads; ``SeenWorker`` dead-letters whole job records ARQ
cannot run (``letter_for_record``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Container, Sequence
from dataclasses import dataclass
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


def letter_id(raw: bytes) -> str:
    """The name of one stored entry: a digest of its exact text.

    Equal entries (same text) get the same id; requeueing one of them removes one copy
    (``LREM ... 1``), which is all an id can promise for identical twins.
    """
    return hashlib.sha256(raw).hexdigest()[:24]


@dataclass(frozen=True)
class StoredLetter:
    """One entry as stored: its id, exact text (for ``LREM``) and parsed form."""

    id: str
    raw: bytes
    letter: DeadLetter
    readable: bool
    """False when the text is not a ``DeadLetter``; ``letter`` then shows the raw text."""


def stored_letter(raw: bytes) -> StoredLetter:
    """Parse one entry; an unreadable one is kept with its raw text as payload."""
    try:
        return StoredLetter(letter_id(raw), raw, DeadLetter.model_validate_json(raw), True)
    except ValidationError:
        text = raw.decode("utf-8", errors="replace")
        letter = DeadLetter(at_ms=0, job_id=None, function="?", reason="unreadable", payload=text)
        return StoredLetter(letter_id(raw), raw, letter, False)


async def read_stored(manager: CacheManager, limit: int) -> tuple[list[StoredLetter], int]:
    """The newest ``limit`` entries (none for ``limit <= 0``) and the list's whole length, in
    one round trip. Not a MULTI: Redis refuses a transaction on a store over ``maxmemory``,
    and a full store is exactly when an operator reads the dead letters. Ids come from each
    entry's own text, so a length read a moment apart never mislabels a row."""
    key = manager.keys.dead_letter()
    with translate_errors(key, operation="LRANGE dead letter"):
        async with manager.client.pipeline(transaction=False) as tx:
            if limit > 0:
                tx.lrange(key, 0, limit - 1)
            tx.llen(key)
            replies = await tx.execute()
    raw: list[bytes] = replies[0] if limit > 0 else []
    return [stored_letter(item) for item in raw], int(replies[-1])


async def read_dead_letters(manager: CacheManager, limit: int = 100) -> list[DeadLetter]:
    """The newest ``limit`` entries; an unreadable entry is shown with its raw text."""
    entries, _ = await read_stored(manager, limit)
    return [e.letter for e in entries]


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
