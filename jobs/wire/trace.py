"""W3C trace context on a job record: the optional field ``tc``.

A producer may attach the trace it runs in to a job, so the worker's spans join that trace::

    {"t": null, "f": "ping", "a": [], "k": {}, "et": 1700000000000,
     "tc": {"traceparent": "00-<32 hex>-<16 hex>-<2 hex>", "tracestate": "k=v,..."}}

ARQ and workers that predate the field ignore it (extra keys of a record are ignored). The
rules are the W3C Trace Context ones a producer can check before it writes anything: version
``00`` only, lower-case hex, neither id all zeros; ``tracestate`` is optional, needs a
``traceparent``, and is at most 512 characters of at most 32 ``key=value`` members. The Go and
Node clients apply the same rules (tests/conformance/vectors/trace_context.json).

A Python producer attaches its current span by itself (``current_trace_context``) when
OpenTelemetry's API is importable; it is imported on first use, never at import time, so the
base install (which has no OpenTelemetry) pays nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

TRACE_FIELD = "tc"
"""The record field holding the trace context."""
MAX_TRACESTATE_CHARS = 512
MAX_TRACESTATE_MEMBERS = 32

_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_KEY = re.compile(
    r"[a-z0-9][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}"
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


class InvalidTraceContext(ValueError):
    """A traceparent or tracestate that breaks the W3C rules; the message says which."""


def check_traceparent(value: object) -> str:
    """Return ``value`` if it is a version-00 W3C ``traceparent``, else raise."""
    if not isinstance(value, str):
        raise InvalidTraceContext(f"traceparent must be a string, got {type(value).__name__}")
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        raise InvalidTraceContext(
            f"traceparent {value[:80]!r} is not 00-<32 hex>-<16 hex>-<2 hex> (lower-case hex)"
        )
    if match.group(1) == _ZERO_TRACE_ID or match.group(2) == _ZERO_SPAN_ID:
        raise InvalidTraceContext(f"traceparent {value!r} has an all-zero trace or parent id")
    return value


def check_tracestate(value: object) -> str:
    """Return ``value`` if it is a W3C ``tracestate`` list, else raise."""
    if not isinstance(value, str):
        raise InvalidTraceContext(f"tracestate must be a string, got {type(value).__name__}")
    if len(value) > MAX_TRACESTATE_CHARS:
        raise InvalidTraceContext(f"tracestate is longer than {MAX_TRACESTATE_CHARS} characters")
    members = [m.strip(" \t") for m in value.split(",")]
    members = [m for m in members if m]
    if len(members) > MAX_TRACESTATE_MEMBERS:
        raise InvalidTraceContext(f"tracestate has more than {MAX_TRACESTATE_MEMBERS} members")
    for member in members:
        key, sep, val = member.partition("=")
        if not sep or not _KEY.fullmatch(key) or not _VALUE.fullmatch(val):
            raise InvalidTraceContext(f"tracestate member {member[:80]!r} is not key=value")
    return value


def trace_context(traceparent: str | None, tracestate: str | None = None) -> dict[str, str] | None:
    """The record's ``tc`` value for a producer's trace, or None without a traceparent."""
    if not traceparent:
        if tracestate:
            raise InvalidTraceContext("a tracestate needs a traceparent")
        return None
    context = {"traceparent": check_traceparent(traceparent)}
    if tracestate:
        context["tracestate"] = check_tracestate(tracestate)
    return context


@functools.cache
def _current_span_carrier() -> Callable[[], dict[str, str]] | None:
    """A function writing the current span's W3C headers into a new dict, or None without
    OpenTelemetry (looked up once per process)."""
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        return None
    propagator = TraceContextTextMapPropagator()
    current_span = trace.get_current_span

    def carrier() -> dict[str, str]:
        headers: dict[str, str] = {}
        if current_span().get_span_context().is_valid:
            propagator.inject(headers)
        return headers

    return carrier


def current_trace_context() -> dict[str, str] | None:
    """The record's ``tc`` for the OpenTelemetry span current in this context, or None (no
    OpenTelemetry, no valid current span, or one whose headers break the rules above)."""
    carrier = _current_span_carrier()
    if carrier is None:
        return None
    headers = carrier()
    if not headers:
        return None
    traceparent = headers.get("traceparent")
    try:
        return trace_context(traceparent, headers.get("tracestate"))
    except InvalidTraceContext:
        pass
    try:  # W3C: a tracestate that breaks the rules is dropped, the traceparent stays
        return trace_context(traceparent)
    except InvalidTraceContext:
        return None
