"""The JSON job wire format (never pickle), so producers in any language can enqueue.

A job record is ARQ's own dict written as JSON::

    {"t": tries, "f": "update_progress", "a": [args], "k": {kwargs}, "et": enqueue_ms}

Results add ``s`` (success), ``r`` (result), ``st``/``ft`` (start/finish ms), ``q`` and ``id``.
Pydantic models are dumped in JSON mode; an exception result becomes
``{"error": "<type>", "message": "<text>", "traceback": "<text>"}``, the traceback (its last
``TRACEBACK_CHARS`` characters) only for an exception that was raised (one with a
``__traceback__``): formatted only when a job fails, never on the success path. Anything else
that is not JSON fails loudly.

Reading is strict about the record: UTF-8 JSON whose fields have the types and ranges
``jobs.record`` checks. A record that fails raises ``InvalidJobRecordError``, an ARQ
``DeserializationError``, so ARQ fails that one job instead of tripping over a field later.
NaN and the infinities (which Python's ``json`` reads and writes) are still accepted inside the
arguments: the job's payload validation refuses them itself; a result echoes them as ``null``.

Speed: the worker reads records and writes results with orjson (once each per job; the
stdlib's ``json`` was a tenth of the engine's time per job). Producers write records with the
stdlib (``serialize_canonical``), byte for byte what the Go and Node producers write.
Whatever orjson declines (NaN or Infinity tokens, integers beyond 64 bits, dictionary keys that
are not strings) goes through the stdlib, so what is accepted and refused is unchanged; the
only differences in the bytes written are non-ASCII text written as UTF-8 instead of escaped,
and NaN or an infinity in a result written as ``null`` (valid JSON).
"""

from __future__ import annotations

import json
import traceback
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

from jobs.record import InvalidRecord, check_record

if TYPE_CHECKING:
    from arq.jobs import DeserializationError, SerializationError
else:
    try:  # in the worker, ARQ's own errors, so ARQ fails just that job
        from arq.jobs import DeserializationError, SerializationError
    except ImportError:  # the base install (producers): no ARQ, the same hierarchy without it

        class SerializationError(RuntimeError):
            """ARQ's ``arq.jobs.SerializationError`` where ARQ is not installed."""

        class DeserializationError(SerializationError):
            """ARQ's ``arq.jobs.DeserializationError`` where ARQ is not installed."""


class JobSerializationError(ValueError, SerializationError):
    """A job or result could not be turned into (or read from) JSON."""


class InvalidJobRecordError(JobSerializationError, DeserializationError):
    """A stored record is not a valid job or result record; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid job record: {reason}")


TRACEBACK_CHARS = 4096
"""Characters of a failed job's formatted traceback kept in its result (the innermost end)."""
TRACEBACK_PART_CHARS = 1000
"""Characters kept of each part of it (a frame, the message): a huge message cannot push the
frames out."""


def traceback_text(error: BaseException) -> str | None:
    """The end of ``error``'s formatted traceback (with its causes), at most
    ``TRACEBACK_CHARS`` characters, each part cut to ``TRACEBACK_PART_CHARS``; None for an
    exception never raised."""
    if error.__traceback__ is None:
        return None
    try:
        parts = traceback.format_exception(error)
    except Exception:  # a broken __str__ must not lose the result
        return None
    cut = [
        p if len(p) <= TRACEBACK_PART_CHARS else f"{p[:TRACEBACK_PART_CHARS]}… ({len(p)} chars)\n"
        for p in parts
    ]
    return "".join(cut)[-TRACEBACK_CHARS:]


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, BaseException):
        message = str(value)
        if isinstance(value.__cause__, JobSerializationError):
            # ARQ's "unable to deserialize job" alone would hide which field was wrong
            message = f"{message}: {value.__cause__}"
        error: dict[str, str] = {"error": type(value).__name__, "message": message}
        trace = traceback_text(value)
        if trace is not None:
            error["traceback"] = trace
        return error
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def serialize(obj: Any) -> bytes:
    """ARQ ``job_serializer`` (the worker's results): orjson, else the stdlib's rules."""
    try:
        return orjson.dumps(obj, default=_default)
    except (TypeError, orjson.JSONEncodeError):
        pass  # a key that is not a string, an integer beyond 64 bits: the stdlib's rules
    return serialize_canonical(obj)


def serialize_canonical(obj: Any) -> bytes:
    """The stdlib's compact JSON, non-ASCII escaped: the job records every producer writes
    byte for byte alike (Python, Go, Node; tests/conformance/vectors)."""
    try:
        return json.dumps(obj, default=_default, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise JobSerializationError(str(exc)) from exc


def parse_record(data: bytes | bytearray | memoryview | str) -> Any:
    """The JSON value of ``data`` (strict UTF-8); ``InvalidJobRecordError`` when it is none."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass  # NaN or Infinity tokens, huge numbers, bad UTF-8: the stdlib says what it takes
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        return json.loads(text)
    except UnicodeDecodeError as exc:
        raise InvalidJobRecordError(f"not UTF-8: {exc}") from exc
    except RecursionError as exc:
        raise InvalidJobRecordError("JSON nested too deeply") from exc
    except ValueError as exc:
        raise InvalidJobRecordError(f"not JSON: {exc}") from exc


def deserialize(data: bytes | bytearray | memoryview | str) -> Any:
    """ARQ ``job_deserializer``: a checked job or result record (``jobs.record``)."""
    record = parse_record(data)
    try:
        check_record(record)
    except InvalidRecord as exc:
        raise InvalidJobRecordError(exc.reason) from exc
    return record


def record_problem(data: bytes | bytearray | memoryview | str) -> str | None:
    """Why ``deserialize`` refuses ``data``, or None when it is a valid record."""
    try:
        deserialize(data)
    except InvalidJobRecordError as exc:
        return exc.reason
    return None
