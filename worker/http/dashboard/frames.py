"""What goes over the live-downloads SSE stream: one frame per batch, encoded once.

A frame is ``id: <cursor>`` (``cursor.py``), ``event: <kind>`` and one JSON ``data:`` line.
Frames are built once per batch by the hub and the same bytes are written to every client,
so 100 browsers cost 100 socket writes, not 100 JSON encodings. Kinds:

- ``snapshot``: ``{"downloads": [item...], "unreadable": n}``, every active download (initial
  load, or a resume older than what the streams still hold) and how many entries could not be
  read (skipped);
- ``progress``: ``{"events": [item...]}``, stream entries in order, each with its entry id
  ``i`` (its first part is the server's XADD time in ms, used for latency) and shard ``h``
  (entry ids are unique per shard's stream, so ``(h, i)`` names an event);
- ``resync``: the client was too slow; it reconnects and resumes from its last id.

An item is a compact object (short keys, documented in docs/dashboard.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from cache.download import DownloadProgress

RETRY_MS = 1000
"""Reconnection delay the browser is told to use."""


def item(
    progress: DownloadProgress, entry_id: str | None = None, shard: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "j": progress.job_id,
        "u": progress.user_id,
        "s": progress.status.value,
        "p": round(progress.progress_percent, 2),
        "d": progress.bytes_done,
        "t": progress.bytes_total,
        "v": progress.speed,
        "e": progress.eta_seconds,
        "q": progress.seq,
        "a": int(progress.updated_at.timestamp() * 1000),
    }
    if progress.error:
        out["x"] = progress.error[:200]
    if entry_id is not None:
        out["i"] = entry_id
    if shard is not None:
        out["h"] = shard
    return out


def frame(kind: str, cursor: str | None, data: Any) -> bytes:
    head = f"id: {cursor}\n" if cursor is not None else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}event: {kind}\ndata: {body}\n\n".encode()


def progress_frame(cursor: str, items: Iterable[dict[str, Any]]) -> bytes:
    return frame("progress", cursor, {"events": list(items)})


def snapshot_data(downloads: Iterable[DownloadProgress], unreadable: int = 0) -> bytes:
    """The ``data:`` of a snapshot, encoded once and shared by the clients that wait for it;
    ``unreadable``: entries the read skipped because they could not be read."""
    data = {"downloads": [item(p) for p in downloads], "unreadable": unreadable}
    return json.dumps(data, separators=(",", ":")).encode()


def snapshot_frame(cursor: str, data: bytes) -> bytes:
    return b"id: " + cursor.encode() + b"\nevent: snapshot\ndata: " + data + b"\n\n"


def hello_frame() -> bytes:
    """First bytes of every stream: the retry delay (and headers flushed through proxies)."""
    return f"retry: {RETRY_MS}\n: connected\n\n".encode()


RESYNC_FRAME = frame("resync", None, {"reason": "client too slow; reconnect and resume"})
PING_FRAME = b": ping\n\n"
