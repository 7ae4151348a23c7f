"""``worker.processes``: the one stop sequence (SIGTERM, bounded wait, SIGKILL, bounded wait)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from worker.processes import stop_process, stop_processes

SLEEPER = "import time; time.sleep(60)"
STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def start(code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    if code is STUBBORN:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_a_process_that_stops_on_sigterm_is_not_killed() -> None:
    proc = start(SLEEPER)
    assert stop_process(proc, grace=10) == -signal.SIGTERM
    assert proc.stdout is not None
    proc.stdout.close()


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    proc = start(STUBBORN)
    began = time.monotonic()
    assert stop_process(proc, grace=0.5) == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - began < 5
    assert proc.stdout is not None
    proc.stdout.close()


def test_processes_share_one_grace_and_a_finished_one_keeps_its_code() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait(timeout=10)
    stubborn = [start(STUBBORN) for _ in range(3)]
    began = time.monotonic()
    codes = stop_processes([done, *stubborn], grace=1.0)
    assert codes == [0, -signal.SIGKILL, -signal.SIGKILL, -signal.SIGKILL]
    assert time.monotonic() - began < 2.5  # one grace for all (one each would take 3 s)
    for proc in stubborn:
        assert proc.stdout is not None
        proc.stdout.close()
