"""The last resort of a stopping worker: a thread that ends the process at a hard deadline.

Every stop path in the worker is bounded and cancels cooperatively, but code we do not own can
still refuse to end (a job body that swallows cancellation in a loop, a library that blocks the
event loop). A stop that overruns ``worker.shutdown_grace`` plus ``STOP_MARGIN_S`` would leave a
worker heartbeating long after it was told to go, until an orchestrator kills it from outside.
This timer runs on its own thread, so a stuck event loop cannot hold it up: at the deadline it
logs one line and exits the process with code 1.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger("seen.worker")

STOP_MARGIN_S = 5.0
"""A stop ends within ``shutdown_grace`` plus this: cancel jobs (2 s), shut down (2.5 s)."""
CANCEL_JOBS_WITHIN_S = 2.0
SHUTDOWN_WITHIN_S = 2.5
FORCED_EXIT_CODE = 1


class ExitDeadline:
    """Arm once when a stop begins; the process exits at the deadline if still alive."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None

    @property
    def armed(self) -> bool:
        return self._timer is not None

    def arm(self, seconds: float) -> None:
        """Idempotent: the first call sets the deadline, later calls keep it."""
        if self._timer is not None:
            return
        timer = threading.Timer(seconds, self._fire, args=(seconds,))
        timer.daemon = True
        timer.name = "seen-exit-deadline"
        timer.start()
        self._timer = timer

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @staticmethod
    def _fire(seconds: float) -> None:
        log.error(
            "stop did not finish within %.1fs; exiting now (code %d)", seconds, FORCED_EXIT_CODE
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        os._exit(FORCED_EXIT_CODE)
