"""How JSON values are stored: UTF-8 JSON, zlib-compressed above a size threshold.

A compressed value starts with the marker ``b"\\x00z"`` (JSON text never starts with NUL), so a
reader decodes either form and values written before compression was enabled stay readable.
Pydantic models are dumped in JSON mode; plain values go through ``json``.

``as_text`` is the one bytes-to-text conversion of replies from the store (keys, members, field
names, plain values): UTF-8, with undecodable bytes replaced rather than raised.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ValidationError

from cache.errors import SerializationError

COMPRESSED_MARKER = b"\x00z"
_LEVEL = 6
_NOT_JSON = "NaN and Infinity are not JSON (Go and JavaScript readers cannot parse them)"
_TOO_DEEP = "value is nested too deeply for JSON"
_SUSPECT = (b"null", b"NaN", b"Infinity")
"""Without one of these in a model's JSON, none of its floats was NaN or infinite: pydantic
writes them as ``null`` (or as ``NaN``/``Infinity`` when a model asks for it)."""

M = TypeVar("M", bound=BaseModel)


def _opaque(value: Any) -> Any:
    """``default`` of the finiteness check: only floats matter, so other objects are skipped
    (sets are still searched)."""
    return list(value) if isinstance(value, set | frozenset) else None


def _check_finite(value: BaseModel) -> None:
    """Refuse a model holding a non-finite float, which ``model_dump_json`` writes as null."""
    try:
        json.dumps(value.model_dump(), allow_nan=False, default=_opaque, skipkeys=True)
    except ValueError as exc:
        raise SerializationError(f"value is not JSON-serialisable: {_NOT_JSON}") from exc
    except RecursionError:
        raise SerializationError(_TOO_DEEP) from None


def _refuse_constant(name: str) -> Any:
    raise SerializationError(f"stored value holds {name}: {_NOT_JSON}")


def dumps(value: Any) -> bytes:
    """JSON bytes of a model or a plain JSON value; ``SerializationError`` for anything that is
    not strict JSON (NaN, Infinity, non-JSON types) or is nested too deeply."""
    if isinstance(value, BaseModel):
        try:
            data = value.model_dump_json().encode("utf-8")
        except RecursionError:
            raise SerializationError(_TOO_DEEP) from None
        except ValueError as exc:
            raise SerializationError(f"value is not JSON-serialisable: {exc}") from exc
        if any(marker in data for marker in _SUSPECT):
            _check_finite(value)
        return data
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise SerializationError(_TOO_DEEP) from None
    except ValueError as exc:
        raise SerializationError(f"value is not JSON-serialisable: {_NOT_JSON}") from exc
    except TypeError as exc:
        raise SerializationError(f"value is not JSON-serialisable: {exc}") from exc
    return text.encode("utf-8")


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
    """Parse a stored value, into ``model`` when given; NaN, Infinity and nesting too deep for
    Python are refused with ``SerializationError``."""
    raw = unpack(stored)
    try:
        if model is None or any(marker in raw for marker in _SUSPECT[1:]):
            plain = json.loads(raw, parse_constant=_refuse_constant)
            if model is None:
                return plain
        return model.model_validate_json(raw)
    except RecursionError:
        raise SerializationError("stored value is nested too deeply to decode") from None
    except SerializationError:
        raise
    except (ValidationError, ValueError) as exc:
        raise SerializationError(f"stored value is not valid JSON for {model}: {exc}") from exc


@overload
def as_text(value: None) -> None: ...
@overload
def as_text(value: bytes | str) -> str: ...
def as_text(value: bytes | str | None) -> str | None:
    """A reply as text: bytes decoded as UTF-8 (bad bytes become U+FFFD), text as is."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
