"""Where a worker process spends its CPU during a drain: the note that says what caps throughput.

One drain of ours (one process, the default layout) is profiled over the probe's window only:

- with py-spy (a sampling profiler, not a project dependency: ``make bench PYSPY=<path>``, i.e.
  ``python -m bench --py-spy <path>``, or ``py-spy`` on PATH; e.g. ``python3 -m venv
  /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy``),
  attached to the worker process while its queue is paused, sampling at 250 Hz without
  stopping it; idle samples are left out, so the shares are shares of CPU;
- else with cProfile inside the worker, enabled at the first job and disabled at the last
  (deterministic: it slows the worker down and inflates per-call costs, read the shares only).

The summary: the share of samples per package (by the file of the innermost Python frame; time
inside uvloop's C loop, its socket I/O and callbacks, shows as ``event loop (uvloop, C)``) and
the top functions by own time.
"""

from __future__ import annotations

import asyncio
import os
import pstats
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.drains import Layout, enqueue_noops, figures, our_layout, worker_cmd
from bench.procs import ROOT, Child

RATE_HZ = 250
ATTACH_S = 1.5
"""Time py-spy gets to attach before the queue is unpaused."""
EVENT_LOOP = "event loop (uvloop, C)"
PACKAGES = ("worker/engine", "worker", "jobs", "cache", "redis", "arq", "asyncio", "bench")


def pyspy(explicit: str | None = None) -> str | None:
    return explicit or shutil.which("py-spy")


def package_of(path: str, function: str) -> str:
    """The package a frame's file belongs to (``PACKAGES``; the stdlib's ``asyncio`` loop runner
    as the innermost frame means time in uvloop's C code)."""
    path = _short(path)
    if function in ("Runner.run", "run") and path.endswith("asyncio/runners.py"):
        return EVENT_LOOP
    for package in PACKAGES:
        if path.startswith(f"{package}/") or f"/{package}/" in path:
            return package.replace("/", ".")
    return "other" if path else "builtins"


def summarise(own: dict[tuple[str, str], float], top: int = 15) -> dict[str, Any]:
    """Shares per package and the top functions from own time per (function, file)."""
    total = sum(own.values()) or 1.0
    packages: dict[str, float] = defaultdict(float)
    for (function, path), value in own.items():
        packages[package_of(path, function)] += value
    rows = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return {
        "share_by_package": {
            k: round(v / total, 3) for k, v in sorted(packages.items(), key=lambda kv: -kv[1])
        },
        "top_own_time": [
            {"function": f"{function} ({_short(path)})", "share": round(value / total, 3)}
            for (function, path), value in rows
        ],
    }


def _short(path: str) -> str:
    """A frame's file relative to this repository or to its site-packages (py-spy already
    shortens them; cProfile gives absolute paths)."""
    path = path.replace("\\", "/")
    _, found, rest = path.rpartition("site-packages/")
    if found:
        return rest
    root = f"{ROOT.as_posix()}/"
    if path.startswith(root):
        return path[len(root) :]
    _, found, rest = path.rpartition("/lib/python3")
    return rest.split("/", 1)[1] if found and "/" in rest else path


def read_pyspy_raw(text: str) -> dict[tuple[str, str], float]:
    """Own samples per (function, file) from py-spy's raw (collapsed stack) output."""
    own: dict[tuple[str, str], float] = defaultdict(float)
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        function, _, where = leaf.partition(" (")
        path = where.rsplit(":", 1)[0].rstrip(")")
        own[(function, path)] += int(count)
    return own


def read_cprofile(path: Path) -> dict[tuple[str, str], float]:
    stats: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    own: dict[tuple[str, str], float] = defaultdict(float)
    for (file, _line, name), (_cc, _nc, tt, _ct, _callers) in stats.items():
        own[(name, "" if file == "~" else file)] += tt
    return own


class PySpy:
    """py-spy recording one running process until it exits (``attach``, then ``summary``)."""

    def __init__(self, binary: str, out: Path) -> None:
        self.binary = binary
        self.out = out
        self.proc: asyncio.subprocess.Process | None = None

    async def attach(self, pid: int) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(RATE_HZ),
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(self.out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(ATTACH_S)

    async def summary(self) -> dict[str, Any]:
        """After the process exited: the profile's summary (``summarise``)."""
        assert self.proc is not None
        await asyncio.wait_for(self.proc.wait(), 30)
        return {"profiler": PYSPY_HOW, **summarise(read_pyspy_raw(self.out.read_text()))}

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


PYSPY_HOW = (
    f"py-spy {RATE_HZ} Hz, non-blocking, idle samples left out (a sample of a process waiting "
    "for a core on a busy machine still counts: a share ending in a socket write includes the "
    "wait for the core the server was just woken on)"
)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def profiled_drain(
    url: str, addr: str, layout: Layout, jobs: int, py_spy: str | None = None
) -> dict[str, Any]:
    """One drain of ours under a profiler (module docstring): its summary and its figures."""
    binary = pyspy(py_spy)
    raw = Redis.from_url(url)
    out_dir = Path(tempfile.mkdtemp(prefix="seen-bench-profile-"))
    cmd = worker_cmd("ours", addr, layout, jobs)
    if binary is None:
        cmd += ["--cprofile", str(out_dir / "drain.pstats")]
    spy = PySpy(binary, out_dir / "drain.txt") if binary else None
    child: Child | None = None
    try:
        await raw.flushdb()
        where = our_layout(addr, layout)
        await raw.set(where.paused_key, "bench")
        await enqueue_noops(raw, where, jobs)
        child = await Child.start(cmd, f"profiled ours {layout}")
        await child.ready()
        if spy is not None:
            await spy.attach(child.proc.pid)
        await raw.delete(where.paused_key)
        report = await child.report()
        if spy is not None:
            profile = await spy.summary()
        else:
            how = "cProfile from the first job to the last (py-spy not found: see bench/profile.py)"
            profile = {"profiler": how, **summarise(read_cprofile(out_dir / "drain.pstats"))}
        return {"layout": layout, "jobs_s_while_profiled": figures(report, jobs)["jobs_s"]} | (
            profile
        )
    finally:
        if spy is not None:
            await spy.close()
        if child is not None:
            await child.stop()
        await raw.aclose()
        shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":  # summarise a saved profile: python -m bench.profile FILE
    file = Path(sys.argv[1])
    data = read_pyspy_raw(file.read_text()) if file.suffix == ".txt" else read_cprofile(file)
    print(summarise(data))
