"""The autoscaling queries and every alert rule, evaluated by a real Prometheus scraping a real
fleet exporter over a real store that holds a backlog (docs/deploy-kubernetes.md).

1. A backlog: ``JOBS`` due ``update_progress`` jobs and one job whose payload is invalid, written
   as producers write them into the queue layout under test, the oldest due ``OLDEST_S`` ago.
   No worker runs.
2. The dashboard (the fleet exporter, with both tokens as in production) serves ``/metrics``;
   Debian's Prometheus scrapes it every second with the metrics token and evaluates
   docs/alerts.yml (the same rules as the PrometheusRule of deploy/kubernetes).
3. The KEDA ScaledObject's queries, read from the built example manifests, return the backlog:
   the depth is exactly what was enqueued, the oldest age is the one the scrape saw; the worker
   count KEDA derives from them is above the minimum. Every alert expression returns what this
   state means: nobody runs jobs (SeenNoWorkerAlive), the queue is old (SeenQueueBacklog), and
   nothing else; each rule evaluates without error, the two are pending.
4. One worker drains the backlog: both queries fall to 0 (KEDA scales down to the minimum),
   SeenNoWorkerAlive and SeenQueueBacklog clear, and the dead-lettered invalid job makes
   SeenDeadLettersGrowing return its series.

The layout is a parameter: ``sharded`` (what compose and the manifests configure) waits for the
fleet reader's sharded layout (the dashboard's issue), then runs like ``arq``.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis

from jobs.wire.layout import LayoutKind, QueueLayout
from tests.conftest import TestServer
from tests.support.backlog import QueuedJob, progress_job, write_backlog
from tests.support.dashboard import METRICS_TOKEN, TOKEN
from tests.support.deploy import ROOT, find, kustomize
from tests.support.processes import Fleet
from tests.support.prometheus import PrometheusServer, ScrapeTarget, require_prometheus
from tests.support.waiting import wait_until
from worker.http.dashboard.server import DashboardServer
from worker.settings import load_settings

JOBS = 300
OLDEST_S = 100.0
"""Age of the oldest due job when written: ceil(100 / 15) = 7 workers from the age trigger."""
ALERTS = ROOT / "docs" / "alerts.yml"
FIRING_WITH_BACKLOG = {"SeenNoWorkerAlive", "SeenQueueBacklog"}
FIRING_AFTER_DRAIN = {"SeenDeadLettersGrowing"}
SHARDED_PENDING = (
    "the sharded queue engine and its fleet reader are being written on another branch; "
    "enable this case when they land"
)


def scaled_object() -> dict[str, Any]:
    spec: dict[str, Any] = find(kustomize("example"), "ScaledObject")["spec"]
    return spec


def triggers(spec: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """``{trigger name: (query, threshold)}``."""
    return {
        t["name"]: (t["metadata"]["query"], float(t["metadata"]["threshold"]))
        for t in spec["triggers"]
    }


def keda_replicas(spec: dict[str, Any], values: dict[str, float]) -> int:
    """The worker count KEDA's HPA sets: per AverageValue trigger ceil(value / threshold),
    the largest of them, within [minReplicaCount, maxReplicaCount]."""
    wanted = max(
        math.ceil(values[name] / threshold) for name, (_, threshold) in triggers(spec).items()
    )
    return int(max(spec["minReplicaCount"], min(spec["maxReplicaCount"], wanted)))


def rules() -> dict[str, str]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {r["alert"]: r["expr"] for g in document["groups"] for r in g["rules"]}


async def returning(prom: PrometheusServer) -> set[str]:
    """The alerts whose expression returns a series now."""
    return {name for name, expr in rules().items() if await prom.query(expr)}


@asynccontextmanager
async def fleet_exporter(url: str, layout: str) -> AsyncIterator[DashboardServer]:
    """The dashboard as deployed (tokens required), on a free loopback port."""
    settings = load_settings(
        cache={"addr": url, "connect_timeout": 0.5, "retries": 2},
        queue={"layout": layout},
        dashboard={"addr": "127.0.0.1:0", "token": TOKEN, "metrics_token": METRICS_TOKEN},
    )
    server = DashboardServer(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


def backlog(now_ms: int) -> list[QueuedJob]:
    jobs = [
        progress_job(f"backlog-{i}", f"dl-{i % 30}", 1 + i // 30, now_ms - 1000 - i)
        for i in range(JOBS)
    ]
    jobs[0] = progress_job("backlog-0", "dl-0", 1, now_ms - int(OLDEST_S * 1000))
    bad = QueuedJob("backlog-bad", "update_progress", [{"job_id": "dl-x"}], now_ms - 2000)
    return [*jobs, bad]


@pytest.mark.parametrize(
    "layout", ["arq", pytest.param("sharded", marks=pytest.mark.skip(reason=SHARDED_PENDING))]
)
@pytest.mark.timeout(240)
async def test_keda_queries_and_alerts_on_a_fleet_with_a_backlog(
    server: TestServer, raw: Redis, tmp_path: Path, layout: LayoutKind
) -> None:
    require_prometheus()
    spec = scaled_object()
    queries = triggers(spec)
    assert set(queries) == {"queue-depth", "oldest-job-age"}
    now_ms = int(time.time() * 1000)
    jobs = backlog(now_ms)
    oldest_due_s = min(j.due_ms for j in jobs) / 1000
    await write_backlog(raw, QueueLayout.of(layout, "arq:queue", 8), jobs)

    async with fleet_exporter(server.url, layout) as dashboard:
        addr = dashboard.url.removeprefix("http://").rstrip("/")
        target = ScrapeTarget("seen-fleet", addr, bearer_token=METRICS_TOKEN)
        async with PrometheusServer(tmp_path, [target], rule_files=[ALERTS]) as prom:
            await prom.wait_for_targets_up(within=60)
            depth_query, _ = queries["queue-depth"]
            age_query, _ = queries["oldest-job-age"]
            depth = await prom.wait_for_value(depth_query, lambda v: True, within=60)
            assert depth == len(jobs)
            # one scrape's sample: its timestamp minus the age it carries is when the oldest
            # job became due (less the time the exporter took to read it after the scrape began)
            series = 'seen_fleet_oldest_job_age_seconds{queue="arq:queue"}'
            due_seen = await prom.value(f"timestamp({series}) - {series}")
            assert due_seen is not None and abs(due_seen - oldest_due_s) < 1.5, due_seen
            age = await prom.value(age_query)
            assert age is not None and OLDEST_S <= age <= time.time() - oldest_due_s + 1
            values = {"queue-depth": depth, "oldest-job-age": age}
            replicas = keda_replicas(spec, values)
            assert replicas == max(
                spec["minReplicaCount"], min(spec["maxReplicaCount"], math.ceil(age / 15))
            )
            assert replicas > spec["minReplicaCount"], "a backlog this old must scale up"

            assert await returning(prom) == FIRING_WITH_BACKLOG
            health = await prom.wait_for_rules_evaluated(within=60)
            assert set(health) == set(rules())
            assert all(h == "ok" for h, _ in health.values()), health
            alerts = await prom.wait_for(
                "ALERTS",
                lambda s: {x.labels["alertname"] for x in s} == FIRING_WITH_BACKLOG,
                within=30,
            )
            assert {x.labels["alertstate"] for x in alerts} == {"pending"}  # they have `for:`

            with Fleet(tmp_path, server.addr, queue={"layout": layout}) as fleet:
                fleet.start(1)
                await prom.wait_for_value(depth_query, lambda v: v == 0, within=90)
                await prom.wait_for_value(age_query, lambda v: v == 0, within=30)
                assert (
                    keda_replicas(spec, {"queue-depth": 0, "oldest-job-age": 0})
                    == (spec["minReplicaCount"])
                )
                await prom.wait_for_value(
                    'seen_fleet_workers{state="alive"}', lambda v: v == 1, within=30
                )
                await prom.wait_for_value("seen_fleet_dead_letters", lambda v: v == 1, within=30)
                seen: list[set[str]] = []

                async def settled() -> bool:
                    seen.append(await returning(prom))
                    return seen[-1] == FIRING_AFTER_DRAIN

                await wait_until(settled, 30, "the alerts of a drained queue", interval=0.2)
                assert fleet.stop_all() == [0], fleet.logs()
