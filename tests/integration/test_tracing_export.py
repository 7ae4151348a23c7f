"""``seen-worker run`` with ``[otel]`` on: its spans leave the process over OTLP/HTTP, as they
would to a collector (a receiver in the test, ``tests.support.otlp``); what is buffered at a
stop is sent on the way out, and a collector that is away never holds the stop up. Without
OpenTelemetry installed, a worker runs traced records as any other.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from cache.manager import CacheManager
from jobs.client import enqueue_job, enqueue_update
from tests.conftest import TestServer
from tests.support.otlp import OtlpReceiver
from tests.support.processes import ROOT, Fleet
from tests.support.tracing import memory_provider
from tests.support.updates import upd
from tests.support.waiting import fresh_beats, wait_until
from worker.embedded import free_port

CONSUMER, CLIENT = 5, 3


async def started(fleet: Fleet, raw: Redis, **env: str) -> None:
    fleet.start(1, **env)

    async def beating() -> bool:
        return len(await fresh_beats(raw, within=5.0)) == 1

    await wait_until(beating, 60, "the worker's first heartbeat")


async def job_done(raw: Redis, job_id: str) -> None:
    async def done() -> bool:
        return bool(await raw.exists(f"arq:result:{job_id}"))

    await wait_until(done, 30, f"job {job_id}'s result")


@pytest.mark.timeout(120)
async def test_spans_buffered_at_a_stop_reach_the_collector(
    tmp_path: Path, server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    provider, _ = memory_provider()
    with OtlpReceiver() as otlp:
        otel = {"enabled": True, "endpoint": otlp.url}
        with Fleet(tmp_path, server.url, otel=otel) as fleet:
            # nothing is sent on the schedule within this test: only the stop sends
            await started(
                fleet,
                raw,
                OTEL_BSP_SCHEDULE_DELAY="600000",
                OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
            )
            with provider.get_tracer("api").start_as_current_span("upload") as upload:
                job_id = await enqueue_job(manager.client, "ping", job_id="traced-ping")
                await enqueue_update(manager.client, upd("dl-export", 5))
            assert job_id is not None
            await job_done(raw, job_id)
            assert otlp.spans() == []
            began = time.monotonic()
            fleet.workers[0].signal(signal.SIGTERM)
            assert fleet.workers[0].wait(15) == 0
            assert time.monotonic() - began < 10
        trace_id = f"{upload.get_span_context().trace_id:032x}"
        spans = otlp.spans(trace_id)
        jobs = {s.name: s for s in spans if s.kind == CONSUMER}
        assert set(jobs) == {"seen.job ping", "seen.job update_progress"}, fleet.logs()
        parent = f"{upload.get_span_context().span_id:016x}"
        assert all(job.parent_span_id == parent for job in jobs.values())
        apply = [s for s in spans if s.kind == CLIENT]
        assert [s.name for s in apply] == ["seen.progress.apply"]
        assert apply[0].parent_span_id == jobs["seen.job update_progress"].span_id
        resource = jobs["seen.job ping"].resource
        assert resource["service.name"] == "seen-worker"
        assert resource["deployment.environment"] == "test"  # OTEL_* variables apply
        assert "tracing on: spans to http://127.0.0.1:" in fleet.logs()


@pytest.mark.timeout(120)
async def test_a_collector_that_is_away_never_holds_the_stop_up(
    tmp_path: Path, server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    provider, _ = memory_provider()
    nowhere = f"http://127.0.0.1:{free_port()}/v1/traces"  # nothing listens there
    with Fleet(tmp_path, server.url, otel={"enabled": True, "endpoint": nowhere}) as fleet:
        await started(fleet, raw, OTEL_BSP_SCHEDULE_DELAY="600000")
        with provider.get_tracer("api").start_as_current_span("upload"):
            job_id = await enqueue_job(manager.client, "ping", job_id="lost-spans")
        assert job_id is not None
        await job_done(raw, job_id)
        began = time.monotonic()
        fleet.workers[0].signal(signal.SIGTERM)
        assert fleet.workers[0].wait(15) == 0
        took = time.monotonic() - began
        logs = fleet.logs()
    assert took < 8, f"the stop took {took:.1f}s"
    assert "tracing: spans not sent within 2.0s of the stop are dropped" in logs
    assert await raw.get("arq:result:lost-spans") is not None


WITHOUT_OPENTELEMETRY = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # the worker extra without the otel extra
from worker.app import SeenWorker
from worker.settings import load_settings

settings = load_settings(
    cache={"addr": sys.argv[1]},
    http={"enabled": False},
    maintenance={"warmup_at_startup": False, "repair_every": 0, "cleanup_every": 0,
                 "stats_every": 0, "warmup_every": 0},
    worker={"poll_delay": 0.01},
)
worker = SeenWorker(settings, burst=True, cron=False)
asyncio.run(worker.run())
counts = worker.engine.counts
loaded = sorted(m for m, mod in sys.modules.items() if m.startswith("opentelemetry") and mod)
print("counts", counts.complete, counts.failed, "tracing", worker.tracing, "loaded", loaded)
"""


@pytest.mark.timeout(60)
async def test_without_opentelemetry_a_traced_record_runs(
    server: TestServer, manager: CacheManager, raw: Redis
) -> None:
    provider, _ = memory_provider()
    with provider.get_tracer("api").start_as_current_span("upload"):
        await enqueue_job(manager.client, "ping", job_id="traced-no-otel")
    assert '"tc":' in str(await raw.get("arq:job:traced-no-otel"))
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", WITHOUT_OPENTELEMETRY, server.addr],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "counts 1 0 tracing None loaded []"
    assert await raw.get("arq:result:traced-no-otel") is not None
