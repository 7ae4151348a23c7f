"""``/metrics``, ``/livez``, ``/readyz`` of a real ``seen-worker run`` process.

The exposition is read with ``prometheus_client``'s own parsers (Prometheus text and
OpenMetrics), so names, types and labels are checked as Prometheus would read them; the values
are what the known work enqueued here must produce.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import Fleet, WorkerProcess, queue_pool
from tests.support.updates import upd
from tests.support.waiting import wait_until
from worker.embedded import EmbeddedServer, free_port

pytestmark = pytest.mark.integration

FUNCTIONS = ("ping", "update_progress", "update_progress_batch", "cleanup_stale_progress")


def get(
    port: int, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], str]:
    url = f"http://127.0.0.1:{port}{path}"  # always http on loopback
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def families(text: str, parse: Any = text_string_to_metric_families) -> dict[str, Metric]:
    return {f.name: f for f in parse(text)}


def value(family: Metric, suffix: str = "", **labels: str) -> float:
    """The one sample of ``family`` named ``family.name + suffix`` with exactly ``labels``."""
    found = [
        s.value
        for s in family.samples
        if s.name == family.name + suffix
        and {k: v for k, v in s.labels.items() if k != "le"} == labels
        and (suffix != "_bucket" or s.labels.get("le") == "+Inf")
    ]
    assert len(found) == 1, (family.name, suffix, labels, family.samples)
    return found[0]


def scrape(port: int) -> dict[str, Metric]:
    status, headers, body = get(port, "/metrics")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return families(body)


async def started(worker: WorkerProcess, port: int, within: float = 20.0) -> None:
    async def ready() -> bool:
        assert worker.running, worker.log()
        try:
            return get(port, "/readyz")[0] == 200
        except OSError:
            return False

    await wait_until(ready, within, "the worker's /readyz")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def fleet(private_server: EmbeddedServer, tmp_path: Path, port: int) -> Iterator[Fleet]:
    with Fleet(tmp_path, private_server.addr, http={"addr": f"127.0.0.1:{port}"}) as fleet:
        yield fleet


async def test_series_exist_at_zero_then_count_known_work(
    fleet: Fleet, private_server: EmbeddedServer, port: int
) -> None:
    (worker,) = fleet.start(1)
    await started(worker, port)
    before = scrape(port)
    assert before["seen_jobs"].type == "counter"
    assert before["seen_job_duration_seconds"].type == "histogram"
    assert before["seen_job_queue_wait_seconds"].type == "histogram"
    assert before["seen_jobs_in_progress"].type == "gauge"
    for function in FUNCTIONS:
        for outcome in ("complete", "failed", "retried", "cancelled", "stale"):
            assert value(before["seen_jobs"], "_total", function=function, outcome=outcome) == 0
        assert value(before["seen_job_duration_seconds"], "_count", function=function) == 0
        assert value(before["seen_jobs_in_progress"], function=function) == 0
    for outcome in ("applied", "stale", "duplicate", "final", "rejected"):
        assert value(before["seen_progress_updates"], "_total", outcome=outcome) == 0
    for store in ("queue", "cache"):
        assert value(before["seen_store_outages"], "_total", store=store) == 0
    assert value(before["seen_job_leases_lost"], "_total") == 0
    assert value(before["seen_poll_errors"], "_total") == 0
    (info,) = before["seen_build_info"].samples
    assert info.value == 1 and set(info.labels) == {"version", "python"}
    label_names = {k for f in before.values() for s in f.samples for k in s.labels}
    assert label_names <= {"function", "outcome", "store", "le", "version", "python"} | {
        "kind",
        "result",
        "limiter",
        "decision",
        "cron",
    }

    pool = queue_pool(private_server.addr)
    try:
        for _ in range(3):
            await pool.enqueue_job("ping")
        first = upd("dl-1", 1).model_dump(mode="json")
        await pool.enqueue_job("update_progress", first)
        await asyncio.sleep(0.3)  # applied before its duplicate
        await pool.enqueue_job("update_progress", first)
        await pool.enqueue_job("update_progress", {"job_id": "dl-2", "seq": "not a number"})

        async def counted() -> bool:
            jobs = scrape(port)["seen_jobs"]
            return sum(s.value for s in jobs.samples if s.name == "seen_jobs_total") >= 6

        await wait_until(counted, 20, "six jobs counted")
    finally:
        await pool.aclose()
    after = scrape(port)
    jobs = after["seen_jobs"]
    assert value(jobs, "_total", function="ping", outcome="complete") == 3
    assert value(jobs, "_total", function="update_progress", outcome="complete") == 2
    assert value(jobs, "_total", function="update_progress", outcome="failed") == 1
    assert sum(s.value for s in jobs.samples if s.name == "seen_jobs_total") == 6
    duration = after["seen_job_duration_seconds"]
    assert value(duration, "_count", function="ping") == 3
    assert value(duration, "_count", function="update_progress") == 3
    assert value(duration, "_bucket", function="ping") == 3  # le="+Inf"
    buckets = {s.labels["le"] for s in duration.samples if s.name.endswith("_bucket")}
    assert "600.0" in buckets
    assert value(after["seen_job_queue_wait_seconds"], "_count", function="ping") == 3
    assert value(after["seen_jobs_in_progress"], function="ping") == 0
    progress = after["seen_progress_updates"]
    assert value(progress, "_total", outcome="applied") == 1
    assert value(progress, "_total", outcome="duplicate") == 1

    status, headers, body = get(port, "/metrics", Accept="application/openmetrics-text")
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    om = families(body, openmetrics_families)
    assert om["seen_jobs"].type == "counter"
    assert value(om["seen_jobs"], "_total", function="ping", outcome="complete") == 3
    assert om["seen_job_duration_seconds"].type == "histogram"


async def test_health_routes_and_readiness_on_store_loss(
    fleet: Fleet, private_server: EmbeddedServer, port: int
) -> None:
    (worker,) = fleet.start(1)
    await started(worker, port)
    assert get(port, "/livez")[0] == 200
    status, _, body = get(port, "/readyz")
    assert (status, json.loads(body)) == (200, {"ready": True})
    assert get(port, "/nope")[0] == 404
    status, headers, _ = get(port, "/metrics", method="POST")
    assert (status, headers["Allow"]) == (405, "GET")

    private_server.stop()

    async def unready() -> bool:
        return get(port, "/readyz")[0] == 503

    await wait_until(unready, 10, "/readyz 503 without the store")
    status, _, body = get(port, "/readyz")
    assert json.loads(body)["ready"] is False and json.loads(body)["reason"]
    assert get(port, "/livez")[0] == 200  # alive, only not ready
    found = scrape(port)
    outages = value(found["seen_store_outages"], "_total", store="queue")
    assert outages >= 1
    errors = found["seen_store_errors"]  # every failed attempt of the outage, by kind
    assert value(errors, "_total", store="queue", kind="connection") >= outages
    assert value(errors, "_total", store="queue", kind="oom") == 0


async def test_readyz_fails_while_stopping(
    fleet: Fleet, private_server: EmbeddedServer, port: int
) -> None:
    """SIGTERM while the store is frozen: the last beat's bounded attempt keeps the worker in
    "stopping" long enough to be seen, and the reason says so."""
    (worker,) = fleet.start(1)
    await started(worker, port)
    pid = private_server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        worker.signal(signal.SIGTERM)
        await wait_until(stopping_seen(port), 10, "/readyz 503 while stopping", interval=0.01)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert worker.wait(15) == 0


def stopping_seen(port: int) -> Any:

    async def stopping() -> bool:
        try:
            status, _, body = get(port, "/readyz")
        except OSError:
            return False
        return status == 503 and "stopping" in json.loads(body)["reason"]

    return stopping


async def test_metrics_token(private_server: EmbeddedServer, tmp_path: Path, port: int) -> None:
    token = "s3cret-token-of-the-test"
    with Fleet(tmp_path, private_server.addr, http={"addr": f"127.0.0.1:{port}"}) as fleet:
        (worker,) = fleet.start(1, SEEN_HTTP_METRICS_TOKEN=token)
        await started(worker, port)
        assert get(port, "/metrics")[0] == 401
        assert get(port, "/metrics", Authorization="Bearer wrong")[0] == 401
        assert get(port, "/metrics", Authorization=f"Basic {token}")[0] == 401
        status, _, body = get(port, "/metrics", Authorization=f"Bearer {token}")
        assert status == 200 and "seen_jobs_total" in body
        assert get(port, "/livez")[0] == 200
        assert "is not a loopback address" not in worker.log()


async def test_open_bind_without_token_warns(
    private_server: EmbeddedServer, tmp_path: Path, port: int
) -> None:
    with Fleet(tmp_path, private_server.addr, http={"addr": f"0.0.0.0:{port}"}) as fleet:
        (worker,) = fleet.start(1)
        await started(worker, port)
        lines = [line for line in worker.log().splitlines() if "loopback" in line]
        assert len(lines) == 1, worker.log()
        assert "WARNING" in lines[0] and "http.metrics_token" in lines[0]
        assert "SEEN_HTTP_METRICS_TOKEN" in lines[0]
