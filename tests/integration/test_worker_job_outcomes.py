"""Job outcomes other than complete/failed, counted by a real ``seen-worker run`` process:
``retried`` (a job raising ARQ's ``Retry``), ``cancelled`` (``Job.abort()``) and ``stale`` (a
job whose lease was taken over), plus the store errors behind a retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric
from redis.asyncio import Redis

from tests.integration.test_worker_metrics import scrape, started, value
from tests.support.layout import lease_key
from tests.support.processes import Fleet, queue_pool
from tests.support.sources import SLOW_EVENTS
from tests.support.updates import upd
from tests.support.waiting import items, wait_until
from worker.embedded import EmbeddedServer, free_port

pytestmark = pytest.mark.integration

SLOW: dict[str, Any] = {"callables": ["tests.support.sources:slow_source"]}


@pytest.fixture
def port() -> int:
    return free_port()


def jobs_total(port: int) -> float:
    return sum(s.value for s in scrape(port)["seen_jobs"].samples if s.name == "seen_jobs_total")


async def test_retried_jobs_and_the_store_errors_behind_them(
    private_server: EmbeddedServer, tmp_path: Path, port: int
) -> None:
    """The cache store (a second server) refuses writes (maxmemory reached): the update's
    job retries with ARQ's ``Retry``, once per out-of-memory error, until memory is back."""
    with EmbeddedServer() as cache_server:
        full = Redis.from_url(cache_server.url)
        pool = queue_pool(private_server.addr)
        sections: dict[str, Any] = {
            "http": {"addr": f"127.0.0.1:{port}"},
            "queue": {"addr": private_server.addr},
        }
        try:
            with Fleet(tmp_path, cache_server.addr, **sections) as fleet:
                (worker,) = fleet.start(1)
                await started(worker, port)
                await full.config_set("maxmemory", 1)
                update = upd("dl-oom", 1).model_dump(mode="json")
                job = await pool.enqueue_job("update_progress", update)
                assert job is not None

                def count(**labels: str) -> float:
                    return value(scrape(port)["seen_jobs"], "_total", **labels)

                async def retried() -> bool:
                    return count(function="update_progress", outcome="retried") >= 1

                await wait_until(retried, 15, "a retry")
                await full.config_set("maxmemory", 0)
                assert await job.result(timeout=15, poll_delay=0.05) == "applied"
                found = scrape(port)
        finally:
            await pool.aclose()
            await full.aclose()
    jobs = found["seen_jobs"]
    retries = value(jobs, "_total", function="update_progress", outcome="retried")
    assert retries >= 1
    assert value(jobs, "_total", function="update_progress", outcome="complete") == 1
    assert value(jobs, "_total", function="update_progress", outcome="failed") == 0
    errors = found["seen_store_errors"]
    assert value(errors, "_total", store="cache", kind="oom") == retries  # one per retry
    for kind in ("timeout", "connection", "readonly", "response", "other"):
        assert value(errors, "_total", store="cache", kind=kind) == 0
    assert value(found["seen_progress_updates"], "_total", outcome="applied") == 1


@pytest.mark.timeout(90)
async def test_an_aborted_job_is_cancelled_and_a_taken_over_job_is_stale(
    private_server: EmbeddedServer, tmp_path: Path, port: int
) -> None:
    raw = Redis.from_url(private_server.url, decode_responses=True)
    pool = queue_pool(private_server.addr)
    sections: dict[str, Any] = {"http": {"addr": f"127.0.0.1:{port}"}, "warmup": SLOW}
    try:
        with Fleet(tmp_path, private_server.addr, **sections) as fleet:
            (worker,) = fleet.start(1, SEEN_TEST_SLOW_SECONDS="30")
            await started(worker, port)

            async def running(count: int) -> None:
                async def check() -> bool:
                    starts = [e for e in await items(raw, SLOW_EVENTS) if e.startswith("start")]
                    return len(starts) >= count

                await wait_until(check, 15, f"{count} slow run(s) to start")

            aborted = await pool.enqueue_job("warmup_cache", _job_id="abort-me")
            assert aborted is not None
            await running(1)
            assert await aborted.abort(timeout=15) is True  # ended cancelled

            async def one_ended() -> bool:
                return jobs_total(port) >= 1

            await wait_until(one_ended, 15, "the aborted job to end")
            stolen = await pool.enqueue_job("warmup_cache", _job_id="steal-me")
            assert stolen is not None
            await running(2)
            await raw.set(lease_key("steal-me"), "another-worker:run", px=60_000)

            async def two_ended() -> bool:
                return jobs_total(port) >= 2

            await wait_until(two_ended, 15, "the taken-over job to end")
            found = scrape(port)
            log = worker.log()
    finally:
        await pool.aclose()
        await raw.aclose()
    jobs = found["seen_jobs"]
    assert value(jobs, "_total", function="warmup_cache", outcome="cancelled") == 1, log
    assert value(jobs, "_total", function="warmup_cache", outcome="stale") == 1, log
    for outcome in ("complete", "failed", "retried"):
        assert value(jobs, "_total", function="warmup_cache", outcome=outcome) == 0, log
    assert jobs_total_of(found) == 2
    assert value(found["seen_job_leases_lost"], "_total") == 1
    assert value(found["seen_job_duration_seconds"], "_count", function="warmup_cache") == 2
    assert value(found["seen_jobs_in_progress"], function="warmup_cache") == 0


def jobs_total_of(found: dict[str, Metric]) -> float:
    return float(sum(s.value for s in found["seen_jobs"].samples if s.name == "seen_jobs_total"))
