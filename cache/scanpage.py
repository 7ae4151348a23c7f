"""One bounded, resumable page of a SCAN walk: for pages that list keys a little at a time.

``scan_page(client, pattern, cursor, count=..., max_keys=...)`` runs SCAN rounds from
``cursor`` until about ``max_keys`` keys were looked at (SCAN's ``COUNT`` is a hint, so the
bound holds per round) or the walk ended, and returns the matching keys, how many keys it
looked at and the cursor to go on from (None once the whole keyspace was seen). Never KEYS.

On a Redis Cluster the walk covers every primary in turn (a key lives on one primary), so the
cursor names the primary and its own SCAN cursor: ``<node index>/<cursor>``; on one server
it is the SCAN cursor itself. A cursor that does not parse starts the walk over
(``ValueError`` tells the caller, who may say so). SCAN may return a key twice (while the
server rehashes): callers that count must not promise more than "at least".
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from cache.cluster import is_cluster, primaries
from cache.codec import as_text
from cache.errors import translate_errors


@dataclass(frozen=True)
class ScanPage:
    keys: list[str]
    """Distinct matching keys of this page, in the order SCAN returned them."""
    looked: int
    """Keys looked at (the sum of the COUNT hints of the rounds made)."""
    cursor: str | None
    """Where the next page starts; None when the walk is over."""


def parse_cursor(cursor: str | None) -> tuple[int, int]:
    """(node index, SCAN cursor) of a page cursor; (0, 0) for the start."""
    if not cursor:
        return 0, 0
    node, sep, position = cursor.partition("/")
    if not sep:
        node, position = "0", cursor
    if not (node.isdigit() and position.isdigit()):
        raise ValueError(f"not a scan cursor: {cursor[:40]!r}")
    return int(node), int(position)


async def scan_page(
    client: Redis, pattern: str, cursor: str | None, *, count: int, max_keys: int
) -> ScanPage:
    """The next page of the walk over keys matching ``pattern`` (module docstring)."""
    node_index, position = parse_cursor(cursor)
    nodes = await primaries(client) if is_cluster(client) else [None]
    if node_index >= len(nodes):
        node_index, position = 0, 0  # the cluster shrank: start over
    found: dict[str, None] = {}
    looked = 0
    while looked < max_keys:
        node = nodes[node_index]
        with translate_errors(pattern, operation="SCAN"):
            if node is None:
                position, batch = await client.scan(position, match=pattern, count=count)
            else:
                cursors, batch = await client.scan(
                    position, match=pattern, count=count, target_nodes=node
                )
                position = int(cursors[node.name])
        looked += count
        found.update(dict.fromkeys(as_text(raw) for raw in batch))
        if position == 0:
            node_index += 1
            if node_index >= len(nodes):
                return ScanPage(list(found), looked, None)
    shown = f"{node_index}/{position}" if len(nodes) > 1 else str(position)
    return ScanPage(list(found), looked, shown)
