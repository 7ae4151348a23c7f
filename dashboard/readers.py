"""The dead-letter page's data, shaped from the fleet reader's view.

``FleetReader.dead_letters`` reads the list (one transaction: rows, ids and total agree); each
entry's ``id`` (``jobs.deadletter.letter_id``) is what a requeue checkbox posts, and the
requeue action finds the entry by that same id. This module only groups the rows for the
template and the JSON twin.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from worker.fleet import DeadLetters


def dead_letter_page(dead: DeadLetters) -> dict[str, Any]:
    """Rows grouped by reason, biggest group first (the fleet's order); payloads already cut."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in dead.entries:
        rows[e.reason].append(
            {
                "id": e.id,
                "at_ms": e.at_ms,
                "job_id": e.job_id,
                "function": e.function,
                "payload": e.payload,
                "truncated": e.truncated,
                "requeueable": not e.stored_truncated,
            }
        )
    return {
        "total": dead.total,
        "shown": len(dead.entries),
        "groups": [
            {"reason": g.reason, "count": g.count, "letters": rows[g.reason]} for g in dead.groups
        ],
    }
