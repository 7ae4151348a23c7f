"""Dead letters grouped by reason, payloads cut to the page's size.

The list is ``jobs.deadletter``'s (capped, newest first, on the cache store). Reasons are free
text (they quote what was wrong), so a page groups by the exact text, while the exporter labels
by ``kind``, a bounded class of the reason (``DEAD_LETTER_KINDS``). Each entry carries its
``id`` (``jobs.deadletter.letter_id``), taken from the same ``LRANGE`` as the fields shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from typing import cast

from cache.errors import translate_errors
from cache.manager import CacheManager
from cache.unreadable import Unreadable
from jobs.deadletter import StoredLetter, read_stored
from worker.http.fleet.models import DeadLetters, DeadLetterView, ReasonGroup

DEAD_LETTER_KINDS = ("invalid_payload", "invalid_record", "unknown_function", "unreadable")


def reason_kind(reason: str) -> str:
    """The bounded class of a dead letter's reason (see ``jobs.deadletter``)."""
    if reason == "unreadable":
        return "unreadable"
    if reason.startswith("invalid job record"):
        return "invalid_record"
    if reason.startswith("function ") and reason.endswith(" not found"):
        return "unknown_function"
    return "invalid_payload"


def letter_view(entry: StoredLetter, payload_chars: int) -> DeadLetterView:
    letter = entry.letter
    cut = len(letter.payload) > payload_chars
    return DeadLetterView(
        id=entry.id,
        at_ms=letter.at_ms,
        job_id=letter.job_id,
        function=letter.function,
        reason=letter.reason,
        kind=reason_kind(letter.reason),
        payload=letter.payload[:payload_chars],
        truncated=letter.truncated or cut,
        job_try=letter.job_try,
        stored_truncated=letter.truncated,
    )


async def count_dead_letters(manager: CacheManager) -> int:
    key = manager.keys.dead_letter()
    with translate_errors(key, operation="LLEN dead letter"):
        return int(await cast(Awaitable[int], manager.client.llen(key)))


async def read_grouped(
    manager: CacheManager, limit: int, payload_chars: int, unreadable: Unreadable | None = None
) -> DeadLetters:
    """The newest ``limit`` entries, grouped by reason, and the list's whole length.

    An entry that is not a dead letter is still shown (reason ``unreadable``, its raw text as
    payload: an operator may want to see what it was) and noted in ``unreadable``."""
    stored, total = await read_stored(manager, limit)
    skipped = unreadable if unreadable is not None else Unreadable()
    for entry in stored:
        if not entry.readable:
            skipped.skip(
                "dead_letter", f"{manager.keys.dead_letter()} entry {entry.id}", "not a dead letter"
            )
    entries = [letter_view(x, payload_chars) for x in stored]
    counts: Counter[str] = Counter(e.reason for e in entries)
    newest: dict[str, int] = {}
    for e in entries:
        newest[e.reason] = max(newest.get(e.reason, 0), e.at_ms)
    groups = [
        ReasonGroup(reason, reason_kind(reason), count, newest[reason])
        for reason, count in counts.most_common()
    ]
    kinds = Counter(e.kind for e in entries)
    return DeadLetters(
        total=total,
        groups=groups,
        entries=entries,
        by_kind={kind: kinds.get(kind, 0) for kind in DEAD_LETTER_KINDS},
    )
