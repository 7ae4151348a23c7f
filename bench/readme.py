"""Renders ``bench/results/latest.json`` (one full ``make bench`` run) into the README.

``python -m bench.readme`` rewrites two blocks of README.md: the table of every result (between
the ``bench-table`` markers) and the job engine's targets (between the ``bench-targets``
markers). A quick or partial run is refused: the README shows full runs only.
tests/unit/test_readme.py keeps both blocks equal to what this renders from the committed JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bench_worker import SHARDED_TARGET, STORE_CPU_TARGET_US
from bench.common import figure

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
README = ROOT / "README.md"
TABLE = ("<!-- bench-table -->\n", "<!-- /bench-table -->")
TARGETS = ("<!-- bench-targets -->\n", "<!-- /bench-targets -->")
MIN_RUNS = 3
"""The README shows medians of at least this many runs (the project's rule for claims)."""


class NotAFullRun(ValueError):
    """The results are of a quick or partial run."""


def spread(result: dict[str, Any]) -> tuple[int, dict[str, float], dict[str, list[float]]]:
    """How many runs a result's figures are the median of, its figures and their ranges.

    Most benchmarks give ``runs`` and ``ranges``; the sizing one gives each range as two more
    figures (``<name>_min``, ``<name>_max``) and its runs in its notes, the tracing one its
    rounds and ranges in its notes. Anything else was measured once in the run."""
    metrics: dict[str, float] = dict(result["metrics"])
    ranges: dict[str, list[float]] = dict(result.get("ranges") or {})
    notes = result.get("notes", {})
    runs = int(result.get("runs", 1))
    paired = [m for m in metrics if f"{m}_min" in metrics and f"{m}_max" in metrics]
    if paired:
        for name in paired:
            ranges[name] = [metrics.pop(f"{name}_min"), metrics.pop(f"{name}_max")]
        counted = notes.get("runs")
        runs = len(counted) if isinstance(counted, list) else int(counted or runs)
    per_variant = notes.get("ranges_cpu_us_per_job")
    if isinstance(per_variant, dict):
        for variant, span in per_variant.items():
            if f"{variant}_cpu_us_per_job" in metrics:
                ranges[f"{variant}_cpu_us_per_job"] = span
        runs = int(notes.get("rounds", runs))
    return runs, metrics, ranges


def _figures(result: dict[str, Any], limit: int = 4) -> str:
    _, metrics, ranges = spread(result)
    shown = [
        f"{name} {figure(value, ranges.get(name))}" for name, value in list(metrics.items())[:limit]
    ]
    return ", ".join(shown)


def _partial(report: dict[str, Any]) -> str:
    """A note when ``python -m bench --merge`` replaced some modules' results since the full run
    (each result's ratio still comes from peers of its own run)."""
    partial = report.get("partial_run")
    if not partial:
        return ""
    return (
        f" Only {', '.join(partial['modules_run'])} ran at that time; the other rows are from "
        f"the full run of {partial['other_results_from']}."
    )


def command(report: dict[str, Any]) -> str:
    """The command that made the run (``PYSPY=`` when the worker's profile came from py-spy)."""
    drain = _by_name(report).get("worker.drain_noop_jobs") or {}
    profiles = drain.get("notes", {}).get("profile_of_ours", {}).values()
    spied = any(str(p.get("profiler", "")).startswith("py-spy") for p in profiles)
    return "make bench PYSPY=<py-spy binary>" if spied else "make bench"


def _load(report: dict[str, Any]) -> tuple[float, float]:
    load = report.get("load_average", {})
    return (load.get("start") or [0.0])[0], (load.get("end") or [0.0])[0]


def header(report: dict[str, Any]) -> str:
    m = report["machine"]
    start, end = _load(report)
    return (
        f"`{command(report)}` on {m.get('cpus')} cores ({m.get('cpu', 'unknown CPU')}), "
        f"Python {m.get('python')}, {report['server']} (`{report.get('server_binary', '?')}`); "
        f"{report['started']}, {report['seconds']} s; load average {start:g} at the start "
        f"and {end:g} at the end (a shared machine: absolute figures are low and noisy, the "
        "ratios are what carries over). Figures with a range are the median [min-max] of that "
        "many runs (`runs` in the JSON), ratios come from the medians of peers measured in the "
        f"same run, interleaved. Reproduce: `{command(report)}` (BullMQ needs node and npm; "
        "`bench/results/latest.json` has every run)." + _partial(report)
    )


def markdown(report: dict[str, Any]) -> str:
    """The table of every result measured at least ``MIN_RUNS`` times (medians with ranges),
    then the names of those measured once: the README shows no single-run figure."""
    lines = [
        header(report),
        "",
        "| benchmark | figures | runs | ratio | baseline |",
        "| --- | --- | --- | --- | --- |",
    ]
    once: list[str] = []
    for r in report["results"]:
        runs = spread(r)[0]
        if runs < MIN_RUNS:
            once.append(f"`{r['name']}`")
            continue
        ratio = "" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"| {r['name']} | {_figures(r)} | {runs} | {ratio} | {r.get('baseline') or ''} |"
        )
    if once:
        lines += [
            "",
            f"Measured once in this run, so not shown here (single measurements, not medians; "
            f"each module's docs give its method, the JSON its figures): {', '.join(once)}.",
        ]
    return "\n".join(lines)


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["results"]}


def _fig(result: dict[str, Any] | None, name: str, unit: str = "") -> str:
    if result is None or name not in result["metrics"]:
        return "not measured"
    return figure(result["metrics"][name], result.get("ranges", {}).get(name)) + unit


def _verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"


def _met(result: dict[str, Any] | None, key: str = "meets_target") -> str:
    if result is None or key not in result.get("notes", {}):
        return "?"
    return _verdict(bool(result["notes"][key]))


def _commands(drain: dict[str, Any] | None) -> str:
    """Store commands per job of ours (arq layout), median and range at full precision."""
    per = (drain or {}).get("notes", {}).get("per_configuration", {}).get("ours", {})
    cmds = per.get("store_cmds_per_job")
    return "?" if cmds is None else figure(cmds["median"], cmds["range"])


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def targets(report: dict[str, Any]) -> str:
    """The job engine's targets (issues 19 and 20) against this run."""
    r = _by_name(report)
    drain, cost = r.get("worker.drain_noop_jobs"), r.get("worker.cost_per_job")
    sharded, pickup = r.get("worker.sharded_layout"), r.get("worker.pickup_latency")
    scaling, progress = r.get("worker.scaling_processes"), r.get("progress.update_progress")
    arq_tuned = r.get("progress.baseline_arq_tuned")
    notes = drain["notes"] if drain else {}
    rows: list[tuple[str, str, str, str]] = []
    if drain:
        rows.append(
            (
                "no-op jobs/s per worker process >= 1.25x BullMQ for Node at its best concurrency",
                f"{_fig(drain, 'jobs_s')} jobs/s: **{_ratio(drain.get('ratio'))}** BullMQ, "
                f"{_ratio(notes.get('vs_arq'))} ARQ, {_ratio(notes.get('vs_dramatiq_best'))} "
                "Dramatiq",
                f"BullMQ {_fig(drain, 'bullmq_best_jobs_s')} ({notes.get('bullmq_best')}); "
                f"ARQ {_fig(drain, 'arq_jobs_s')}; Dramatiq {_fig(drain, 'dramatiq_best_jobs_s')} "
                f"({notes.get('dramatiq_best')})",
                _met(drain),
            )
        )
    if progress:
        rows.append(
            (
                "plain `update_progress` jobs >= 10,000/s",
                f"{_fig(progress, 'updates_s')} updates/s: {_ratio(progress.get('ratio'))} plain "
                "ARQ",
                f"plain ARQ, one job per update (tuned): {_fig(arq_tuned, 'updates_s')} updates/s",
                _met(progress),
            )
        )
    if cost:
        rows.append(
            (
                "store CPU per job <= 20 us",
                f"{_fig(cost, 'store_cpu_us', ' us')} (arq layout), "
                f"{_fig(cost, 'sharded_store_cpu_us', ' us')} (sharded); "
                f"{_commands(drain)} commands (scripts' own included)",
                f"BullMQ {_fig(cost, 'bullmq_store_cpu_us', ' us')}, "
                f"ARQ {_fig(cost, 'arq_store_cpu_us', ' us')}, "
                f"Dramatiq {_fig(cost, 'dramatiq_store_cpu_us', ' us')}",
                f"{_met(cost)} / {_met(cost, 'meets_target_sharded')}",
            )
        )
        rows.append(
            (
                "worker CPU per job (after start-up)",
                f"{_fig(cost, 'worker_cpu_us', ' us')}",
                f"BullMQ {_fig(cost, 'bullmq_worker_cpu_us', ' us')}, "
                f"ARQ {_fig(cost, 'arq_worker_cpu_us', ' us')}, "
                f"Dramatiq {_fig(cost, 'dramatiq_worker_cpu_us', ' us')}",
                "reported",
            )
        )
    if pickup:
        rows.append(
            (
                "pickup latency p50 no worse than ARQ at the same poll_delay",
                f"p50 {_fig(pickup, 'p50_ms', ' ms')} (**{_ratio(pickup.get('ratio'))}** ARQ's), "
                f"p99 {_fig(pickup, 'p99_ms', ' ms')}",
                f"ARQ p50 {_fig(pickup, 'arq_p50_ms', ' ms')}; BullMQ (blocking pop) p50 "
                f"{_fig(pickup, 'bullmq_p50_ms', ' ms')}",
                _met(pickup),
            )
        )
    if scaling:
        per = " / ".join(_fig(scaling, f"jobs_s_{n}p") for n in (1, 2, 4))
        per_sharded = " / ".join(_fig(scaling, f"sharded_jobs_s_{n}p") for n in (1, 2, 4))
        rows.append(
            (
                "jobs/s with 1, 2 and 4 worker processes",
                f"arq layout {per}; sharded {per_sharded}",
                "one server; the workers, the server and the harness share the cores",
                "reported",
            )
        )
    if sharded:
        rows.append(
            (
                "sharded layout >= 0.95x the arq layout (jobs/s), store CPU per job <= 20 us",
                f"{_fig(sharded, 'jobs_s')} jobs/s: **{_ratio(sharded.get('ratio'))}**; "
                f"{_fig(sharded, 'store_cpu_us', ' us')}",
                f"arq layout {_fig(sharded, 'arq_layout_jobs_s')} jobs/s",
                f"{_verdict((sharded.get('ratio') or 0) >= SHARDED_TARGET)} / "
                f"{_verdict(sharded['metrics'].get('store_cpu_us', 1e9) <= STORE_CPU_TARGET_US)}",
            )
        )
    cluster, status = r.get("worker.cluster_sharded"), notes.get("cluster")
    what = (
        "3-primary cluster (sharded layout): jobs/s and store CPU per job per node, 1/2/4 processes"
    )
    if cluster:
        rows.append(
            (
                what,
                " / ".join(_fig(cluster, f"jobs_s_{n}p") for n in (1, 2, 4)) + " jobs/s; "
                "store CPU per job, the primaries' sum (busiest primary): "
                + " / ".join(
                    f"{_fig(cluster, f'store_cpu_us_{n}p', ' us')} "
                    f"({_fig(cluster, f'max_node_store_cpu_us_{n}p', ' us')})"
                    for n in (1, 2, 4)
                ),
                "replicas' store CPU per job "
                + " / ".join(_fig(cluster, f"replicas_store_cpu_us_{n}p", " us") for n in (1, 2, 4))
                + "; one server, sharded: the scaling row",
                "reported",
            )
        )
    elif status:
        rows.append((what, status["status"], status["why"], status["status"]))
    start, end = _load(report)
    lines = [
        f"`{command(report)}`, {report['started']} (load average {start:g} to {end:g}); "
        "median [min-max] of 3 runs each, peers interleaved with ours:",
        "",
        "| target | measured | peers, same run | |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def load(results: Path = RESULTS) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(results.read_text(encoding="utf-8"))
    if report.get("quick") or not report.get("full", False):
        raise NotAFullRun(f"{results} is not a full `make bench` run (quick or partial)")
    return report


def replace_block(text: str, markers: tuple[str, str], body: str) -> str:
    start, end = markers
    head, found, rest = text.partition(start)
    if not found:
        raise ValueError(f"README has no {start.strip()} marker")
    _, _, tail = rest.partition(end)
    return f"{head}{start}{body}\n{end}{tail}"


BLOCKS: tuple[tuple[tuple[str, str], Callable[[dict[str, Any]], str]], ...] = (
    (TABLE, markdown),
    (TARGETS, targets),
)


def render(report: dict[str, Any], text: str) -> str:
    for markers, make in BLOCKS:
        text = replace_block(text, markers, make(report))
    return text


def write(results: Path = RESULTS, readme: Path = README) -> None:
    readme.write_text(render(load(results), readme.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    write(ROOT / "bench" / "results" / (sys.argv[1] if len(sys.argv) > 1 else "latest.json"))
