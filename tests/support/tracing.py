"""Spans for the tracing tests: an in-memory OpenTelemetry pipeline, the spans a worker made
for a trace, and the bounded attribute sets every worker span must keep to."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

JOB_KEYS = {"seen.job.function", "seen.queue", "seen.queue.shard", "seen.job.try"}
"""A job span's attributes (plus ``seen.job.outcome`` and, failed, ``error.type``)."""
ROUND_TRIP_KEYS = {"seen.queue", "seen.batch_size"}
"""``seen.claim`` and ``seen.finish``."""


def memory_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A provider whose spans are kept in memory, exported as each ends (never the global)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def in_trace(spans: Iterable[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def named(spans: Iterable[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def children(spans: Iterable[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def texts(spans: Sequence[ReadableSpan]) -> str:
    """Every name, attribute key and value, event and status text of ``spans``, as one string
    (a test looks for data that must not be there)."""
    parts: list[str] = []
    for span in spans:
        parts.append(span.name)
        parts.append(str(span.status.description or ""))
        for key, value in (span.attributes or {}).items():
            parts.append(f"{key}={value!s}")
        for event in span.events:
            parts.append(event.name)
            parts.extend(f"{k}={v!s}" for k, v in (event.attributes or {}).items())
    return "\n".join(parts)
