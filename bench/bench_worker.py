"""The job engine against BullMQ for Node, ARQ and Dramatiq: one private server, one
``make bench`` run, every figure the median of ``ROUNDS`` runs with its range.

- **drain**: 20,000 no-op jobs enqueued before the worker starts; one worker process runs them
  all (``bench.drains``: jobs/s over the window from the first job's start to the last one's
  end, the worker's CPU, the store's CPU and commands per job, all from the probe inside the
  worker). Ours at the project's defaults (``bench.worker_proc``), on both queue layouts
  (``arq``, ``sharded`` with the default shard count). BullMQ at each concurrency of
  ``BULLMQ_CONCURRENCY`` (its default is 1; the best median is the one compared), Dramatiq at
  each of ``DRAMATIQ_THREADS`` worker threads (8 is its default; the best median is compared),
  ARQ 0.28 with our ``max_jobs`` and ``poll_delay`` (its own defaults, 10 and 0.5 s, are
  slower). Each round runs every one of them once, in the same order, so machine noise hits all
  alike.
- **pickup**: enqueue-to-start latency of one job at a time on an idle worker (``bench.pickup``),
  ours on both layouts, ARQ and BullMQ (at its best drain concurrency), interleaved by round.
- **scaling**: 1, 2 and 4 of our worker processes on one queue, both layouts (``drains.fleet``).
- **cluster**: the same 1, 2 and 4 processes with the sharded queue on a 3-primary Redis
  Cluster, store CPU per job per node (``bench.cluster_section``).
- **profile**: one drain of ours per layout under a sampling profiler (``bench.profile``): what
  caps it; the store's time per job by command (INFO commandstats) for every queue.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench import bullmq, cluster_section, drains, pickup
from bench.common import BenchEnv, BenchResult, Spread, percentile, spreads
from bench.profile import profiled_drain
from bench.worker_proc import bench_settings

ROUNDS = 3
BULLMQ_CONCURRENCY = (1, 10, 50, 100)
DRAMATIQ_THREADS = (8, 32)
PROCESSES = (1, 2, 4)
LAYOUTS: tuple[drains.Layout, ...] = ("arq", "sharded")

NOOP_TARGET = 1.25
"""Ours / BullMQ at its best concurrency, no-op jobs/s per process (issue 19)."""
STORE_CPU_TARGET_US = 20.0
SHARDED_TARGET = 0.95
"""Sharded / ARQ layout jobs/s on one server (issue 20)."""


@dataclass(frozen=True)
class Plan:
    jobs: int
    samples: int
    rounds: int = ROUNDS

    @classmethod
    def of(cls, env: BenchEnv) -> Plan:
        return cls(jobs=env.scale(20_000, 3000), samples=env.scale(200, 40))


Series = dict[str, list[dict[str, Any]]]


async def _rounds(
    plan: Plan, steps: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]]
) -> Series:
    """Every step once per round, in order, ``plan.rounds`` times."""
    out: Series = defaultdict(list)
    for round_ in range(plan.rounds):
        for name, step in steps:
            started = time.perf_counter()
            out[name].append(await step())
            took = time.perf_counter() - started
            print(f"   round {round_ + 1}/{plan.rounds}: {name} ({took:.1f}s)", flush=True)
    return out


def _drain_steps(
    env: BenchEnv, plan: Plan, bullmq_skip: str | None
) -> list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]]:
    url, addr, jobs = env.url, env.addr, plan.jobs
    steps: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("ours", lambda: drains.python_worker(url, addr, "ours", "arq", jobs)),
        ("ours_sharded", lambda: drains.python_worker(url, addr, "ours", "sharded", jobs)),
    ]
    if bullmq_skip is None:
        for c in BULLMQ_CONCURRENCY:
            steps.append((f"bullmq_c{c}", lambda c=c: drains.bullmq_worker(url, addr, jobs, c)))  # type: ignore[misc]
    steps.append(("arq", lambda: drains.python_worker(url, addr, "arq", "arq", jobs)))
    for t in DRAMATIQ_THREADS:
        steps.append((f"dramatiq_t{t}", lambda t=t: drains.dramatiq_worker(url, jobs, t)))  # type: ignore[misc]
    return steps


def _figures(series: Series) -> dict[str, dict[str, Spread]]:
    return {name: spreads([r["figures"] for r in runs]) for name, runs in series.items()}


def _best(figs: dict[str, dict[str, Spread]], prefix: str) -> str | None:
    """The configuration of a peer with the best median jobs/s (its name), if it ran."""
    names = [n for n in figs if n.startswith(prefix)]
    return max(names, key=lambda n: figs[n]["jobs_s"].median) if names else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


async def run(env: BenchEnv) -> list[BenchResult]:
    plan = Plan.of(env)
    skip = bullmq.available()
    poll_delay = bench_settings(env.addr).worker.poll_delay
    series = await _rounds(plan, _drain_steps(env, plan, skip))
    figs = _figures(series)
    best_bullmq = _best(figs, "bullmq_")
    best_dramatiq = _best(figs, "dramatiq_")
    pickups = await _rounds(plan, _pickup_steps(env, plan, poll_delay, skip, best_bullmq))
    scaling = await _rounds(plan, _scaling_steps(env, plan))
    cluster = await cluster_section.measure(env, plan.jobs, plan.rounds, PROCESSES)
    profile: dict[str, Any] = {
        layout: await profiled_drain(env.url, env.addr, layout, plan.jobs, env.py_spy)
        for layout in LAYOUTS
    }
    context = {
        "method": __doc__,
        "jobs": plan.jobs,
        "rounds": plan.rounds,
        "settings_of_ours": series["ours"][0]["settings"],
        "bullmq": skip or bullmq.versions(),
        "cluster": cluster_section.cluster_status(),
    }
    return [
        _drain_result(figs, series, best_bullmq, best_dramatiq, skip, profile, context),
        _cost_result(figs, best_bullmq, best_dramatiq),
        _sharded_result(figs, series),
        _pickup_result(pickups, poll_delay, best_bullmq, skip),
        _scaling_result(scaling),
        *([cluster] if cluster is not None else []),
    ]


def _pickup_steps(
    env: BenchEnv, plan: Plan, poll_delay: float, skip: str | None, best_bullmq: str | None
) -> list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]]:
    url, addr, n = env.url, env.addr, plan.samples

    def summary(samples: list[float]) -> dict[str, Any]:
        return {"figures": {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99)}}

    async def ours(layout: drains.Layout) -> dict[str, Any]:
        return summary(await pickup.python_worker(url, addr, "ours", layout, n, poll_delay))

    async def arq() -> dict[str, Any]:
        return summary(await pickup.python_worker(url, addr, "arq", "arq", n, poll_delay))

    steps: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("ours", lambda: ours("arq")),
        ("ours_sharded", lambda: ours("sharded")),
        ("arq", arq),
    ]
    if skip is None and best_bullmq is not None:
        concurrency = int(best_bullmq.removeprefix("bullmq_c"))

        async def bull() -> dict[str, Any]:
            return summary(await pickup.bullmq_worker(url, addr, n, concurrency, poll_delay))

        steps.append(("bullmq", bull))
    return steps


def _scaling_steps(
    env: BenchEnv, plan: Plan
) -> list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]]:
    return [
        (
            f"{layout}_{n}p",
            lambda layout=layout, n=n: drains.fleet(env.url, env.addr, layout, n, plan.jobs),  # type: ignore[misc]
        )
        for layout in LAYOUTS
        for n in PROCESSES
    ]


def _metrics(
    pairs: list[tuple[str, Spread | None]],
) -> tuple[dict[str, float], dict[str, list[float]]]:
    metrics = {k: round(s.median, 2) for k, s in pairs if s is not None and s.runs}
    ranges = {k: s.range for k, s in pairs if s is not None and s.runs}
    return metrics, ranges


def _drain_result(
    figs: dict[str, dict[str, Spread]],
    series: Series,
    best_bullmq: str | None,
    best_dramatiq: str | None,
    skip: str | None,
    profile: dict[str, Any],
    context: dict[str, Any],
) -> BenchResult:
    ours = figs["ours"]["jobs_s"].median
    bull = figs[best_bullmq]["jobs_s"] if best_bullmq else None
    metrics, ranges = _metrics(
        [
            ("jobs_s", figs["ours"]["jobs_s"]),
            ("bullmq_best_jobs_s", bull),
            ("arq_jobs_s", figs["arq"]["jobs_s"]),
            ("dramatiq_best_jobs_s", figs[best_dramatiq]["jobs_s"] if best_dramatiq else None),
            ("sharded_jobs_s", figs["ours_sharded"]["jobs_s"]),
        ]
    )
    vs_bullmq = _ratio(ours, bull.median if bull else None)
    met = vs_bullmq is not None and vs_bullmq >= NOOP_TARGET
    notes: dict[str, Any] = {
        **context,
        "bullmq_best": best_bullmq or skip,
        "dramatiq_best": best_dramatiq,
        "vs_bullmq_best": vs_bullmq,
        "vs_arq": _ratio(ours, figs["arq"]["jobs_s"].median),
        "vs_dramatiq_best": _ratio(ours, figs[best_dramatiq]["jobs_s"].median)
        if best_dramatiq
        else None,
        "meets_target": met,
        "per_configuration": {
            name: {k: s.as_dict() for k, s in f.items()} for name, f in figs.items()
        },
        "batches_of_ours": {
            name: [r.get("batches", {}) for r in series[name]] for name in ("ours", "ours_sharded")
        },
        "store_by_command": {
            name: [r.get("store", {}) for r in series[name]]
            for name in ("ours", "ours_sharded", best_bullmq, "arq", best_dramatiq)
            if name is not None
        },
        "profile_of_ours": profile,
    }
    return BenchResult(
        name="worker.drain_noop_jobs",
        metrics=metrics,
        ranges=ranges,
        runs=len(series["ours"]),
        baseline=f"BullMQ for Node at its best concurrency ({best_bullmq or skip})",
        ratio=vs_bullmq,
        ratio_meaning="ours/BullMQ best, median no-op jobs/s per worker process (>1 = faster)",
        target=f"ratio >= {NOOP_TARGET}",
        notes=notes,
    )


def _cost_result(
    figs: dict[str, dict[str, Spread]], best_bullmq: str | None, best_dramatiq: str | None
) -> BenchResult:
    ours, sharded = figs["ours"], figs["ours_sharded"]
    pairs: list[tuple[str, Spread | None]] = [
        ("worker_cpu_us", ours.get("worker_cpu_us_per_job")),
        ("store_cpu_us", ours.get("store_cpu_us_per_job")),
        ("store_cmds", ours.get("store_cmds_per_job")),
        ("sharded_store_cpu_us", sharded.get("store_cpu_us_per_job")),
        ("sharded_worker_cpu_us", sharded.get("worker_cpu_us_per_job")),
        ("store_bytes", ours.get("store_bytes_per_job")),
    ]
    for label, name in (("bullmq", best_bullmq), ("arq", "arq"), ("dramatiq", best_dramatiq)):
        if name is None:
            continue
        pairs += [
            (f"{label}_worker_cpu_us", figs[name].get("worker_cpu_us_per_job")),
            (f"{label}_store_cpu_us", figs[name].get("store_cpu_us_per_job")),
            (f"{label}_store_cmds", figs[name].get("store_cmds_per_job")),
            (f"{label}_store_bytes", figs[name].get("store_bytes_per_job")),
        ]
    metrics, ranges = _metrics(pairs)
    store = metrics.get("store_cpu_us")
    met = store is not None and store <= STORE_CPU_TARGET_US
    met_sharded = metrics.get("sharded_store_cpu_us", 1e9) <= STORE_CPU_TARGET_US
    return BenchResult(
        name="worker.cost_per_job",
        metrics=metrics,
        ranges=ranges,
        runs=len(ours["jobs_s"].runs),
        baseline="BullMQ for Node at its best concurrency, store CPU per job",
        ratio=_ratio(store, metrics.get("bullmq_store_cpu_us")),
        ratio_meaning="ours/BullMQ store CPU per job (<1 = cheaper); per job, over the drain's "
        "window; commands include those scripts run; store_bytes: what the store holds per "
        "job after the drain (our results live keep_result; BullMQ keeps completed jobs)",
        target=f"store_cpu_us <= {STORE_CPU_TARGET_US} (both layouts)",
        notes={"meets_target": met, "meets_target_sharded": met_sharded},
    )


def _sharded_result(figs: dict[str, dict[str, Spread]], series: Series) -> BenchResult:
    arq_layout, sharded = figs["ours"], figs["ours_sharded"]
    metrics, ranges = _metrics(
        [
            ("jobs_s", sharded["jobs_s"]),
            ("arq_layout_jobs_s", arq_layout["jobs_s"]),
            ("store_cpu_us", sharded.get("store_cpu_us_per_job")),
            ("store_cmds", sharded.get("store_cmds_per_job")),
        ]
    )
    ratio = _ratio(sharded["jobs_s"].median, arq_layout["jobs_s"].median)
    shards = series["ours_sharded"][0]["settings"]["shards"]
    return BenchResult(
        name="worker.sharded_layout",
        metrics=metrics,
        ranges=ranges,
        runs=len(sharded["jobs_s"].runs),
        baseline="ours on the arq layout, same run",
        ratio=ratio,
        ratio_meaning=f"sharded ({shards} shards) / arq layout, median no-op jobs/s, one server",
        target=f"ratio >= {SHARDED_TARGET} and store_cpu_us <= {STORE_CPU_TARGET_US}",
        notes={
            "meets_target": ratio is not None
            and ratio >= SHARDED_TARGET
            and metrics.get("store_cpu_us", 1e9) <= STORE_CPU_TARGET_US
        },
    )


def _pickup_result(
    series: Series, poll_delay: float, best_bullmq: str | None, skip: str | None
) -> BenchResult:
    figs = _figures(series)
    pairs: list[tuple[str, Spread | None]] = [
        ("p50_ms", figs["ours"]["p50_ms"]),
        ("p99_ms", figs["ours"]["p99_ms"]),
        ("arq_p50_ms", figs["arq"]["p50_ms"]),
        ("arq_p99_ms", figs["arq"]["p99_ms"]),
        ("sharded_p50_ms", figs["ours_sharded"]["p50_ms"]),
        ("sharded_p99_ms", figs["ours_sharded"]["p99_ms"]),
    ]
    if "bullmq" in figs:
        pairs += [("bullmq_p50_ms", figs["bullmq"]["p50_ms"])]
        pairs += [("bullmq_p99_ms", figs["bullmq"]["p99_ms"])]
    metrics, ranges = _metrics(pairs)
    ratio = _ratio(metrics["p50_ms"], metrics["arq_p50_ms"])
    return BenchResult(
        name="worker.pickup_latency",
        metrics=metrics,
        ranges=ranges,
        runs=len(series["ours"]),
        baseline=f"ARQ at the same poll_delay ({poll_delay} s)",
        ratio=ratio,
        ratio_meaning="ours/ARQ p50 enqueue-to-start (<=1 = no worse); a polling worker's p50 "
        "is about poll_delay/2; BullMQ blocks on the queue instead of polling",
        target="ratio <= 1",
        notes={
            "meets_target": ratio is not None and ratio <= 1.0,
            "poll_delay_s": poll_delay,
            "bullmq": f"{best_bullmq} (its best drain concurrency)" if best_bullmq else skip,
            "per_run": {k: {m: s.as_dict() for m, s in v.items()} for k, v in figs.items()},
        },
    )


def _scaling_result(series: Series) -> BenchResult:
    figs = _figures(series)
    pairs: list[tuple[str, Spread | None]] = []
    for layout in LAYOUTS:
        prefix = "" if layout == "arq" else "sharded_"
        pairs += [(f"{prefix}jobs_s_{n}p", figs[f"{layout}_{n}p"]["jobs_s"]) for n in PROCESSES]
    metrics, ranges = _metrics(pairs)
    return BenchResult(
        name="worker.scaling_processes",
        metrics=metrics,
        ranges=ranges,
        runs=len(series["arq_1p"]),
        baseline="1 worker process",
        ratio=_ratio(metrics["jobs_s_4p"], metrics["jobs_s_1p"]),
        ratio_meaning="4 processes / 1 process, median jobs/s on one server (arq layout); the "
        "queue is paused until every process is up; burst mode (each process counts the queue "
        "after a fill)",
        notes={
            "per_configuration": {
                k: {m: s.as_dict() for m, s in v.items()} for k, v in figs.items()
            },
            "jobs_per_process": {k: [r["jobs_per_process"] for r in v] for k, v in series.items()},
        },
    )
