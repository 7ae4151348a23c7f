"""A process the sizing benchmark measures: resident memory and CPU time read from /proc, and
the store connections it holds (CLIENT LIST before and after it started).

``MeasuredProcess`` runs ``seen-worker <args>`` (``python -m worker.cli``) from the repository
root, so it reads the repository's ``settings.toml`` as the container image does: the settings
are the shipped defaults plus the environment the benchmark passes (the store address and a
free HTTP port). It is always stopped (SIGTERM, bounded wait, SIGKILL).
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from worker.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """One reading of a process: resident set (bytes) and CPU time used so far (seconds)."""

    rss_bytes: int
    cpu_s: float
    at: float


def usage(pid: int) -> Usage:
    """VmRSS from /proc/<pid>/status, utime + stime from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        after_name = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(after_name[11]) + int(after_name[12])) / TICKS_PER_S  # fields 14 and 15
    rss = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return Usage(rss, cpu, time.monotonic())


def cpu_percent(first: Usage, last: Usage) -> float:
    """CPU used between two readings, in percent of one core."""
    wall = last.at - first.at
    return 100.0 * (last.cpu_s - first.cpu_s) / wall if wall > 0 else 0.0


def spread(values: list[float], digits: int = 1) -> dict[str, float]:
    """Median and range of the runs' values (``""``, ``_min``, ``_max`` suffixes)."""
    return {
        "": round(statistics.median(values), digits),
        "_min": round(min(values), digits),
        "_max": round(max(values), digits),
    }


class MeasuredProcess:
    """``seen-worker <args>`` in a subprocess with its own log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> MeasuredProcess:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", *self.args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def usage(self) -> Usage:
        return usage(self.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_for_log(self, pattern: str, within: float) -> re.Match[str]:
        """The first match of ``pattern`` in the log; fails after ``within`` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found is not None:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.args[0]}: no {pattern!r} in its log:\n{self.log()[-2000:]}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        stop_process(self.proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode
