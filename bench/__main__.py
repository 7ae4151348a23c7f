"""``make bench``: run every ``bench/bench_*.py`` against one private server, write
``bench/results/latest.json`` and print a table with the same-run ratios.

``python -m bench --merge NAME...`` runs only the named benchmarks and replaces their results
in the existing ``latest.json``, keeping the others; the report then says so
(``partial_run``: which modules ran when, and which full run the other rows come from), and
bench/readme.py prints that under the README's table. Ratios never mix runs: each result's
baseline is measured in the same run as the result itself."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import uvloop

from bench.common import BenchEnv, BenchResult
from worker.embedded import EmbeddedServer

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def discover(only: list[str]) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return [n for n in names if not only or any(o in n for o in only)]


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def server_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"\n{'benchmark':<46} {'figures':<58} {'vs baseline':<24}")
    print("-" * 130)
    for r in results:
        figures = ", ".join(
            f"{k}={v:,.0f}" if v >= 100 else f"{k}={v:g}" for k, v in r["metrics"].items()
        )
        ratio = f"{r['ratio']:.2f}x {r['baseline']}" if r.get("ratio") is not None else ""
        print(f"{r['name']:<46} {figures[:58]:<58} {ratio}")


async def run_all(names: list[str], env: BenchEnv) -> list[dict[str, Any]]:
    collected: list[dict[str, Any]] = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        start = time.perf_counter()
        print(f"== {name} ...", flush=True)
        results: list[BenchResult] = await module.run(env)
        for result in results:
            entry = asdict(result)
            entry["module"] = name
            collected.append(entry)
        print(f"   {len(results)} results in {time.perf_counter() - start:.1f}s", flush=True)
    return collected


def merged(previous: dict[str, Any], report: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``report`` (this run of modules ``names``) with ``previous``'s other results kept."""
    kept = [r for r in previous["results"] if r.get("module") not in names]
    earlier = previous.get("partial_run", {}).get("other_results_from", previous["started"])
    return {
        **report,
        "results": kept + report["results"],
        "partial_run": {"modules_run": names, "other_results_from": earlier},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="short run (under 2 minutes)")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace only these benchmarks' results in the existing results file",
    )
    parser.add_argument("only", nargs="*", help="run only benchmarks whose name contains these")
    args = parser.parse_args(argv)
    names = discover(args.only)
    if not names:
        print("no benchmarks found", file=sys.stderr)
        return 1
    with EmbeddedServer(os.environ.get("SEEN_BENCH_SERVER") or None) as server:
        env = BenchEnv(
            url=server.url,
            addr=server.addr,
            quick=args.quick,
            server_binary=server.binary,
            redis_benchmark=shutil.which("redis-benchmark") or shutil.which("valkey-benchmark"),
        )
        started = time.time()
        # uvloop, as in production (seen-worker run); baselines run on the same loop.
        results = uvloop.run(run_all(names, env))
        report = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 1),
            "quick": args.quick,
            "machine": machine(),
            "server": server_version(server.binary),
            "results": results,
        }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("latest-quick.json" if args.quick else "latest.json")
    if args.merge and out.exists():
        report = merged(json.loads(out.read_text()), report, names)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
