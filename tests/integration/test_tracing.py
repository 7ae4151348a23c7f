"""One trace from the producer to the store (issue 23.4), across a real worker on a real
server, read with the OpenTelemetry SDK's in-memory exporter.

The worker is ``SeenWorker`` in-process, handed ``JobSpans`` over a provider of the test's own
(never the process's global one); the producer is the Python producer API, called inside a
span of the same provider. The Go and Node producers' traces are checked through a worker
process exporting over OTLP (tests/conformance/test_go_client.py, test_node_client.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import pytest
from arq.worker import Function, Retry, func
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    use_span,
)
from redis.asyncio import Redis

from cache.manager import CacheManager
from jobs.client import (
    ProgressPublisher,
    enqueue_job,
    enqueue_update,
    enqueue_update_batch,
    job_record,
)
from jobs.outcome import JobCounts
from tests.conftest import TestServer
from tests.integration.test_worker import EXTRA, fast_settings
from tests.support.layout import LAYOUT
from tests.support.tracing import (
    JOB_KEYS,
    ROUND_TRIP_KEYS,
    children,
    in_trace,
    memory_provider,
    named,
    texts,
)
from tests.support.updates import upd
from worker.app import SeenWorker
from worker.engine.job_spans import JobSpans
from worker.settings import Settings

SECRET = "s3cr3t"
"""Part of every id and payload the producers send: it must appear in no span."""


async def current_span_id(ctx: dict[str, Any]) -> str:
    """A job that reports the span current in its body (its own code's spans' parent)."""
    return format(trace.get_current_span().get_span_context().span_id, "016x")


async def context_keys(ctx: dict[str, Any]) -> list[str]:
    return sorted(ctx)


async def retried_once(ctx: dict[str, Any]) -> int:
    if ctx["job_try"] == 1:
        raise Retry(defer=0.01)
    return int(ctx["job_try"])


async def too_slow(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(10)


FUNCTIONS: list[Function] = [
    *EXTRA,
    func(current_span_id, name="current_span_id"),
    func(context_keys, name="context_keys"),
    func(retried_once, name="retried_once"),
    func(too_slow, name="too_slow", timeout=0.2, max_tries=1),
]


async def run_burst(
    settings: Settings, provider: TracerProvider | None, *, roots: bool = False
) -> JobCounts:
    """The worker, in burst mode, tracing through ``provider`` (None: tracing off)."""
    tracing = None if provider is None else JobSpans(provider, queue="arq:queue", roots=roots)
    worker = SeenWorker(
        settings, extra_functions=FUNCTIONS, burst=True, cron=False, tracing=tracing
    )
    await worker.run()
    assert worker.engine is not None
    assert worker.engine.tracing is tracing and worker.engine.jobs.tracing is tracing
    return worker.engine.counts


async def result(raw: Redis, job_id: str) -> Any:
    data = json.loads(await raw.get(LAYOUT.for_job(job_id).result(job_id)) or "null")
    assert isinstance(data, dict), f"no result for {job_id}"
    return data["r"]


async def raw_enqueue(raw: Redis, job_id: str, function: str, tc: Any) -> None:
    """A record written by hand (the lane's layout), its ``tc`` whatever the test says."""
    record = json.loads(job_record(function, [], int(time.time() * 1000)))
    record["tc"] = tc
    shard = LAYOUT.for_job(job_id)
    await raw.set(shard.job(job_id), json.dumps(record), px=60_000)
    await raw.zadd(shard.queue, {job_id: int(time.time() * 1000)})


def job_spans(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    """The worker's job spans by function (one per function in these tests)."""
    jobs = [s for s in spans if s.name.startswith("seen.job ")]
    by_function = {str((s.attributes or {})["seen.job.function"]): s for s in jobs}
    assert len(by_function) == len(jobs), [s.name for s in jobs]
    return by_function


def only_child(spans: Sequence[ReadableSpan], parent: ReadableSpan, name: str) -> ReadableSpan:
    found = named(children(spans, parent), name)
    assert len(found) == 1, f"{parent.name}: {len(found)} {name} spans"
    return found[0]


@pytest.mark.timeout(90)
async def test_a_python_producers_trace_continues_through_the_worker(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    provider, exporter = memory_provider()
    tracer = provider.get_tracer("a service")
    publisher = ProgressPublisher(manager, layout=LAYOUT)
    with tracer.start_as_current_span("handle request") as request:
        await publisher.publish(upd(f"dl-{SECRET}-1", 3, user=f"u-{SECRET}"))
        await enqueue_update(
            manager.client, upd(f"dl-{SECRET}-2", 1, user=f"u-{SECRET}"), layout=LAYOUT
        )
        batch = [upd(f"dl-{SECRET}-{i}", i, user=f"u-{SECRET}") for i in (3, 4)]
        await enqueue_update_batch(manager.client, batch, layout=LAYOUT)
        await enqueue_job(manager.client, "broken", job_id=f"broken-{SECRET}", layout=LAYOUT)
        await enqueue_job(manager.client, "current_span_id", job_id="current", layout=LAYOUT)
    await enqueue_job(manager.client, "ping", job_id="untraced", layout=LAYOUT)  # outside any span
    stored = json.loads(await raw.get(LAYOUT.for_job("current").job("current")) or "{}")
    request_ctx = request.get_span_context()
    assert stored["tc"] == {
        "traceparent": f"00-{request_ctx.trace_id:032x}-{request_ctx.span_id:016x}-"
        f"{request_ctx.trace_flags:02x}"  # sampled (and, W3C level 2, a random trace id)
    }
    assert "tc" not in json.loads(await raw.get(LAYOUT.for_job("untraced").job("untraced")) or "{}")

    counts = await run_burst(fast_settings(server.addr), provider)
    assert (counts.complete, counts.failed) == (5, 1)
    spans = exporter.get_finished_spans()
    ours = in_trace(spans, request_ctx.trace_id)
    assert len(ours) == len(spans), "the untraced job made a span"
    jobs = job_spans(ours)
    assert set(jobs) == {
        "update_progress",
        "update_progress_batch",
        "apply_pending_progress",
        "broken",
        "current_span_id",
    }
    for function, span in jobs.items():
        assert span.parent is not None and span.parent.span_id == request_ctx.span_id, function
        assert span.kind is SpanKind.CONSUMER and span.name == f"seen.job {function}"
        attributes = dict(span.attributes or {})
        failed = function == "broken"
        keys = JOB_KEYS | {"seen.job.outcome"} | ({"error.type"} if failed else set())
        assert set(attributes) == keys, function
        assert attributes["seen.queue"] == "arq:queue"
        assert attributes["seen.queue.shard"] in range(len(LAYOUT.shards))
        assert attributes["seen.job.try"] == 1
        assert attributes["seen.job.outcome"] == ("failed" if failed else "complete")
        claim = only_child(ours, span, "seen.claim")
        finish = only_child(ours, span, "seen.finish")
        for round_trip in (claim, finish):
            assert set(round_trip.attributes or {}) == ROUND_TRIP_KEYS
            size = (round_trip.attributes or {})["seen.batch_size"]
            assert isinstance(size, int) and size >= 1
        assert span.start_time == claim.start_time  # the job span starts at its claim
        assert claim.end_time is not None and finish.start_time is not None
        assert claim.end_time <= finish.start_time
        assert span.end_time is not None and span.end_time >= finish.end_time  # type: ignore[operator]

    broken = jobs["broken"]
    assert broken.status.status_code is StatusCode.ERROR
    assert (broken.attributes or {})["error.type"] == "ValueError"
    assert broken.events == ()  # no exception event: its message could hold user data
    body_span = await result(raw, "current")
    assert body_span == format(jobs["current_span_id"].context.span_id, "016x")

    writes = {
        function: [(s.name, dict(s.attributes or {})) for s in children(ours, jobs[function])]
        for function in ("update_progress", "update_progress_batch", "apply_pending_progress")
    }
    assert [
        w for w in writes["update_progress"] if w[0] != "seen.claim" and w[0] != "seen.finish"
    ] == [("seen.progress.apply", {"seen.batch_size": 1})]
    assert ("seen.progress.apply", {"seen.batch_size": 2}) in writes["update_progress_batch"]
    drains = [a for n, a in writes["apply_pending_progress"] if n == "seen.progress.drain"]
    assert len(drains) == 1 and set(drains[0]) == {"seen.download.shard"}
    for span in ours:
        if span.kind is SpanKind.CLIENT:
            assert span.parent is not None and span.name.startswith("seen.progress.")

    worker_spans = [s for s in ours if s.name != "handle request"]
    text = texts(worker_spans)
    assert SECRET not in text and "broken job" not in text
    assert {s.instrumentation_scope.name for s in worker_spans} == {"seen-worker"}  # type: ignore[union-attr]
    done = await manager.download.get_progress(f"dl-{SECRET}-1")
    assert done is not None and done.seq == 3  # the traced jobs did their work


async def test_tracing_off_makes_no_span_and_runs_traced_records(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    provider, exporter = memory_provider()
    with provider.get_tracer("a service").start_as_current_span("request"):
        await enqueue_job(manager.client, "context_keys", job_id="keys", layout=LAYOUT)
        await enqueue_update(manager.client, upd("dl-off", 2), layout=LAYOUT)
    settings = fast_settings(server.addr)
    assert settings.otel.enabled is False
    worker = SeenWorker(settings, extra_functions=FUNCTIONS, burst=True, cron=False)
    await worker.run()
    assert worker.tracing is None and worker.otel is None
    assert worker.engine is not None and worker.engine.jobs.tracing is None
    assert (worker.engine.counts.complete, worker.engine.counts.failed) == (2, 0)
    keys = await result(raw, "keys")
    assert "trace" in keys and "spans" not in keys  # the record's tc, no store-write spans
    assert [s.name for s in exporter.get_finished_spans()] == ["request"]
    progress = await manager.download.get_progress("dl-off")
    assert progress is not None and progress.seq == 2


async def test_without_a_trace_context_a_job_gets_a_span_only_with_roots(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    provider, exporter = memory_provider()
    settings = fast_settings(server.addr)
    await enqueue_job(manager.client, "context_keys", job_id="plain", layout=LAYOUT)
    await run_burst(settings, provider)
    assert exporter.get_finished_spans() == ()
    assert "spans" not in await result(raw, "plain")

    await enqueue_update(manager.client, upd("dl-root", 1), layout=LAYOUT)
    await run_burst(settings, provider, roots=True)
    spans = exporter.get_finished_spans()
    job = job_spans(spans)["update_progress"]
    assert job.parent is None  # a trace of its own
    assert {s.name for s in children(spans, job)} == {
        "seen.claim",
        "seen.progress.apply",
        "seen.finish",
    }
    assert all(s.context.trace_id == job.context.trace_id for s in spans)


GOOD_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
BAD = {
    "upper-case": {"traceparent": GOOD_PARENT.upper()},
    "version ff": {"traceparent": "ff" + GOOD_PARENT[2:]},
    "zero trace id": {"traceparent": f"00-{'0' * 32}-b7ad6b7169203331-01"},
    "no traceparent": {"tracestate": "a=b"},
    "not an object": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "a number": {"traceparent": 7},
}


async def test_an_invalid_trace_context_is_ignored_and_the_job_runs(
    server: TestServer, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    provider, exporter = memory_provider()
    for name, tc in BAD.items():
        await raw_enqueue(raw, f"bad-{name.replace(' ', '-')}", "ping", tc)
    await raw_enqueue(raw, "bad-state", "ping", {"traceparent": GOOD_PARENT, "tracestate": "=,"})
    await raw_enqueue(raw, "unknown", "no_such_function", {"traceparent": GOOD_PARENT})
    caplog.set_level(logging.DEBUG, logger="seen.worker.tracing")
    counts = await run_burst(fast_settings(server.addr), provider)
    assert (counts.complete, counts.failed) == (len(BAD) + 1, 1)
    for name in BAD:
        assert await result(raw, f"bad-{name.replace(' ', '-')}") == "pong"
    ignored = [r.getMessage() for r in caplog.records if r.name == "seen.worker.tracing"]
    # one line per record whose tc is an object with an unusable traceparent (a tc that is
    # no object of strings is no trace context at all: records.py drops it silently)
    assert len([m for m in ignored if "trace context ignored" in m]) == 4, ignored
    assert len([m for m in ignored if "tracestate ignored" in m]) == 1, ignored
    assert all(
        r.levelno == logging.DEBUG for r in caplog.records if r.name == "seen.worker.tracing"
    )
    jobs = [s for s in exporter.get_finished_spans() if s.name.startswith("seen.job ")]
    assert sorted(s.name for s in jobs) == ["seen.job <unknown>", "seen.job ping"]
    for span in jobs:  # the bad tracestate's parent is kept; so is the unknown function's
        assert span.parent is not None and f"{span.parent.trace_id:032x}" in GOOD_PARENT
    unknown = next(s for s in jobs if s.name == "seen.job <unknown>")
    assert (unknown.attributes or {})["seen.job.outcome"] == "failed"
    assert (unknown.attributes or {})["seen.job.function"] == "<unknown>"
    assert "no_such_function" not in texts(exporter.get_finished_spans())


async def test_each_try_is_a_job_span_and_a_timeout_is_a_failure(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    provider, exporter = memory_provider()
    with provider.get_tracer("a service").start_as_current_span("request") as request:
        await enqueue_job(manager.client, "retried_once", job_id="again", layout=LAYOUT)
        await enqueue_job(manager.client, "too_slow", job_id="slow", layout=LAYOUT)
    counts = await run_burst(fast_settings(server.addr), provider)
    assert (counts.complete, counts.retried, counts.failed) == (1, 1, 1)
    assert await result(raw, "again") == 2
    spans = in_trace(exporter.get_finished_spans(), request.get_span_context().trace_id)
    tries = sorted(
        (dict(s.attributes or {})["seen.job.try"], dict(s.attributes or {})["seen.job.outcome"])
        for s in named(spans, "seen.job retried_once")
    )
    assert tries == [(1, "retried"), (2, "complete")]  # one span per try, both in the trace
    slow = dict(named(spans, "seen.job too_slow")[0].attributes or {})
    assert (slow["seen.job.outcome"], slow["error.type"]) == ("failed", "TimeoutError")


async def test_an_unsampled_trace_is_carried_on_and_never_recorded(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    provider, exporter = memory_provider()
    unsampled = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(0))
    with use_span(NonRecordingSpan(unsampled)):
        await enqueue_job(manager.client, "current_span_id", job_id="unsampled", layout=LAYOUT)
    stored = json.loads(await raw.get(LAYOUT.for_job("unsampled").job("unsampled")) or "{}")
    assert stored["tc"] == {"traceparent": f"00-{0xABC:032x}-{0xDEF:016x}-00"}
    counts = await run_burst(fast_settings(server.addr), provider)
    assert (counts.complete, counts.failed) == (1, 0)
    assert exporter.get_finished_spans() == ()
    assert await result(raw, "unsampled") == f"{0xDEF:016x}"  # the producer's context is current
