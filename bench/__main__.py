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

from bench.common import BenchEnv, BenchResult, figure
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


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (the machine is shared: the JSON says how busy)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def server_binary() -> str | None:
    """``$SEEN_BENCH_SERVER``, else Debian's redis-server (the server issue 19 measured on),
    else what the embedded server finds."""
    return os.environ.get("SEEN_BENCH_SERVER") or shutil.which("redis-server")


def server_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"\n{'benchmark':<32} {'figures (median [range] of the runs)':<90} {'vs baseline'}")
    print("-" * 150)
    for r in results:
        figures = ", ".join(
            f"{k}={figure(v, r.get('ranges', {}).get(k))}" for k, v in r["metrics"].items()
        )
        ratio = f"{r['ratio']:.2f}x {r['baseline']}" if r.get("ratio") is not None else ""
        print(f"{r['name']:<32} {figures[:90]:<90} {ratio[:60]}")


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


def results_file(quick: bool, only: list[str], merge: bool) -> str:
    """``latest.json`` for a full run (the README's tables come from it) or a ``--merge`` into
    it; any other quick or partial run writes beside it (``latest-quick.json``,
    ``latest-<names>.json``)."""
    if quick:
        return "latest-quick.json"
    return f"latest-{'-'.join(only)}.json" if only and not merge else "latest.json"


def merged(previous: dict[str, Any], report: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``report`` (this run of modules ``names``) with ``previous``'s other results kept; it is
    as full as ``previous`` was (bench/readme.py says which rows ran when)."""
    kept = [r for r in previous["results"] if r.get("module") not in names]
    earlier = previous.get("partial_run", {}).get("other_results_from", previous["started"])
    return {
        **report,
        "full": bool(previous.get("full")),
        "results": kept + report["results"],
        "partial_run": {"modules_run": names, "other_results_from": earlier},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fewer jobs and samples, still 3 runs each; never rendered in the README",
    )
    parser.add_argument(
        "--py-spy", help="py-spy binary for the worker's profile (bench/profile.py)"
    )
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
    load_at_start = load_average()
    with EmbeddedServer(server_binary()) as server:
        env = BenchEnv(
            url=server.url,
            addr=server.addr,
            quick=args.quick,
            server_binary=server.binary,
            redis_benchmark=shutil.which("redis-benchmark") or shutil.which("valkey-benchmark"),
            py_spy=args.py_spy,
        )
        started = time.time()
        # uvloop, as in production (seen-worker run); baselines run on the same loop.
        results = uvloop.run(run_all(names, env))
        report = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 1),
            "quick": args.quick,
            "full": not args.quick and not args.only,
            "modules": names,
            "machine": machine(),
            "load_average": {"start": load_at_start, "end": load_average()},
            "server": server_version(server.binary),
            "server_binary": server.binary,
            "results": results,
        }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / results_file(args.quick, args.only, args.merge)
    if args.merge and out.exists():
        report = merged(json.loads(out.read_text()), report, names)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
