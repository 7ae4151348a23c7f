"""What a catalog entry is: its kind, its search identity, its stored form, its refresh rule.

Pure logic, no I/O, so it is unit-tested without a server.

Stored form: ``b"\\x00m<expiry_ms>:<delta_ms>:"`` followed by the value exactly as
``CacheService.set_json`` stores it (JSON, zlib-compressed with its own marker above
``cache.compress_threshold``). ``expiry_ms`` (writer's clock, Unix ms) and ``delta_ms`` (how
long the loader took) feed the XFetch early-refresh rule. A value without the header (written
by plain ``set_json`` or another service) is still read, just never refreshed early.
"""

from __future__ import annotations

import json
import math
import random
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cache import codec
from cache.errors import SerializationError

ENTRY_MARKER = b"\x00m"


class Scope(StrEnum):
    USER = "user"
    SHARED = "shared"


class CatalogKind(StrEnum):
    """The six cached views; the value is the kind's segment in its key."""

    DASHBOARD = "dashboard"
    DISCOVER = "discover"
    SEARCH = "search"
    WATCH_LATER = "watch_later"
    CONTINUE_WATCHING = "continue_watching"
    RECOMMENDATIONS = "recommendations"

    @property
    def scope(self) -> Scope:
        """Per user (invalidated with the user) or shared (invalidated in bulk)."""
        return Scope.SHARED if self in (CatalogKind.DISCOVER, CatalogKind.SEARCH) else Scope.USER

    @property
    def ttl_setting(self) -> str:
        """The ``TTLSettings`` field holding this kind's default TTL."""
        if self is CatalogKind.SEARCH:
            return "search_results"
        if self is CatalogKind.RECOMMENDATIONS:
            return "recommendations"
        return "catalog"


def normalise_query(query: str) -> str:
    """Case-folded, Unicode-NFC, whitespace collapsed and trimmed: ``"  The  MATRIX "`` and
    ``"the matrix"`` are one search."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__}")
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", query).casefold())
    return " ".join(folded.split())


def canonical_search(query: str, filters: Mapping[str, Any] | None = None) -> str:
    """One string per distinct search: normalised query + filters as sorted-key JSON.

    Filter values are kept as given (a list's order is meaningful to the caller); ``None`` and
    ``{}`` are the same. Raises ``SerializationError`` for filters that are not JSON.
    """
    try:
        rendered = json.dumps(
            dict(filters or {}),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"search filters are not JSON-serialisable: {exc}") from exc
    except RecursionError:
        raise SerializationError("search filters are nested too deeply for JSON") from None
    return f"{normalise_query(query)}\x00{rendered}"


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A stored entry split into its payload and its refresh metadata."""

    payload: bytes
    expiry_ms: int | None = None
    delta_ms: int = 0


def pack(payload: bytes, expiry_ms: int, delta_ms: int) -> bytes:
    """Stored form of an encoded value with its expiry and loader time."""
    return b"%s%d:%d:%s" % (ENTRY_MARKER, expiry_ms, max(0, delta_ms), payload)


def unpack(stored: bytes) -> StoredEntry:
    """Split a stored entry; a value without our header is returned as a bare payload."""
    if not stored.startswith(ENTRY_MARKER):
        return StoredEntry(stored)
    parts = stored[len(ENTRY_MARKER) :].split(b":", 2)
    if len(parts) != 3:
        raise SerializationError("catalog entry header is truncated")
    try:
        return StoredEntry(parts[2], int(parts[0]), int(parts[1]))
    except ValueError as exc:
        raise SerializationError(f"catalog entry header is corrupt: {exc}") from exc


def decode(entry: StoredEntry, model: type[Any] | None) -> Any:
    """The entry's value, into ``model`` when given; ``SerializationError`` when unreadable."""
    return codec.decode(entry.payload, model)


def xfetch_due(
    now_ms: int, expiry_ms: int | None, delta_ms: int, beta: float, rng: random.Random
) -> bool:
    """XFetch (Vattani et al.): refresh when ``now - delta*beta*ln(rand()) >= expiry``.

    The chance grows as expiry nears and with the loader's cost, so one reader of a hot key
    refreshes it shortly before it expires instead of every reader after. ``beta`` > 1 favours
    earlier refreshes, 0 disables them. ``1 - random()`` lies in (0, 1], so ln never sees 0.
    """
    if expiry_ms is None or beta <= 0:
        return now_ms >= expiry_ms if expiry_ms is not None else False
    gap = -delta_ms * beta * math.log(1.0 - rng.random())
    return now_ms + gap >= expiry_ms
