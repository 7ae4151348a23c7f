"""What tracing costs the engine per job (issue 23.4): drains of no-op jobs by ``SeenWorker``
in-process, same server, same run, the variants interleaved round by round.

- ``off``: tracing off (``tracing=None``, the default), records without ``tc``;
- ``off_tc``: tracing off, every record carrying a ``tc`` (what a traced producer writes);
- ``on_untraced``: tracing on (``JobSpans`` over an SDK provider), records without ``tc``:
  the hooks' own cost for jobs nobody traces;
- ``on_unsampled``: tracing on, every record's ``tc`` unsampled (flags ``00``): non-recording
  spans only;
- ``on_traced``: tracing on, every record's ``tc`` sampled: every job makes its job, claim and
  finish spans, handed to a batch processor whose exporter drops them (the network is not
  measured; the processor's queue is large enough that no span is dropped unprocessed).

Medians of ``ROUNDS`` drains per variant with their range; the ratios are per-job times
against ``off`` in the same run. The figure compared is the worker process's CPU time per job
(``time.process_time``: what tracing adds to the work the process does); wall time per job,
which other processes on a shared machine move a lot, is kept in the notes.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

from arq.worker import func
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from redis.asyncio import Redis

from bench.common import BenchEnv, BenchResult
from worker.app import SeenWorker
from worker.engine.job_spans import JobSpans
from worker.settings import Settings, load_settings

ROUNDS = 5
MAX_JOBS = 200
POLL_DELAY = 0.01
"""The in-process drain's settings since this bench was written (docs/tracing.md cites it): the
figure is a ratio between variants of the same drain, not the engine's speed at its defaults
(that is bench_worker's)."""


async def noop(ctx: dict[str, Any]) -> None:
    return None


def bench_settings(addr: str, queue: str) -> Settings:
    return load_settings(
        None,
        cache={"addr": addr},
        queue={"name": queue},
        worker={"max_jobs": MAX_JOBS, "poll_delay": POLL_DELAY},
        http={"enabled": False},
        maintenance={
            "cleanup_every": 0,
            "stats_every": 0,
            "warmup_every": 0,
            "warmup_at_startup": False,
        },
    )


SAMPLED = "00-{trace}-00f067aa0ba902b7-01"
UNSAMPLED = "00-{trace}-00f067aa0ba902b7-00"


class DropExporter(SpanExporter):
    """Takes every span and sends it nowhere (the export's network cost is not measured)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


async def _enqueue(client: Redis, queue: str, jobs: int, traceparent: str | None) -> None:
    now = int(time.time() * 1000)
    for offset in range(0, jobs, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(min(1000, jobs - offset)):
                job_id = uuid.uuid4().hex
                record: dict[str, Any] = {"t": None, "f": "noop", "a": [], "k": {}, "et": now}
                if traceparent is not None:
                    record["tc"] = {"traceparent": traceparent.format(trace=uuid.uuid4().hex)}
                pipe.set(f"arq:job:{job_id}", json.dumps(record), px=86_400_000)
                pipe.zadd(queue, {job_id: now})
            await pipe.execute()


async def _drain(env: BenchEnv, variant: str, jobs: int, round_: int) -> tuple[float, float, int]:
    """(CPU microseconds per job, wall microseconds per job, spans exported) of one drain."""
    queue = f"bench:q:tracing:{variant}:{round_}"
    settings = bench_settings(env.addr, queue)
    traceparent = {"off_tc": SAMPLED, "on_unsampled": UNSAMPLED, "on_traced": SAMPLED}
    raw = Redis.from_url(env.url)
    provider: TracerProvider | None = None
    exporter = DropExporter()
    try:
        await raw.flushdb()
        await _enqueue(raw, queue, jobs, traceparent.get(variant))
        tracing = None
        if variant.startswith("on_"):
            provider = TracerProvider(shutdown_on_exit=False)
            provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=8 * jobs))
            tracing = JobSpans(provider, queue=queue)
        worker = SeenWorker(
            settings,
            extra_functions=[func(noop, name="noop")],
            burst=True,
            cron=False,
            tracing=tracing,
        )
        start, cpu = time.perf_counter(), time.process_time()
        await worker.run()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert await raw.zcard(queue) == 0, "the drain left jobs behind"
        if provider is not None:
            provider.shutdown()  # every span handed over was exported (to nowhere)
        return cpu / jobs * 1e6, elapsed / jobs * 1e6, exporter.spans
    finally:
        await raw.aclose()


VARIANTS = ("off", "off_tc", "on_untraced", "on_unsampled", "on_traced")


async def run(env: BenchEnv) -> list[BenchResult]:
    jobs = env.scale(10_000, 2000)
    per_job: dict[str, list[float]] = {v: [] for v in VARIANTS}
    wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
    spans: dict[str, list[int]] = {v: [] for v in VARIANTS}
    for round_ in range(ROUNDS):
        for variant in VARIANTS:
            cpu_us, wall_us, exported = await _drain(env, variant, jobs, round_)
            per_job[variant].append(round(cpu_us, 1))
            wall[variant].append(round(wall_us, 1))
            spans[variant].append(exported)
    await Redis.from_url(env.url).flushdb()
    median = {v: statistics.median(s) for v, s in per_job.items()}
    off = median["off"]
    return [
        BenchResult(
            name="worker.tracing_cost_per_job",
            metrics={
                **{f"{v}_cpu_us_per_job": round(median[v], 1) for v in VARIANTS},
                "jobs": jobs,
            },
            baseline="tracing off, records without tc (median CPU time per job, same run)",
            ratio=round(median["on_untraced"] / off, 3),
            ratio_meaning="tracing on for jobs that carry no trace / tracing off (~1 = free)",
            target="off_tc and on_untraced within noise of off; on_traced is the price of "
            "three spans per job",
            notes={
                "runs_cpu_us_per_job": per_job,
                "ranges_cpu_us_per_job": {v: [min(s), max(s)] for v, s in per_job.items()},
                "runs_wall_us_per_job": wall,
                "median_wall_us_per_job": {v: statistics.median(s) for v, s in wall.items()},
                "ratios_to_off": {v: round(median[v] / off, 3) for v in VARIANTS},
                "spans_exported_per_run": spans,
                "rounds": ROUNDS,
            },
        )
    ]
