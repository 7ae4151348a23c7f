"""The dead-letter page's data: the fleet reader's view plus the id each entry has in forms.

Overview, schedules, locks and per-shard figures come from ``worker.http.fleet.FleetReader``.
The dead-letter page needs one more thing per entry: the name a requeue form uses for it
(``actions.letter_id``, a digest of the stored text). Ids and shown fields are taken from the
same ``LRANGE`` reply, so a checkbox always names the row it is on.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from pydantic import ValidationError

from cache.errors import translate_errors
from cache.manager import CacheManager
from jobs.deadletter import DeadLetter
from worker.http.dashboard.actions import letter_id


async def dead_letters(manager: CacheManager, limit: int, payload_chars: int) -> dict[str, Any]:
    """The newest ``limit`` letters, grouped by reason (biggest group first); payloads cut."""
    key = manager.keys.dead_letter()
    with translate_errors(key, operation="LRANGE dead letters"):
        async with manager.client.pipeline(transaction=True) as tx:
            tx.lrange(key, 0, limit - 1)
            tx.llen(key)
            raw_items, total = cast(tuple[list[bytes], int], tuple(await tx.execute()))
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for raw in raw_items:
        try:
            letter = DeadLetter.model_validate_json(raw)
        except ValidationError:
            text = raw.decode("utf-8", errors="replace")
            letter = DeadLetter(
                at_ms=0, job_id=None, function="?", reason="unreadable", payload=text
            )
        payload = letter.payload
        groups[letter.reason].append(
            {
                "id": letter_id(raw),
                "at_ms": letter.at_ms,
                "job_id": letter.job_id,
                "function": letter.function,
                "payload": payload[:payload_chars],
                "truncated": letter.truncated or len(payload) > payload_chars,
                "requeueable": not letter.truncated,
            }
        )
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return {
        "total": int(total),
        "shown": len(raw_items),
        "groups": [{"reason": r, "count": len(items), "letters": items} for r, items in ordered],
    }
