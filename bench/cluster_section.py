"""The cluster figures of issue 20: jobs/s and store CPU per job per node with 1, 2 and 4 worker
processes, the sharded queue on a 3-primary Redis Cluster (one replica each).

The cluster is ``tests/support/cluster.TestCluster`` (the cluster lane's: six ``redis-server``
nodes of the bench's binary, formed with ``redis-cli --cluster create``), its
``cluster-node-timeout`` raised to ``NODE_TIMEOUT_MS`` once formed: on a loaded two-core machine
the lane's one second would let a busy primary be failed over in the middle of a drain. The
figures come from the same pieces as the one-server ones: ``drains.fleet`` runs our worker
processes on the sharded layout (the default shard count) with ``queue.addr`` the cluster and
``queue.cluster`` true (the cache stays on the bench's server), the queue paused until every
process is up, and samples INFO on every node: store CPU and commands per job per node, the
primaries' sum, and the replicas' (replication is a cost a cluster with replicas pays).
Interleaved by round like the rest, ``rounds`` times; medians with their ranges.

The machine is the same two cores: seven servers, the workers and the harness share them, so
the figures say what the cluster path costs per job, not how a cluster scales.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from bench import drains
from bench.common import BenchEnv, BenchResult, Spread, spreads
from worker.settings import QueueSettings

NODE_TIMEOUT_MS = 15_000
PRIMARIES = 3


def cluster_status() -> dict[str, str]:
    """Whether this tree's worker can run the queue on a Redis Cluster, and how it was measured."""
    if "cluster" not in QueueSettings.model_fields:
        return {
            "status": "pending",
            "why": "this tree's worker has no queue.cluster setting: the sharded queue on a "
            "Redis Cluster is not in it yet, so no cluster figures were measured",
        }
    return {
        "status": "measured",
        "why": f"{PRIMARIES} primaries with one replica each on this machine's cores "
        "(bench/cluster_section.py); worker.cluster_sharded",
    }


async def measure(
    env: BenchEnv, jobs: int, rounds: int, processes: Sequence[int]
) -> BenchResult | None:
    """The cluster figures (module docstring); ``None`` when the worker cannot run them."""
    if cluster_status()["status"] == "pending":
        return None
    from tests.support.cluster import TestCluster  # the cluster lane's; bench-only import

    cluster = TestCluster(env.server_binary, primaries=PRIMARIES)
    await asyncio.to_thread(cluster.start)
    try:
        for node in cluster.nodes:
            with cluster.admin(node, timeout=5.0) as admin:
                admin.config_set("cluster-node-timeout", NODE_TIMEOUT_MS)
        primaries = await asyncio.to_thread(cluster.primaries)
        replicas = [n for n in cluster.nodes if n not in primaries]
        roles = {n.url: f"primary_{i + 1}" for i, n in enumerate(primaries)}
        roles |= {n.url: f"replica_{i + 1}" for i, n in enumerate(replicas)}
        overrides = {"queue.addr": cluster.addr, "queue.cluster": True}
        series: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for round_ in range(rounds):
            for n in processes:
                started = time.perf_counter()
                run = await drains.fleet(
                    env.url, env.addr, "sharded", n, jobs, overrides=overrides, nodes=list(roles)
                )
                series[f"{n}p"].append(_per_role(run, roles))
                took = time.perf_counter() - started
                print(f"   round {round_ + 1}/{rounds}: cluster {n}p ({took:.1f}s)", flush=True)
    finally:
        await asyncio.to_thread(cluster.stop)
    return _result(series, processes)


def _per_role(run: dict[str, Any], roles: dict[str, str]) -> dict[str, float]:
    """One fleet run's figures: jobs/s, then store CPU and commands per job per node, the
    primaries' sum and the replicas' sum."""
    out: dict[str, float] = {"jobs_s": run["figures"]["jobs_s"]}
    primaries = replicas = 0.0
    for url, per_job in run["per_node"].items():
        role = roles[url]
        cpu = float(per_job["store_cpu_us_per_job"])
        out[f"{role}_store_cpu_us"] = cpu
        out[f"{role}_store_cmds"] = float(per_job["store_cmds_per_job"])
        if role.startswith("primary"):
            primaries += cpu
        else:
            replicas += cpu
    out["primaries_store_cpu_us"] = round(primaries, 1)
    out["replicas_store_cpu_us"] = round(replicas, 1)
    out["max_primary_store_cpu_us"] = max(
        v for k, v in out.items() if k.startswith("primary_") and k.endswith("_store_cpu_us")
    )
    return out


def _result(series: dict[str, list[dict[str, Any]]], processes: Sequence[int]) -> BenchResult:
    figs: dict[str, dict[str, Spread]] = {k: spreads(v) for k, v in series.items()}
    metrics: dict[str, float] = {}
    ranges: dict[str, list[float]] = {}
    for n in processes:
        for name, key in (
            ("jobs_s", f"jobs_s_{n}p"),
            ("primaries_store_cpu_us", f"store_cpu_us_{n}p"),
            ("max_primary_store_cpu_us", f"max_node_store_cpu_us_{n}p"),
            ("replicas_store_cpu_us", f"replicas_store_cpu_us_{n}p"),
        ):
            spread = figs[f"{n}p"][name]
            metrics[key] = round(spread.median, 1)
            ranges[key] = spread.range
    first, last = processes[0], processes[-1]
    return BenchResult(
        name="worker.cluster_sharded",
        metrics=metrics,
        ranges=ranges,
        runs=len(series[f"{first}p"]),
        baseline=f"{first} worker process on the cluster",
        ratio=round(metrics[f"jobs_s_{last}p"] / metrics[f"jobs_s_{first}p"], 3),
        ratio_meaning=f"{last} processes / {first}, median jobs/s; store CPU per job is the "
        "primaries' sum (store_cpu_us), the busiest primary's (max_node_store_cpu_us) and the "
        "replicas' sum; every node's figures in the notes",
        notes={
            "method": __doc__,
            "per_configuration": {
                k: {m: s.as_dict() for m, s in v.items()} for k, v in figs.items()
            },
        },
    )
