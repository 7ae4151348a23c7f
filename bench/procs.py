"""The bench's child processes (every worker and peer runs in its own, so the harness's CPU never
counts as theirs): start, wait for ``ready``, read the one JSON report, stop, all bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

READY_WITHIN_S = 60.0
"""Start-up of one worker process (imports, connections) on a loaded machine."""
RUN_WITHIN_S = 600.0
"""One drain or one batch of pickup samples, at worst."""
STOP_WITHIN_S = 10.0


def child_environment() -> dict[str, str]:
    """The bench's environment without its own ``SEEN_BENCH_*`` variables (the worker would log
    each as an unknown setting)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEN_BENCH_")}
    return {**env, "PYTHONUNBUFFERED": "1"}


class ChildFailed(RuntimeError):
    """A bench process exited badly or did not report."""


class Child:
    """One bench process with its stdout piped (``ready`` lines, one JSON report)."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name

    @classmethod
    async def start(cls, cmd: Sequence[str], name: str, cwd: Path = ROOT) -> Child:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            cwd=cwd,
            env=child_environment(),
            stdout=subprocess.PIPE,
            stderr=None,  # warnings and tracebacks go to the bench's own stderr
        )
        return cls(proc, name)

    async def ready(self, within: float = READY_WITHIN_S) -> None:
        """Wait for the child's ``ready`` line."""
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(within):
                while True:
                    line = await self.proc.stdout.readline()
                    if not line:
                        raise ChildFailed(f"{self.name} exited before it was ready")
                    if line.strip() == b"ready":
                        return
        except TimeoutError:
            raise ChildFailed(f"{self.name} not ready within {within:.0f}s") from None

    async def report(self, within: float = RUN_WITHIN_S) -> dict[str, Any]:
        """Wait for the child to exit; its last stdout line as JSON."""
        try:
            async with asyncio.timeout(within):
                out, _ = await self.proc.communicate()
        except TimeoutError:
            await self.stop()
            raise ChildFailed(f"{self.name} did not finish within {within:.0f}s") from None
        lines = [ln for ln in out.decode().splitlines() if ln.strip().startswith("{")]
        if self.proc.returncode != 0 or not lines:
            raise ChildFailed(f"{self.name} exited with {self.proc.returncode}, no report")
        data: dict[str, Any] = json.loads(lines[-1])
        return data

    async def stop(self) -> None:
        """SIGTERM, a bounded wait, SIGKILL."""
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_WITHIN_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), STOP_WITHIN_S)


async def run_to_end(cmd: Sequence[str], name: str, cwd: Path = ROOT) -> dict[str, Any]:
    """Start a child and return its report."""
    child = await Child.start(cmd, name, cwd)
    return await child.report()
