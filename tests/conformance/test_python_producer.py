"""The shared conformance vectors against the Python producer side as it is today.

The functions checked are the ones a Python producer and the worker use: ``jobs.client``'s
record, ``ProgressUpdate`` validation, ``cache.keys`` (ids, shard function), the queue layouts
(``jobs.wire.layout``), the coalescing put's key and argument lists (``cache.download._calls``)
and the trace context rules (``jobs.wire.trace``). The Go and Node producers run the same files
(clients/go, clients/node). Where today's Python producer differs from the contract, the test
says so instead of passing quietly (see ``test_batch_limit_is_the_workers``).
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState, use_span
from pydantic import ValidationError

from cache.config import CacheConfig, DownloadSettings
from cache.download import ProgressUpdate, PublishOutcome, _calls, new_drain_id
from cache.download._layout import DownloadLayout
from cache.errors import InvalidKeyError
from cache.keys import KeyBuilder, shard_of, validate_name
from jobs.client import job_record
from jobs.progress import MAX_BATCH
from jobs.record import InvalidRecord, check_record
from jobs.serializer import deserialize
from jobs.wire.layout import QueueLayout
from jobs.wire.trace import (
    TRACE_FIELD,
    InvalidTraceContext,
    current_trace_context,
    trace_context,
)
from tests.conformance.vectors import load, names

pytestmark = pytest.mark.unit

SHARDS = load("shards")["vectors"]
QUEUE_KEYS = load("queue_keys")
JOB_IDS = load("job_ids")
UPDATES = load("updates")
BATCHES = load("batches")
RECORDS = load("records")
TRACES = load("trace_context")
PUTS = load("pending_put")


def error_fields(exc: ValidationError) -> set[str]:
    return {str(part) for err in exc.errors() for part in err.get("loc", ())}


@pytest.mark.parametrize("vector", SHARDS, ids=lambda v: f"{v['id']}/{v['shards']}")
def test_shard_function(vector: dict[str, Any]) -> None:
    assert zlib.crc32(vector["id"].encode("utf-8")) == vector["crc32"]
    assert shard_of(vector["id"], vector["shards"]) == vector["shard"]
    assert QueueLayout.sharded("q", vector["shards"]).shard_index(vector["id"]) == vector["shard"]


@pytest.mark.parametrize("vector", QUEUE_KEYS["layouts"], ids=lambda v: f"{v['layout']}-{v['id']}")
def test_queue_keys(vector: dict[str, Any]) -> None:
    layout = QueueLayout.of(vector["layout"], vector["name"], vector.get("shards", 1))
    job_id = validate_name(vector["id"], "job id")
    shard = layout.for_job(job_id)
    got = {
        "shard": shard.index,
        "queue": shard.queue,
        "abort": shard.abort,
        "job": shard.job(job_id),
        "in_progress": shard.in_progress(job_id),
        "retry": shard.retry(job_id),
        "result": shard.result(job_id),
    }
    assert got == vector["keys"]


@pytest.mark.parametrize("vector", QUEUE_KEYS["invalid"], ids=names(QUEUE_KEYS["invalid"]))
def test_invalid_layouts_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        QueueLayout.of(vector["layout"], vector["name"], vector.get("shards", 1))


@pytest.mark.parametrize("job_id", JOB_IDS["valid"])
def test_valid_job_ids(job_id: str) -> None:
    assert validate_name(job_id, "job id") == job_id


@pytest.mark.parametrize("vector", JOB_IDS["invalid"], ids=names(JOB_IDS["invalid"]))
def test_invalid_job_ids(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidKeyError):
        validate_name(vector["id"], "job id")


@pytest.mark.parametrize("vector", UPDATES["valid"], ids=names(UPDATES["valid"]))
def test_valid_updates_and_their_records(vector: dict[str, Any]) -> None:
    update = ProgressUpdate.model_validate(vector["input"]).model_dump(mode="json")
    assert update == vector["update"]
    assert list(update) == list(vector["update"])  # the field order every producer writes
    record = job_record("update_progress", [update], UPDATES["enqueue_ms"])
    assert record == vector["record"].encode("ascii")
    assert deserialize(record)["a"] == [vector["update"]]


@pytest.mark.parametrize("vector", UPDATES["invalid"], ids=names(UPDATES["invalid"]))
def test_invalid_updates_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        ProgressUpdate.model_validate(vector["input"])
    if vector["field"] is not None:
        assert vector["field"] in error_fields(caught.value)


@pytest.mark.parametrize(
    "vector", UPDATES["invalid_json_text"], ids=names(UPDATES["invalid_json_text"])
)
def test_invalid_update_json_text_is_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        ProgressUpdate.model_validate(json.loads(vector["text"]))
    assert vector["field"] in error_fields(caught.value)


def test_batch_record() -> None:
    vector = BATCHES["record"]
    record = job_record("update_progress_batch", [vector["updates"]], BATCHES["enqueue_ms"])
    assert record == vector["record"].encode("ascii")


def test_batch_limit_is_the_workers() -> None:
    """The worker fails a batch above ``MAX_BATCH``; Go and Node refuse one before writing.
    Today's ``jobs.client.enqueue_update_batch`` does not check the size itself: its owner
    adds that with the layout-aware enqueue (the vector is the contract it must meet)."""
    assert BATCHES["max_updates"] == MAX_BATCH
    assert max(BATCHES["sizes"]["accepted"]) == MAX_BATCH
    assert min(BATCHES["sizes"]["refused"]) == MAX_BATCH + 1


@pytest.mark.parametrize("vector", BATCHES["invalid"], ids=names(BATCHES["invalid"]))
def test_a_batch_with_one_bad_update_names_it(vector: dict[str, Any]) -> None:
    bad = vector["updates"][vector["index"]]
    with pytest.raises(ValidationError) as caught:
        ProgressUpdate.model_validate(bad)
    assert vector["field"] in error_fields(caught.value)
    for index, item in enumerate(vector["updates"][: vector["index"]]):
        ProgressUpdate.model_validate(item)  # the named index is the first bad one
        assert index < vector["index"]


@pytest.mark.parametrize("vector", RECORDS["valid"], ids=names(RECORDS["valid"]))
def test_records_are_exact_bytes(vector: dict[str, Any]) -> None:
    expected = vector["record"].encode("ascii")
    context = trace_context(vector.get("traceparent"), vector.get("tracestate"))
    # the Python producer attaches the current OpenTelemetry span as this context
    # (jobs.wire.trace.current_trace_context); the record's bytes are the same either way
    record = job_record(vector["function"], vector["args"], RECORDS["enqueue_ms"], trace=context)
    assert record == expected
    assert deserialize(expected)["f"] == vector["function"]  # the worker reads it
    assert deserialize(expected).get(TRACE_FIELD) == context


TRACED_RECORDS = [v for v in RECORDS["valid"] if "traceparent" in v]


@pytest.mark.parametrize("vector", TRACED_RECORDS, ids=names(TRACED_RECORDS))
def test_the_current_span_becomes_the_records_trace_context(vector: dict[str, Any]) -> None:
    """What ``enqueue_jobs`` attaches inside an OpenTelemetry span: the vector's bytes."""
    _, trace_id, span_id, flags = vector["traceparent"].split("-")
    state = vector.get("tracestate")
    span = NonRecordingSpan(
        SpanContext(
            int(trace_id, 16),
            int(span_id, 16),
            is_remote=False,
            trace_flags=TraceFlags(int(flags, 16)),
            trace_state=TraceState.from_header([state]) if state else None,
        )
    )
    assert current_trace_context() is None  # no span is current
    with use_span(span):
        context = current_trace_context()
    assert context == trace_context(vector["traceparent"], state)
    record = job_record(vector["function"], vector["args"], RECORDS["enqueue_ms"], trace=context)
    assert record == vector["record"].encode("ascii")


def test_a_tracestate_that_breaks_the_rules_is_dropped_by_the_producer() -> None:
    state = TraceState([("k", "v")])
    state._dict["Bad Key"] = "v"  # OpenTelemetry would not make it; a propagator might
    parent = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1), trace_state=state)
    with use_span(NonRecordingSpan(parent)):
        assert current_trace_context() == {"traceparent": f"00-{1:032x}-{2:016x}-01"}


@pytest.mark.parametrize("vector", RECORDS["invalid"], ids=names(RECORDS["invalid"]))
def test_invalid_records_are_refused_by_the_worker(vector: dict[str, Any]) -> None:
    record = {"t": None, "f": vector["function"], "a": vector["args"], "k": {}, "et": 1}
    with pytest.raises(InvalidRecord):
        check_record(record)


@pytest.mark.parametrize("vector", TRACES["valid"], ids=lambda v: str(v.get("tracestate", "-")))
def test_valid_trace_contexts(vector: dict[str, Any]) -> None:
    context = trace_context(vector["traceparent"], vector.get("tracestate"))
    assert context is not None and context["traceparent"] == vector["traceparent"]
    assert context.get("tracestate") == vector.get("tracestate")


@pytest.mark.parametrize("vector", TRACES["invalid"], ids=names(TRACES["invalid"]))
def test_invalid_trace_contexts(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidTraceContext):
        trace_context(vector["traceparent"], vector.get("tracestate"))


def download_layout(settings: dict[str, Any]) -> DownloadLayout:
    download = DownloadSettings(
        shards=settings["shards"],
        pending_lease=settings["pending_lease_ms"] / 1000,
        pending_ttl=settings["pending_ttl_ms"] // 1000,
    )
    return DownloadLayout(KeyBuilder(settings["namespace"]), CacheConfig(download=download))


def test_pending_put_defaults_are_the_settings() -> None:
    layout = download_layout(PUTS["defaults"])
    default = DownloadLayout(KeyBuilder(), CacheConfig())
    assert (layout.shards, layout.lease_ms, layout.pending_ttl_ms) == (
        default.shards,
        default.lease_ms,
        default.pending_ttl_ms,
    )


@pytest.mark.parametrize("vector", PUTS["vectors"], ids=lambda v: v["drain_id"])
def test_pending_put_keys_and_args(vector: dict[str, Any]) -> None:
    layout = download_layout(vector["settings"])
    update = ProgressUpdate.model_validate(vector["update"])
    assert layout.shard(update.job_id) == vector["shard"]
    keys, args = _calls.pending_put(
        layout, update, vector["shard"], vector["drain_id"], vector["now_ms"]
    )
    assert list(keys) == vector["keys"]
    assert [str(a) for a in args] == vector["args"]
    assert re.fullmatch(PUTS["drain_id_pattern"], vector["drain_id"])


@pytest.mark.parametrize("shard", [0, 9, 1023])
def test_drain_ids_match_the_pattern(shard: int) -> None:
    match = re.fullmatch(PUTS["drain_id_pattern"], new_drain_id(shard))
    assert match is not None and int(match.group(1)) == shard


def test_publish_outcome_codes() -> None:
    assert {str(o.value): o.name.lower() for o in PublishOutcome} == PUTS["outcomes"]
    assert sorted(o.value for o in PublishOutcome if o.needs_enqueue) == PUTS["enqueue_drain_on"]


@pytest.mark.parametrize(
    "vector", PUTS["download_keys"], ids=lambda v: f"{v['namespace']}-{v['job_id']}"
)
def test_download_keys(vector: dict[str, Any]) -> None:
    keys, shard = KeyBuilder(vector["namespace"]), vector["shard"]
    assert shard_of(vector["job_id"], vector["shards"]) == shard
    got = {
        "progress": keys.download_progress(vector["job_id"], shard),
        "pending": keys.download_pending(vector["job_id"], shard),
        "pending_set": keys.download_pending_set(shard),
        "drain": keys.download_drain(shard),
        "stats": keys.download_stats(shard),
        "events": keys.download_events(shard),
        "active": keys.download_active(shard),
        "user_index": keys.download_user_index(vector["user_id"], shard),
    }
    assert got == {k: vector[k] for k in got}
