"""The shape of ARQ's job and result records, checked before ARQ reads a field.

ARQ reads some fields of a job record outside its per-job error handling (``t`` is compared
with the try count, ``et`` turned into a datetime), so one record with a wrong type there used
to end the worker, and every restarted worker again. ``check_record`` refuses such a record
with a reason; ARQ then fails that job alone (docs/wire-format.md, section 6).

A job record is ``{"t", "f", "a", "k", "et"}``; a result record (it has ``s``) adds ``s``,
``r``, ``st``, ``ft`` and optionally ``q``, ``id``. Other keys are ignored, as ARQ does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_TRIES = 2**31 - 1
"""Largest ``t`` accepted: ARQ stores it in its try counter, which ``INCR`` must still grow."""
MAX_EPOCH_MS = 253_402_128_000_000
"""9999-12-30T00:00:00Z: any later time overflows ``datetime`` once a time zone is applied."""
MAX_FUNCTION_CHARS = 256

JOB_FIELDS = ("t", "f", "a", "k", "et")
RESULT_FIELDS = ("s", "r", "st", "ft")


class InvalidRecord(ValueError):
    """A record's field is missing or has a wrong type or range; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _epoch_ms(record: Mapping[str, Any], field: str, meaning: str) -> None:
    value = record[field]
    if not _is_int(value) or not 0 <= value <= MAX_EPOCH_MS:
        raise InvalidRecord(
            f"{field!r} ({meaning}) must be an integer number of ms since the epoch in "
            f"[0, {MAX_EPOCH_MS}], got {type(value).__name__} {_shown(value)}"
        )


def _check_job_fields(record: Mapping[str, Any]) -> None:
    missing = [f for f in JOB_FIELDS if f not in record]
    if missing:
        raise InvalidRecord(f"field(s) {', '.join(map(repr, missing))} missing")
    tries = record["t"]
    if tries is not None and (not _is_int(tries) or not 0 <= tries <= MAX_TRIES):
        raise InvalidRecord(
            f"'t' (tries) must be null or an integer in [0, {MAX_TRIES}], "
            f"got {type(tries).__name__} {_shown(tries)}"
        )
    function = record["f"]
    if not isinstance(function, str) or not 0 < len(function) <= MAX_FUNCTION_CHARS:
        raise InvalidRecord(
            f"'f' (function) must be a string of 1-{MAX_FUNCTION_CHARS} characters, "
            f"got {type(function).__name__} {_shown(function)}"
        )
    if not isinstance(record["a"], list):
        raise InvalidRecord(
            f"'a' (positional arguments) must be an array, got {type(record['a']).__name__}"
        )
    kwargs = record["k"]
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise InvalidRecord(
            f"'k' (keyword arguments) must be an object, got {type(kwargs).__name__}"
        )
    _epoch_ms(record, "et", "enqueue time")


def _check_result_fields(record: Mapping[str, Any]) -> None:
    missing = [f for f in RESULT_FIELDS if f not in record]
    if missing:
        raise InvalidRecord(f"result field(s) {', '.join(map(repr, missing))} missing")
    if not isinstance(record["s"], bool):
        raise InvalidRecord(f"'s' (success) must be a boolean, got {_shown(record['s'])}")
    _epoch_ms(record, "st", "start time")
    _epoch_ms(record, "ft", "finish time")
    for field in ("q", "id"):
        if field in record and not isinstance(record[field], str):
            raise InvalidRecord(f"{field!r} must be a string, got {_shown(record[field])}")


def check_record(record: Any) -> None:
    """Raise ``InvalidRecord`` unless ``record`` is a whole job record or result record."""
    if not isinstance(record, dict):
        raise InvalidRecord(f"a record must be a JSON object, got {type(record).__name__}")
    _check_job_fields(record)
    if "s" in record:
        _check_result_fields(record)
