"""What the Go and Node end-to-end wrappers share: the layouts they run on, the worker they
run against, the download states both producers' tests must leave behind (read with
the Python CacheManager: a cross-language check of what the other producer wrote), and the
spans the worker must export for the trace the producer started (issue 23.4).

The worker is a real ``seen-worker run`` process with ``[otel]`` on, exporting over OTLP/HTTP
to a receiver in the test (``tests.support.otlp``), as it would to a collector: the trace id
comes from the Go or Node producer (``SEEN_TEST_TRACEPARENT``, fresh per run), crosses the
store in the job record and comes back in the spans the worker process sent."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from cache.download import DownloadStatus
from cache.manager import CacheManager
from tests.conformance.toolchain import SHARDS, SPARE_DB
from tests.conftest import TestServer
from tests.support.otlp import OtlpReceiver
from tests.support.processes import Fleet
from tests.support.waiting import fresh_beats, wait_until

LAYOUTS = [pytest.param("arq", id="arq"), pytest.param("sharded", id="sharded")]

EXPECTED = {
    # download id suffix: (user, status, seq) the producer's end-to-end test leaves
    "dl-single": ("u1", DownloadStatus.DOWNLOADING, 4),
    "dl-batch-1": ("u1", DownloadStatus.DOWNLOADING, 2),
    "dl-batch-2": ("u1", DownloadStatus.COMPLETED, 9),
    "dl-coalesced": ("u1", DownloadStatus.COMPLETED, 8),
}


async def clean_spare_db(server: TestServer) -> None:
    client = Redis.from_url(server.url, db=SPARE_DB)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@asynccontextmanager
async def started_fleet(
    tmp_path: Any, server: TestServer, raw: Redis, layout: str, otlp: OtlpReceiver
) -> AsyncIterator[Fleet]:
    """One ``seen-worker run`` on ``layout``, heartbeating before the producer starts,
    exporting its spans to ``otlp`` (every 50 ms instead of OpenTelemetry's 5 s)."""
    with Fleet(
        Path(str(tmp_path)),
        server.url,
        queue={"layout": layout, "shards": SHARDS},
        otel={"enabled": True, "endpoint": otlp.url},
    ) as fleet:
        fleet.start(1, OTEL_BSP_SCHEDULE_DELAY="50")

        async def beating() -> bool:
            return len(await fresh_beats(raw, within=5.0)) == 1

        await wait_until(beating, 60, "the worker's first heartbeat")
        yield fleet


async def check_downloads(manager: CacheManager, prefix: str) -> None:
    for suffix, (user, status, seq) in EXPECTED.items():
        got = await manager.download.get_progress(f"{prefix}-{suffix}")
        assert got is not None, f"{prefix}-{suffix} was never applied"
        assert (got.user_id, got.status, got.seq) == (user, status, seq), suffix


def new_traceparent() -> tuple[str, str, str]:
    """(traceparent, trace id, parent span id) of a fresh sampled trace for one run."""
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{parent}-01", trace_id, parent


TRACED = {
    # the producers' end-to-end tests enqueue these with SEEN_TEST_TRACEPARENT
    "ping": set(),
    "update_progress": {"seen.progress.apply"},
}
JOB_KEYS = {
    "seen.job.function",
    "seen.queue",
    "seen.queue.shard",
    "seen.job.try",
    "seen.job.outcome",
}


async def check_worker_spans(otlp: OtlpReceiver, trace_id: str, parent: str, prefix: str) -> None:
    """The worker process exported, under the producer's trace id, a job span per traced job
    (a child of the producer's span) with its claim, finish and store-write children, and
    bounded attributes only."""

    async def exported() -> bool:  # a job span ends after its children: they came before
        functions = [s.attributes.get("seen.job.function") for s in otlp.spans(trace_id)]
        return all(f in functions for f in TRACED)

    await wait_until(exported, 30, f"the worker's spans of trace {trace_id} over OTLP")
    spans = otlp.spans(trace_id)
    jobs = {str(s.attributes["seen.job.function"]): s for s in spans if s.kind == CONSUMER}
    assert set(jobs) == set(TRACED), [s.name for s in spans]
    for function, job in jobs.items():
        assert job.name == f"seen.job {function}" and job.parent_span_id == parent
        assert set(job.attributes) == JOB_KEYS and job.attributes["seen.job.outcome"] == "complete"
        assert job.resource["service.name"] == "seen-worker" and job.scope == "seen-worker"
        assert job.resource["service.instance.id"]
        below = sorted(s.name for s in spans if s.parent_span_id == job.span_id)
        assert below == sorted({"seen.claim", "seen.finish"} | TRACED[function]), function
    text = repr([(s.name, s.attributes, s.events) for s in spans])
    assert prefix not in text and "u1" not in text  # no ids, no payloads


CONSUMER = 5
"""``SPAN_KIND_CONSUMER`` in OTLP."""
