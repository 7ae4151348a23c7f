"""Renders the ``sizing.*`` results of ``bench/results/latest.json`` as docs/sizing.md's table.

``python -m bench.sizing_doc`` rewrites the block between the ``sizing-table`` markers;
tests/unit/test_deploy_docs.py fails when the block and the results differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
DOC = ROOT / "docs" / "sizing.md"
START, END = "<!-- sizing-table -->\n", "<!-- /sizing-table -->"

ROWS: list[tuple[str, str, str, str]] = [
    # (result, metric, what, unit)
    ("sizing.store_per_active_download", "state_bytes", "applied progress state", "B"),
    (
        "sizing.store_per_active_download",
        "pending_bytes",
        "a coalesced update awaiting its drain",
        "B",
    ),
    ("sizing.store_per_active_download", "event_bytes", "one progress event (stream entry)", "B"),
    (
        "sizing.store_per_queued_job.arq",
        "job_bytes",
        "a queued `update_progress` job, arq layout",
        "B",
    ),
    ("sizing.store_per_queued_job.sharded", "job_bytes", "the same job, sharded layout", "B"),
    ("sizing.worker_process", "idle_rss_mb", "worker resident memory, idle", "MiB"),
    (
        "sizing.worker_process",
        "load_rss_mb",
        "worker resident memory, draining at full speed",
        "MiB",
    ),
    ("sizing.worker_process", "idle_cpu_pct", "worker CPU, idle", "% of a core"),
    ("sizing.worker_process", "load_cpu_pct", "worker CPU, draining at full speed", "% of a core"),
    (
        "sizing.worker_process",
        "load_jobs_s",
        "worker `update_progress` jobs/s at full speed",
        "jobs/s",
    ),
    ("sizing.worker_process", "idle_connections", "worker store connections, idle", ""),
    (
        "sizing.worker_process",
        "load_connections",
        "worker store connections, at most under load",
        "",
    ),
    ("sizing.dashboard_process", "idle_rss_mb", "dashboard resident memory, idle", "MiB"),
    (
        "sizing.dashboard_process",
        "scrape_rss_mb",
        "dashboard resident memory, scraped every second",
        "MiB",
    ),
    (
        "sizing.dashboard_process",
        "scrape_cpu_pct",
        "dashboard CPU, scraped every second",
        "% of a core",
    ),
    ("sizing.dashboard_process", "idle_connections", "dashboard store connections, idle", ""),
    ("sizing.dashboard_process", "scrape_connections", "dashboard store connections, scraped", ""),
]


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"


def _results(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["results"] if r["name"].startswith("sizing.")}


def markdown(report: dict[str, Any]) -> str:
    results = _results(report)
    machine = report["machine"]
    downloads = results["sizing.store_per_active_download"]["notes"]["downloads"]
    jobs = results["sizing.store_per_queued_job.arq"]["notes"]["jobs"]
    started = report["started"]
    lines = [
        f"`make bench` (`bench/bench_sizing.py`) on {machine.get('cpus')} cores "
        f"({machine.get('cpu', 'unknown CPU')}), {report['server'].split(' sha=')[0]}, "
        f"{started}{' (QUICK)' if report.get('quick') else ''}: median of 3 runs and range; "
        f"store figures from {downloads:,} downloads and {jobs:,} jobs.",
        "",
        "| figure | median | range |",
        "| --- | --- | --- |",
    ]
    for result, metric, what, unit in ROWS:
        m = results[result]["metrics"]
        low, high = m[f"{metric}_min"], m[f"{metric}_max"]
        span = f"{_number(low)}-{_number(high)}" if low != high else _number(low)
        lines.append(f"| {what} | {_number(m[metric])} {unit} | {span} |".replace("  |", " |"))
    downloads_m = results["sizing.store_per_active_download"]["metrics"]
    lines += [
        "",
        "| per million (extrapolated: x 10^6 / measured count) | MiB |",
        "| --- | --- |",
        f"| active downloads (applied state + a pending update each) | "
        f"{_number(downloads_m['per_million_mb'])} |",
    ]
    for layout in ("arq", "sharded"):
        per = results[f"sizing.store_per_queued_job.{layout}"]["metrics"]["per_million_mb"]
        lines.append(f"| queued `update_progress` jobs, {layout} layout | {_number(per)} |")
    lines.append(
        f"| progress event streams at their cap (fixed, whatever the downloads) | "
        f"{_number(downloads_m['streams_at_cap_mb'])} |"
    )
    return "\n".join(lines)


def write(results: Path = RESULTS, doc: Path = DOC) -> None:
    report = json.loads(results.read_text(encoding="utf-8"))
    text = doc.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    doc.write_text(f"{head}{START}{markdown(report)}\n{END}{tail}", encoding="utf-8")


def block(doc: Path = DOC) -> str:
    """The rendered block as docs/sizing.md holds it now."""
    return doc.read_text(encoding="utf-8").partition(START)[2].partition(END)[0].rstrip("\n")


if __name__ == "__main__":
    write(ROOT / "bench" / "results" / (sys.argv[1] if len(sys.argv) > 1 else "latest.json"))
