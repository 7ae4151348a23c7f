"""The last-resort exit: a stuck process still ends at its deadline, with one log line."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.support.processes import ROOT

STUCK = """
import logging, time
from worker.exit_deadline import ExitDeadline
logging.basicConfig(level=logging.INFO)
deadline = ExitDeadline()
deadline.arm(0.3)
deadline.arm(60)  # a second stop request keeps the first deadline
time.sleep(30)  # a blocked event loop, as far as the timer knows
"""


def test_a_stuck_process_exits_at_its_deadline() -> None:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", STUCK], cwd=ROOT, capture_output=True, text=True, timeout=20
    )
    took = time.monotonic() - start
    assert done.returncode == 1
    assert took < 5
    assert done.stderr.count("stop did not finish within 0.3s; exiting now") == 1


def test_disarmed_deadline_does_nothing() -> None:
    code = (
        "from worker.exit_deadline import ExitDeadline\n"
        "import time\nd = ExitDeadline(); d.arm(0.2); d.disarm(); time.sleep(0.5)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=20)
    assert done.returncode == 0
