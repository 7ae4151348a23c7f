"""How JSON values are stored: UTF-8 JSON, zlib-compressed above a size threshold.

A compressed value starts with the marker ``b"\\x00z"`` (JSON text never starts with NUL), so a
reader decodes either form and values written before compression was enabled stay readable.
Pydantic models are dumped in JSON mode; plain values go through ``json``.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ValidationError

from cache.errors import SerializationError

COMPRESSED_MARKER = b"\x00z"
_LEVEL = 6

M = TypeVar("M", bound=BaseModel)


def dumps(value: Any) -> bytes:
    """JSON bytes of a model or a plain JSON value."""
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode("utf-8")
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"value is not JSON-serialisable: {exc}") from exc


def encode(value: Any, compress_threshold: int = 0) -> bytes:
    """Stored form of ``value``: JSON, compressed when larger than ``compress_threshold``."""
    raw = dumps(value)
    if compress_threshold and len(raw) > compress_threshold:
        packed = zlib.compress(raw, _LEVEL)
        if len(packed) + len(COMPRESSED_MARKER) < len(raw):
            return COMPRESSED_MARKER + packed
    return raw


def unpack(stored: bytes) -> bytes:
    """The JSON bytes of a stored value, decompressing when marked."""
    if stored.startswith(COMPRESSED_MARKER):
        try:
            return zlib.decompress(stored[len(COMPRESSED_MARKER) :])
        except zlib.error as exc:
            raise SerializationError(f"corrupt compressed value: {exc}") from exc
    return stored


@overload
def decode(stored: bytes, model: type[M]) -> M: ...
@overload
def decode(stored: bytes, model: None = None) -> Any: ...
def decode(stored: bytes, model: type[M] | None = None) -> M | Any:
    """Parse a stored value, into ``model`` when given."""
    raw = unpack(stored)
    try:
        if model is not None:
            return model.model_validate_json(raw)
        return json.loads(raw)
    except (ValidationError, ValueError) as exc:
        raise SerializationError(f"stored value is not valid JSON for {model}: {exc}") from exc
