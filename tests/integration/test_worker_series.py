"""The per-worker series beyond jobs: cache reads, locks, rate limits, store errors, cron runs
and coalescing, scraped from a real ``seen-worker run`` process after known work.

Each family is read with ``prometheus_client``'s Prometheus text parser and its OpenMetrics
parser: names, types, every label combination at zero before the work, exact values after it.
The known work runs inside the worker (``tests.support.sources.metered_source`` as a warmup
source; a producer's coalesced publishes; scheduled runs whose history the store keeps).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from redis.asyncio import Redis

from cache.coordination import DECISIONS, LIMITERS
from cache.counts import CACHE_KINDS, READ_RESULTS
from cache.errors import STORE_ERROR_KINDS
from cache.keys import KeyBuilder
from cache.manager import CacheManager
from jobs.client import ProgressPublisher
from tests.integration.test_worker_metrics import families, get, scrape, started, value
from tests.support.processes import Fleet, queue_pool
from tests.support.updates import upd
from tests.support.waiting import items, wait_until
from worker.embedded import EmbeddedServer, free_port
from worker.http.series import (
    CRON_OUTCOMES,
    JOB_OUTCOMES,
    LOCK_RESULTS,
    PROGRESS_OUTCOMES,
    PUBLISH_OUTCOMES,
    STORES,
)

pytestmark = pytest.mark.integration

METERED: dict[str, Any] = {"callables": ["tests.support.sources:metered_source"]}
NEW_COUNTERS = (
    "seen_cache_requests",
    "seen_lock_acquisitions",
    "seen_rate_limit_decisions",
    "seen_store_errors",
    "seen_cron_runs",
    "seen_progress_drain_jobs",
    "seen_progress_drained_updates",
    "seen_progress_publishes",
)
METERED_READS = {
    ("session", "hit"): 1,
    ("session", "miss"): 1,
    ("session", "stale"): 1,
    ("session", "error"): 1,
    ("refresh_token", "hit"): 1,
    ("refresh_token", "miss"): 1,
    ("profile", "hit"): 1,
    ("profile", "miss"): 1,
    ("download_list", "miss"): 1,
    ("dashboard", "miss"): 1,
    ("dashboard", "hit"): 1,
    ("discover", "stale"): 1,
}
METERED_LOCKS = {"acquired": 1, "busy": 2, "timeout": 1, "error": 0, "lost": 0}
METERED_LIMITS = {("gcra", "allowed"): 1, ("gcra", "limited"): 1}
METERED_LIMITS |= {("fixed", "allowed"): 1, ("fixed", "limited"): 2}


@pytest.fixture
def port() -> int:
    return free_port()


def http(port: int) -> dict[str, Any]:
    return {"addr": f"127.0.0.1:{port}"}


def check_new_families(found: dict[str, Metric], crons: tuple[str, ...], runs: int) -> None:
    """Every new family with every label combination; values ``runs`` x the metered work."""
    for name in NEW_COUNTERS:
        assert found[name].type == "counter", name
    reads = found["seen_cache_requests"]
    for kind in CACHE_KINDS:
        for result in READ_RESULTS:
            expected = runs * METERED_READS.get((kind, result), 0)
            assert value(reads, "_total", kind=kind, result=result) == expected, (kind, result)
    locks = found["seen_lock_acquisitions"]
    for result in LOCK_RESULTS:
        assert value(locks, "_total", result=result) == runs * METERED_LOCKS[result]
    limits = found["seen_rate_limit_decisions"]
    for limiter in LIMITERS:
        for decision in DECISIONS:
            expected = runs * METERED_LIMITS[limiter, decision]
            assert value(limits, "_total", limiter=limiter, decision=decision) == expected
    errors = found["seen_store_errors"]
    for store in STORES:
        for kind in STORE_ERROR_KINDS:
            assert value(errors, "_total", store=store, kind=kind) == 0
    cron = found["seen_cron_runs"]
    assert {s.labels["cron"] for s in cron.samples} == set(crons)
    for name in crons:
        for outcome in CRON_OUTCOMES:
            assert value(cron, "_total", cron=name, outcome=outcome) == 0
    assert value(found["seen_progress_drain_jobs"], "_total") == 0
    assert value(found["seen_progress_drained_updates"], "_total") == 0
    for outcome in PUBLISH_OUTCOMES:
        assert value(found["seen_progress_publishes"], "_total", outcome=outcome) == 0


async def test_reads_locks_and_rate_limits_count_the_known_work(
    private_server: EmbeddedServer, tmp_path: Path, port: int
) -> None:
    sections: dict[str, Any] = {"http": http(port), "warmup": METERED}
    pool = queue_pool(private_server.addr)
    try:
        with Fleet(tmp_path, private_server.addr, **sections) as fleet:
            (worker,) = fleet.start(1)
            await started(worker, port)
            check_new_families(scrape(port), (), 0)
            for _ in range(2):
                job = await pool.enqueue_job("warmup_cache")
                assert job is not None
                result = await job.result(timeout=20, poll_delay=0.05)
                assert result.get("failed_sources", 0) == 0, (result, worker.log())
            check_new_families(scrape(port), (), 2)
            status, headers, body = get(port, "/metrics", Accept="application/openmetrics-text")
            assert status == 200 and headers["Content-Type"].startswith("application/openmetrics")
            check_new_families(families(body, openmetrics_families), (), 2)
    finally:
        await pool.aclose()


async def test_coalescing_drains_count_the_published_updates(
    private_server: EmbeddedServer, tmp_path: Path, port: int
) -> None:
    """Ten downloads published once each by a producer: the worker's drain jobs consume
    exactly ten pending updates, in exactly as many drain jobs as the producer enqueued."""
    sections: dict[str, Any] = {"http": http(port)}
    pool = queue_pool(private_server.addr)
    manager = await CacheManager.from_url(private_server.url)
    try:
        with Fleet(tmp_path, private_server.addr, **sections) as fleet:
            (worker,) = fleet.start(1)
            await started(worker, port)
            publisher = ProgressPublisher(manager, pool.client, layout=pool.layout)
            await publisher.publish_many([upd(f"dl-{i}", 1) for i in range(10)])
            drains = publisher.enqueued
            assert drains >= 1

            async def drained() -> bool:
                found = scrape(port)
                return value(found["seen_progress_drained_updates"], "_total") >= 10

            await wait_until(drained, 20, "ten drained updates")
            found = scrape(port)
            assert value(found["seen_progress_drained_updates"], "_total") == 10
            assert value(found["seen_progress_drain_jobs"], "_total") == drains
            assert value(found["seen_progress_updates"], "_total", outcome="applied") == 10
            assert (
                value(
                    found["seen_jobs"],
                    "_total",
                    function="apply_pending_progress",
                    outcome="complete",
                )
                == drains
            )
            for outcome in PUBLISH_OUTCOMES:  # the worker published nothing itself
                assert value(found["seen_progress_publishes"], "_total", outcome=outcome) == 0
            assert sum(manager.download.coalescing_counts()["published"].values()) == 10
    finally:
        await manager.aclose()
        await pool.aclose()


async def history(raw: Redis, name: str) -> list[dict[str, Any]]:
    """The run history of a periodic job, newest first."""
    return [json.loads(item) for item in await items(raw, KeyBuilder().cron_history(name))]


@pytest.mark.timeout(90)
async def test_cron_runs_by_outcome_match_the_run_history(
    private_server: EmbeddedServer, tmp_path: Path, port: int
) -> None:
    """``log_cache_stats`` every second: ran and deferred (its guard held by hand) match the
    history the runs left in the store; a second copy of a done slot (another cron id in the
    same slot, as a worker with a skewed clock would enqueue) is skipped."""
    name = "log_cache_stats"
    sections: dict[str, Any] = {"http": http(port)}
    sections["maintenance"] = {"stats_every": 1, "history": 100}
    raw = Redis.from_url(private_server.url)
    pool = queue_pool(private_server.addr)
    try:
        with Fleet(tmp_path, private_server.addr, **sections) as fleet:
            (worker,) = fleet.start(1)
            await started(worker, port)
            cron = scrape(port)["seen_cron_runs"]
            assert {s.labels["cron"] for s in cron.samples} == {name}
            for outcome in CRON_OUTCOMES:
                assert value(cron, "_total", cron=name, outcome=outcome) == 0

            def counted(outcome: str) -> float:
                return value(scrape(port)["seen_cron_runs"], "_total", cron=name, outcome=outcome)

            async def ran_twice() -> bool:
                return counted("ran") >= 2

            await wait_until(ran_twice, 20, "two scheduled runs")
            guard = KeyBuilder().maintenance_lock(name)
            await raw.set(guard, "held-by-the-test", px=2500)

            async def deferred() -> bool:
                return counted("deferred") >= 1

            await wait_until(deferred, 10, "a deferred run")
            await raw.delete(guard)
            done = [e for e in await history(raw, name) if e["outcome"] == "ok"]
            _, scheduled = done[0]["job_id"].split(":")
            job = await pool.enqueue_job(name, _job_id=f"{name}:{int(scheduled) + 1}")
            assert job is not None

            async def skipped() -> bool:
                return counted("skipped") >= 1

            await wait_until(skipped, 10, "the done slot's re-run to be skipped")

            async def agree() -> bool:
                runs = await history(raw, name)
                found = scrape(port)["seen_cron_runs"]
                return all(
                    value(found, "_total", cron=name, outcome=ours)
                    == sum(1 for e in runs if e["outcome"] == theirs)
                    for ours, theirs in (("ran", "ok"), ("deferred", "deferred"))
                )

            await wait_until(agree, 10, "the counts to match the run history")
            found = scrape(port)["seen_cron_runs"]
            assert value(found, "_total", cron=name, outcome="skipped") == 1
            assert value(found, "_total", cron=name, outcome="failed") == 0
            assert value(found, "_total", cron=name, outcome="handed_back") == 0
    finally:
        await pool.aclose()
        await raw.aclose()


ID_LIKE = re.compile(r"[0-9a-f]{6,}|\d{3,}|[:/@]")


async def test_no_series_carries_an_id_like_label_value(
    private_server: EmbeddedServer, tmp_path: Path, port: int
) -> None:
    """After work with ids everywhere (job ids, download ids, user ids, session ids), every
    label value comes from the fixed sets, and none looks like an id."""
    sections: dict[str, Any] = {"http": http(port), "warmup": METERED}
    sections["maintenance"] = {"stats_every": 1}
    pool = queue_pool(private_server.addr)
    try:
        with Fleet(tmp_path, private_server.addr, **sections) as fleet:
            (worker,) = fleet.start(1)
            await started(worker, port)
            job = await pool.enqueue_job("warmup_cache", _job_id="job-0123456789abcdef")
            assert job is not None
            await job.result(timeout=20, poll_delay=0.05)
            await pool.enqueue_job(
                "update_progress", upd("dl-deadbeef42", 1).model_dump(mode="json")
            )
            await pool.enqueue_job("no_such_function_4711")

            async def settled() -> bool:
                jobs = scrape(port)["seen_jobs"]
                return sum(s.value for s in jobs.samples if s.name == "seen_jobs_total") >= 3

            await wait_until(settled, 20, "three jobs counted")
            found = scrape(port)
    finally:
        await pool.aclose()
    fixed = {
        *JOB_OUTCOMES,
        *PROGRESS_OUTCOMES,
        *PUBLISH_OUTCOMES,
        *STORES,
        *LOCK_RESULTS,
        *CRON_OUTCOMES,
        *CACHE_KINDS,
        *READ_RESULTS,
        *STORE_ERROR_KINDS,
        *LIMITERS,
        *DECISIONS,
    }
    functions = {s.labels["function"] for s in found["seen_jobs"].samples}
    assert "unknown" in functions
    for family in found.values():
        for sample in family.samples:
            for label, text in sample.labels.items():
                if label in ("le", "version", "python"):
                    continue
                if label in ("function", "cron"):
                    assert re.fullmatch(r"[a-z_]+", text), (family.name, label, text)
                    continue
                assert text in fixed, (family.name, label, text)
                assert not ID_LIKE.search(text), (family.name, label, text)
