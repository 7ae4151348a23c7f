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

from bench.common import figure

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
README = ROOT / "README.md"
TABLE = ("<!-- bench-table -->\n", "<!-- /bench-table -->")
TARGETS = ("<!-- bench-targets -->\n", "<!-- /bench-targets -->")


class NotAFullRun(ValueError):
    """The results are of a quick or partial run."""


def _figures(result: dict[str, Any], limit: int = 4) -> str:
    ranges = result.get("ranges", {})
    shown = [
        f"{name} {figure(value, ranges.get(name))}"
        for name, value in list(result["metrics"].items())[:limit]
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


def header(report: dict[str, Any]) -> str:
    m = report["machine"]
    load = report.get("load_average", {})
    start, end = load.get("start") or [0.0], load.get("end") or [0.0]
    return (
        f"`make bench` on {m.get('cpus')} cores ({m.get('cpu', 'unknown CPU')}), "
        f"Python {m.get('python')}, {report['server']} (`{report.get('server_binary', '?')}`); "
        f"{report['started']}, {report['seconds']} s; load average {start[0]:g} at the start "
        f"and {end[0]:g} at the end (a shared machine: absolute figures are low and noisy, the "
        "ratios are what carries over). Figures with a range are the median [min-max] of that "
        "many runs (`runs` in the JSON), ratios come from the medians of peers measured in the "
        "same run, interleaved. Reproduce: `make bench` (BullMQ needs node and npm; "
        "`bench/results/latest.json` has every run)." + _partial(report)
    )


def markdown(report: dict[str, Any]) -> str:
    """The table of every result."""
    lines = [
        header(report),
        "",
        "| benchmark | figures | runs | ratio | baseline |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        ratio = "" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"| {r['name']} | {_figures(r)} | {r.get('runs', 1)} | {ratio} "
            f"| {r.get('baseline') or ''} |"
        )
    return "\n".join(lines)


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["results"]}


def _fig(result: dict[str, Any] | None, name: str, unit: str = "") -> str:
    if result is None or name not in result["metrics"]:
        return "not measured"
    return figure(result["metrics"][name], result.get("ranges", {}).get(name)) + unit


def _met(result: dict[str, Any] | None, key: str = "meets_target") -> str:
    if result is None or key not in result.get("notes", {}):
        return "?"
    return "**met**" if result["notes"][key] else "**missed**"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def targets(report: dict[str, Any]) -> str:
    """The job engine's targets (issues 19 and 20) against this run."""
    r = _by_name(report)
    drain, cost = r.get("worker.drain_noop_jobs"), r.get("worker.cost_per_job")
    sharded, pickup = r.get("worker.sharded_layout"), r.get("worker.pickup_latency")
    scaling, progress = r.get("worker.scaling_processes"), r.get("progress.update_progress")
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
                f"{_fig(progress, 'updates_s')} updates/s",
                f"plain ARQ job per update: {_ratio(progress.get('ratio'))} of its rate",
                _met(progress),
            )
        )
    if cost:
        rows.append(
            (
                "store CPU per job <= 20 us",
                f"{_fig(cost, 'store_cpu_us', ' us')} (arq layout), "
                f"{_fig(cost, 'sharded_store_cpu_us', ' us')} (sharded); "
                f"{_fig(cost, 'store_cmds')} commands",
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
                f"p50 {_fig(pickup, 'p50_ms', ' ms')}, p99 {_fig(pickup, 'p99_ms', ' ms')}",
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
                "sharded layout >= 0.95x the arq layout, store CPU per job <= 20 us",
                f"**{_ratio(sharded.get('ratio'))}**; {_fig(sharded, 'store_cpu_us', ' us')}",
                f"arq layout {_fig(sharded, 'arq_layout_jobs_s')} jobs/s",
                _met(sharded),
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
    lines = ["| target | measured | peers, same run | |", "| --- | --- | --- | --- |"]
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
