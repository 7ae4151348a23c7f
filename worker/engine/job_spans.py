"""The spans of traced jobs, with OpenTelemetry: ``JobSpans``, the engine's ``JobTracing``.

Made only when tracing is on (``[otel]``, or a caller's ``tracing=``): this module imports
OpenTelemetry (the ``otel`` extra). A job whose record carries a W3C trace context (``tc``,
``jobs.wire.trace``) gets these spans, in the producer's trace (docs/tracing.md)::

    <the producer's span>                 from the record's tc
    └─ seen.job <function>   CONSUMER     from the claim that took the job to its end here
       ├─ seen.claim         INTERNAL     the claim round trip (one call claims a batch)
       ├─ seen.progress.*    CLIENT       the body's store writes (``jobs.spans``)
       ├─ (the job's own spans, when its code uses OpenTelemetry: the job span is current)
       └─ seen.finish        INTERNAL     the finish round trip (one call finishes a batch)

One claim (and one finish) round trip serves many jobs, and a span has one parent: each traced
job gets its own ``seen.claim`` and ``seen.finish`` span with the round trip's times and the
batch size, so its trace shows where its time went; the same round trip appears in every trace
it served. A job without a trace context gets no span unless ``roots`` (``otel.sample_ratio`` >
0): then it starts a trace of its own, sampled by the provider's sampler. A trace the producer
did not sample (flags ``00``) is followed without a span: nothing of it is recorded, and the
producer's context is current in the body, so jobs it enqueues carry the trace on. A trace
context that breaks the W3C rules is ignored with one debug line; it never fails the job.

Attributes are bounded: function name (``<unknown>`` for one the worker does not know), queue
name, shard index, try, outcome, batch size, and ``error.type`` (an exception's class name) on
failure. Never job ids, arguments, results or exception messages: producers choose those, and
they may hold user ids, download ids or payloads.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TracerProvider,
    TraceState,
    set_span_in_context,
)

from cache.clock import wall_ns
from jobs.outcome import Outcome
from jobs.spans import BATCH_SIZE
from jobs.wire.trace import InvalidTraceContext, check_traceparent, check_tracestate
from worker.engine.job import Job
from worker.engine.records import JobRecord

log = logging.getLogger("seen.worker.tracing")

SCOPE = "seen-worker"
"""The instrumentation scope of every span the worker makes."""
FUNCTION = "seen.job.function"
QUEUE = "seen.queue"
SHARD = "seen.queue.shard"
TRY = "seen.job.try"
OUTCOME = "seen.job.outcome"
ERROR_TYPE = "error.type"
UNKNOWN_FUNCTION = "<unknown>"


@dataclass(frozen=True, slots=True)
class ClaimStamp:
    """When the claim round trip that took a job was sent and answered, and how many jobs it
    claimed (shared by the batch's jobs until each job's span is made)."""

    start_ns: int
    end_ns: int
    size: int


class _Traced:
    """A job's span, the OpenTelemetry context holding it, and what its end will need."""

    __slots__ = ("context", "error_type", "recording", "span")

    def __init__(self, span: Span, context: Context) -> None:
        self.span = span
        self.context = context
        self.recording = span.is_recording()
        self.error_type: str | None = None


class JobSpans:
    """``JobTracing`` (``worker.engine.tracing``) through ``provider``: any OpenTelemetry
    ``TracerProvider``, the worker's own (``worker.otel``) or one an application or a test
    hands in. ``roots``: jobs without a trace context start traces of their own."""

    def __init__(self, provider: TracerProvider, *, queue: str, roots: bool = False) -> None:
        self._tracer = provider.get_tracer(SCOPE)
        self.queue = queue
        self.roots = roots
        self.store_spans = StoreSpans(self._tracer)

    # -- claim ------------------------------------------------------------------------
    def claimed(self, jobs: Sequence[Job], start_ns: int) -> None:
        """A claim round trip sent at ``start_ns`` claimed ``jobs``."""
        stamp = ClaimStamp(start_ns, wall_ns(), len(jobs))
        for job in jobs:
            job.trace = stamp

    # -- run --------------------------------------------------------------------------
    def start(self, job: Job, record: JobRecord, known: bool) -> None:
        """The job's record was read: make its span (started at its claim) when it carries a
        usable trace context, or when ``roots``. ``known``: its function is one of ours."""
        stamp = job.trace
        job.trace = None
        remote = self._remote(job.job_id, record.trace)
        if remote is None:
            if not self.roots:
                return
            parent = Context()  # a trace of its own, if the provider's sampler takes it
        elif not remote.trace_flags.sampled:
            # the producer did not sample its trace: nothing is recorded (parent-based, as the
            # worker's own sampler; no span is made for it), and the producer's context stays
            # current in the body so the jobs it enqueues carry the trace on
            producer = NonRecordingSpan(remote)
            job.trace = _Traced(producer, set_span_in_context(producer, Context()))
            return
        else:
            parent = set_span_in_context(NonRecordingSpan(remote), Context())
        function = record.function if known else UNKNOWN_FUNCTION
        claim = stamp if isinstance(stamp, ClaimStamp) else None
        span = self._tracer.start_span(
            f"seen.job {function}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={FUNCTION: function, QUEUE: self.queue, SHARD: job.shard.index},
            start_time=claim.start_ns if claim is not None else None,
        )
        traced = _Traced(span, set_span_in_context(span))
        job.trace = traced
        if traced.recording and claim is not None:
            self._tracer.start_span(
                "seen.claim",
                context=traced.context,
                attributes={QUEUE: self.queue, BATCH_SIZE: claim.size},
                start_time=claim.start_ns,
            ).end(end_time=claim.end_ns)

    def enter(self, job: Job, context: contextvars.Context, ctx: dict[str, Any]) -> None:
        """The body is about to run in ``context``: make the job's span current there (the
        context is the job's own and is dropped after it, so nothing is detached), and give a
        recording job its store-write spans (``ctx["spans"]``)."""
        traced = job.trace
        if not isinstance(traced, _Traced):
            return
        context.run(attach, traced.context)
        if traced.recording:
            ctx["spans"] = self.store_spans

    def ran(self, job: Job, job_try: int, failure: BaseException | None) -> None:
        """The run ended (or the job failed before it ran) on try ``job_try``; ``failure``:
        what failed it, when it failed (a timeout's is ``TimeoutError``)."""
        traced = job.trace
        if not isinstance(traced, _Traced) or not traced.recording:
            return
        traced.span.set_attribute(TRY, job_try)
        if failure is not None:
            traced.error_type = type(failure).__name__

    # -- finish -----------------------------------------------------------------------
    def finished(self, jobs: Iterable[Job], start_ns: int, size: int) -> None:
        """A finish round trip sent at ``start_ns`` carried ``size`` finishes, ``jobs``'s
        among them."""
        end_ns = wall_ns()
        for job in jobs:
            traced = job.trace
            if isinstance(traced, _Traced) and traced.recording:
                self._tracer.start_span(
                    "seen.finish",
                    context=traced.context,
                    attributes={QUEUE: self.queue, BATCH_SIZE: size},
                    start_time=start_ns,
                ).end(end_time=end_ns)

    def ended(self, job: Job, outcome: Outcome | None) -> None:
        """The job is no longer this worker's: end its span with ``outcome``."""
        traced = job.trace
        job.trace = None
        if not isinstance(traced, _Traced):
            return
        span = traced.span
        if traced.recording:
            if outcome is not None:
                span.set_attribute(OUTCOME, outcome.value)
            if outcome is Outcome.FAILED:
                if traced.error_type is not None:
                    span.set_attribute(ERROR_TYPE, traced.error_type)
                span.set_status(StatusCode.ERROR)
        span.end()

    # -- the record's trace context ---------------------------------------------------
    def _remote(self, job_id: str, carrier: Mapping[str, str] | None) -> SpanContext | None:
        """The producer's span context, or None (no usable ``tc``)."""
        if carrier is None:
            return None
        traceparent = carrier.get("traceparent")
        try:
            check_traceparent(traceparent)
        except InvalidTraceContext as exc:
            log.debug("job %s: trace context ignored: %s", job_id, exc)
            return None
        assert traceparent is not None
        state = None
        tracestate = carrier.get("tracestate")
        if tracestate:
            try:
                state = TraceState.from_header([check_tracestate(tracestate)])
            except InvalidTraceContext as exc:  # W3C: drop the tracestate, keep the parent
                log.debug("job %s: tracestate ignored: %s", job_id, exc)
        _, trace_id, span_id, flags = traceparent.split("-")
        return SpanContext(
            int(trace_id, 16),
            int(span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(int(flags, 16)),
            trace_state=state,
        )


class StoreSpans:
    """``ctx["spans"]`` of a recording job: a span per store write its body makes, a child of
    the job's span (``jobs.spans.store_write`` is how jobs ask for one)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def store_write(
        self, name: str, attributes: Mapping[str, int | str]
    ) -> AbstractContextManager[None]:
        return self._span(name, attributes)

    @contextmanager
    def _span(self, name: str, attributes: Mapping[str, int | str]) -> Iterator[None]:
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        token = attach(set_span_in_context(span))
        try:
            yield
        except BaseException as exc:  # the class name only: a message may hold user data
            span.set_attribute(ERROR_TYPE, type(exc).__name__)
            span.set_status(StatusCode.ERROR)
            raise
        finally:
            detach(token)
            span.end()
