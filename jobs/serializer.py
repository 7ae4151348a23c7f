"""The JSON job wire format (never pickle), so producers in any language can enqueue.

A job record is ARQ's own dict written as JSON::

    {"t": tries, "f": "update_progress", "a": [args], "k": {kwargs}, "et": enqueue_ms}

Results add ``s`` (success), ``r`` (result), ``st``/``ft`` (start/finish ms), ``q`` and ``id``.
Pydantic models are dumped in JSON mode; an exception result becomes
``{"error": "<type>", "message": "<text>"}``; anything else that is not JSON fails loudly.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel


class JobSerializationError(ValueError):
    """A job or result could not be turned into (or read from) JSON."""


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": str(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def serialize(obj: Any) -> bytes:
    """ARQ ``job_serializer``."""
    try:
        return json.dumps(obj, default=_default, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise JobSerializationError(str(exc)) from exc


def deserialize(data: bytes) -> Any:
    """ARQ ``job_deserializer``."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise JobSerializationError(f"not a JSON job record: {exc}") from exc
