"""The SSE event id: the position in every shard's event stream, as one string.

The live-downloads stream merges ``download.shards`` Redis streams, each with its own entry ids
(``<ms>-<n>``). A reconnecting browser sends back only the last ``id:`` it saw
(``Last-Event-ID``), so that id must name the position in *every* stream: it is the shard
positions in shard order, joined by ``,`` (an empty stream's position is ``0``). Parsing is
strict: anything else is "unknown", and the client gets a snapshot instead of a guess.
"""

from __future__ import annotations

import re

from cache.download import entry_key

_ENTRY = re.compile(r"\d{1,20}-\d{1,20}")
MAX_CURSOR_CHARS = 64 * 1024


def encode(positions: list[str]) -> str:
    return ",".join("0" if p == "0-0" else p for p in positions)


def decode(text: str | None, shards: int) -> list[str] | None:
    """Shard positions of a cursor, or None when it is not one (wrong count, bad id)."""
    if not text or len(text) > MAX_CURSOR_CHARS:
        return None
    parts = text.strip().split(",")
    if len(parts) != shards:
        return None
    out = []
    for part in parts:
        if part == "0":
            out.append("0-0")
        elif _ENTRY.fullmatch(part):
            out.append(part)
        else:
            return None
    return out


def after(entry_id: str) -> str:
    """The smallest entry id above ``entry_id`` (an exclusive XRANGE start without ``(``)."""
    ms, n = entry_key(entry_id)
    return f"{ms}-{n + 1}"


def entry_ms(entry_id: str) -> int:
    """The server time (ms) at which the entry was added: the first part of its id."""
    return entry_key(entry_id)[0]
