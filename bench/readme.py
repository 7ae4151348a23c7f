"""Renders ``bench/results/latest.json`` as the README's benchmark table.

``python -m bench.readme`` rewrites the block between the README's ``bench-table`` markers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench-table -->\n", "<!-- /bench-table -->"


def _figures(metrics: dict[str, float], limit: int = 4) -> str:
    shown = []
    for name, value in list(metrics.items())[:limit]:
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"
        shown.append(f"{name} {text}")
    return ", ".join(shown)


def _partial(report: dict[str, Any]) -> str:
    """A note when only some benchmarks ran and the rest come from an earlier full run."""
    partial = report.get("partial_run")
    if not partial:
        return ""
    return (
        f" Only {', '.join(partial['modules_run'])} ran at that time; the other rows are from "
        f"the full run of {partial['other_results_from']}."
    )


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"`make bench` on {m.get('cpus')} cores ({m.get('cpu', 'unknown CPU')}), "
        f"Python {m.get('python')}, {report['server']}; {report['started']}, "
        f"{report['seconds']} s{' (QUICK)' if report.get('quick') else ''}. "
        "Ratios are against the baseline measured in the same run "
        "(full figures in `bench/results/latest.json`)." + _partial(report),
        "",
        "| benchmark | figures | ratio | baseline |",
        "| --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        ratio = "" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"| {r['name']} | {_figures(r['metrics'])} | {ratio} | {r.get('baseline') or ''} |"
        )
    return "\n".join(lines)


def write(results: Path, readme: Path) -> None:
    report = json.loads(results.read_text(encoding="utf-8"))
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{START}{markdown(report)}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "latest.json"
    write(ROOT / "bench" / "results" / name, ROOT / "README.md")
