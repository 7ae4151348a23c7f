"""Job records in, result records out: ARQ's JSON formats (docs/wire-format.md, sections 2 and 5).

A job record is read with ``jobs.serializer.deserialize`` (strict: ``jobs.record`` checks every
field before one is used) and an optional W3C trace context (``tc``) is taken from it. A result
record is exactly what ``arq.jobs.serialize_result`` writes with our JSON serializer, so
``Job.result()``, ``Job.info()`` and ``Job.status()`` of ARQ read it (a test compares the two
byte for byte); a result that cannot be written as JSON is replaced, as in ARQ, by
``"unable to serialize result"`` with ``s = false``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from jobs.serializer import JobSerializationError, deserialize, serialize

log = logging.getLogger("seen.worker.engine")

UNSERIALIZABLE = "unable to serialize result"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What a job record asks for."""

    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    tries: int | None
    """``t``: tries already made according to the producer (ARQ's ``enqueue_job_try``)."""
    enqueue_ms: int
    trace: dict[str, str] | None
    """``tc``: W3C trace context (``traceparent``, ``tracestate``) the producer attached."""


def read_record(raw: bytes) -> JobRecord:
    """The job record in ``raw``; raises ``InvalidJobRecordError`` naming what is wrong."""
    data = deserialize(raw)
    trace = data.get("tc")
    return JobRecord(
        function=data["f"],
        args=tuple(data["a"]),
        kwargs=data["k"],
        tries=data["t"],
        enqueue_ms=data["et"],
        trace=trace if _is_carrier(trace) else None,
    )


def _is_carrier(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) <= 4
        and all(
            isinstance(k, str) and isinstance(v, str) and len(v) <= 512 for k, v in value.items()
        )
    )


def result_record(
    *,
    record: JobRecord | None,
    job_id: str,
    job_try: int,
    success: bool,
    result: Any,
    start_ms: int,
    finish_ms: int,
    queue: str,
) -> bytes:
    """ARQ's result record (``serialize_result``) of a job that ended."""
    data: dict[str, Any] = {
        "t": job_try,
        "f": record.function if record is not None else "<unknown>",
        "a": record.args if record is not None else (),
        "k": record.kwargs if record is not None else {},
        "et": record.enqueue_ms if record is not None else 0,
        "s": success,
        "r": result,
        "st": start_ms,
        "ft": finish_ms,
        "q": queue,
        "id": job_id,
    }
    try:
        return serialize(data)
    except JobSerializationError:
        log.warning("error serializing result of %s", job_id, exc_info=True)
    data.update(r=UNSERIALIZABLE, s=False)
    try:
        return serialize(data)
    except JobSerializationError:  # the arguments themselves cannot be written back
        log.critical("error serializing result of %s even after replacing result", job_id)
        data.update(a=(), k={})
        return serialize(data)
