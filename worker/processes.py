"""Stopping child processes: SIGTERM, a bounded wait, SIGKILL, a bounded wait.

The one stop sequence of the project (the demo's workers, the embedded server, the tests'
worker processes). Every wait has a deadline, so a stop never hangs on a stuck child.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

KILL_WAIT_S = 10.0
"""How long a SIGKILLed process gets to be reaped."""


def stop_processes(
    procs: Sequence[subprocess.Popen[Any]], grace: float, kill_wait: float = KILL_WAIT_S
) -> list[int | None]:
    """SIGTERM every running process, give them ``grace`` seconds together, SIGKILL the rest.

    Returns each exit code; None only for a process that outlived SIGKILL by ``kill_wait``."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=kill_wait)
    return [proc.returncode for proc in procs]


def stop_process(
    proc: subprocess.Popen[Any], grace: float, kill_wait: float = KILL_WAIT_S
) -> int | None:
    """``stop_processes`` for one process: its exit code (negative: the signal that ended it)."""
    return stop_processes([proc], grace, kill_wait)[0]
