"""The metrics as a real Prometheus sees them (Debian's ``prometheus``, never a parser of ours):
it scrapes a real ``seen-worker run`` process and the dashboard's fleet exporter, with
docs/alerts.yml loaded, while known work runs; then its HTTP API is asked for the series.

Known work: 12 pings and 3 failing jobs run; an invalid progress update fails and is
dead-lettered; the
queue is paused with jobs waiting, then resumed. The worker's own series (per function and
outcome, run times, ``process_*``, ``seen_queue_paused``) and the fleet's (job totals with the
same outcome words, queue by state, pause, dead letters) must say exactly that, every rule of
docs/alerts.yml must evaluate without error, and SeenDeadLettersGrowing must fire.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from jobs.outcome import OUTCOMES
from jobs.queue_control import pause, resume
from tests.conftest import TestServer
from tests.support.dashboard import METRICS_TOKEN, TOKEN, running_dashboard
from tests.support.deploy import ROOT
from tests.support.layout import LAYOUT
from tests.support.processes import Fleet
from tests.support.prometheus import PrometheusServer, Sample, ScrapeTarget, require_prometheus
from tests.support.queue import TestQueue, producer
from tests.support.waiting import fresh_beats, wait_until
from worker.embedded import free_port

pytestmark = pytest.mark.timeout(180)

ALERTS = ROOT / "docs" / "alerts.yml"
PINGS, FAILS = 12, 3


def one(samples: list[Sample]) -> float:
    assert len(samples) == 1, samples
    return samples[0].value


@pytest.mark.timeout(240)
async def test_prometheus_scrapes_known_work_from_a_worker_and_the_fleet(
    server: TestServer, raw: Redis, tmp_path: Path
) -> None:
    require_prometheus()
    port = free_port()
    queue = producer(server.addr)
    sections: dict[str, dict[str, Any]] = {
        "worker": {"job_modules": ["tests.support.jobs"]},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    try:
        with Fleet(tmp_path, server.addr, **sections) as fleet:
            fleet.start(1)

            async def beating() -> bool:
                return len(await fresh_beats(raw)) == 1

            await wait_until(beating, 30, "the worker")
            async with running_dashboard(
                server.url, addr="127.0.0.1:0", token=TOKEN, metrics_token=METRICS_TOKEN
            ) as dash:
                targets = [
                    ScrapeTarget("seen-worker", f"127.0.0.1:{port}"),
                    ScrapeTarget(
                        "seen-fleet", f"127.0.0.1:{dash.port}", bearer_token=METRICS_TOKEN
                    ),
                ]
                async with PrometheusServer(tmp_path, targets, rule_files=[ALERTS]) as prom:
                    await prom.wait_for_targets_up(within=60)
                    await run_known_work(prom, queue, raw)
                    await check_series(prom)
                    health = await prom.wait_for_rules_evaluated(within=60)
                    assert all(h == "ok" for h, _ in health.values()), health
                    await prom.wait_for(
                        'ALERTS{alertname="SeenDeadLettersGrowing", alertstate="firing"}',
                        lambda s: len(s) == 1,
                        within=60,
                    )
    finally:
        await queue.aclose()


async def run_known_work(prom: PrometheusServer, queue: TestQueue, raw: Redis) -> None:
    for n in range(PINGS):
        await queue.enqueue_job("ping", _job_id=f"prom-ok-{n}")
    for n in range(FAILS):
        await queue.enqueue_job("test_fail", f"no {n}", _job_id=f"prom-bad-{n}")
    await queue.enqueue_job("update_progress", {"job_id": "dl-x", "seq": "not a number"})
    await prom.wait_for_value(
        'sum(seen_jobs_total{job="seen-worker", outcome="complete"})',
        lambda v: v == PINGS,
        within=60,
    )
    await pause(raw, LAYOUT, by="prometheus-test", reason="known work")
    await prom.wait_for_value("seen_queue_paused", lambda v: v == 1, within=30)
    for n in range(4):
        await queue.enqueue_job("ping", _job_id=f"prom-wait-{n}")
    await prom.wait_for_value('seen_fleet_queue_jobs{state="due"}', lambda v: v == 4, within=60)
    await prom.wait_for_value("seen_fleet_queue_paused", lambda v: v == 1, within=30)
    await resume(raw, LAYOUT)
    await prom.wait_for_value(
        'seen_fleet_jobs_total{outcome="complete"}', lambda v: v == PINGS + 4, within=60
    )


async def check_series(prom: PrometheusServer) -> None:
    queue_label = f'queue="{LAYOUT.name}"'
    await prom.wait_for_value(f"seen_fleet_queue_paused{{{queue_label}}}", lambda v: v == 0, 30)
    await prom.wait_for_value(
        f'seen_fleet_queue_jobs{{{queue_label}, state="due"}}', lambda v: v == 0, 30
    )
    ping = 'seen_jobs_total{job="seen-worker", function="ping", outcome="complete"}'
    await prom.wait_for_value(ping, lambda v: v == PINGS + 4, 30)  # the next scrape has it
    failed = 'seen_jobs_total{job="seen-worker", function="test_fail", outcome="failed"}'
    assert one(await prom.query(failed)) == FAILS
    runs = await prom.query('seen_job_duration_seconds_count{function="ping"}')
    assert one(runs) == PINGS + 4
    # one word per outcome: the worker's series and the fleet's counters name the same ones
    worker_outcomes = {
        s.labels["outcome"] for s in await prom.query('seen_jobs_total{function="ping"}')
    }
    fleet = {s.labels["outcome"]: s.value for s in await prom.query("seen_fleet_jobs_total")}
    assert worker_outcomes == set(fleet) == set(OUTCOMES)
    assert fleet["complete"] == PINGS + 4 and fleet["failed"] == FAILS + 1  # + the invalid one
    assert one(await prom.query("seen_fleet_dead_letters")) == 1
    assert one(await prom.query('seen_fleet_dead_letters_by_reason{reason="invalid_payload"}')) == 1
    assert one(await prom.query('seen_fleet_workers{state="alive"}')) == 1
    # the worker's process series
    memory = one(await prom.query('process_resident_memory_bytes{job="seen-worker"}'))
    assert memory > 10_000_000
    assert one(await prom.query('process_cpu_seconds_total{job="seen-worker"}')) > 0
    assert one(await prom.query('process_open_fds{job="seen-worker"}')) > 0
    start = one(await prom.query('process_start_time_seconds{job="seen-worker"}'))
    assert not math.isnan(start) and start > 1.6e9
    assert one(await prom.query("seen_queue_paused")) == 0
