"""Helpers of the progress tests: building updates and running real ARQ workers.

Workers are the real thing: ``arq.worker.Worker`` built by ``worker.app.build_worker_settings``
(in-process, burst mode) or ``python -m arq worker.settings.WorkerSettings`` subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from arq.worker import Worker

from cache.download import DownloadStatus, ProgressUpdate
from worker.app import build_worker_settings
from worker.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def upd(
    job: str,
    seq: int,
    status: DownloadStatus | str = DownloadStatus.DOWNLOADING,
    *,
    user: str = "u1",
    done: int | None = None,
    total: int = 1_000_000,
    emitted: int | None = None,
    error: str | None = None,
) -> ProgressUpdate:
    """An update; ``done`` defaults to ``seq`` bytes so states are easy to tell apart."""
    return ProgressUpdate(
        job_id=job,
        user_id=user,
        status=DownloadStatus(status),
        seq=seq,
        bytes_done=seq if done is None else done,
        bytes_total=total,
        emitted_at_ms=emitted,
        error=error,
    )


def worker_settings(addr: str, **sections: dict[str, Any]) -> Settings:
    """Worker settings pointing at ``addr`` (settings.toml + env + ``sections``)."""
    overrides: dict[str, Any] = {"cache": {"addr": addr}, **sections}
    return load_settings(**overrides)


async def run_burst_worker(settings: Settings, **overrides: Any) -> Worker:
    """Run a real ARQ worker until the queue is empty; returns it (counters: jobs_complete...)."""
    kwargs = build_worker_settings(settings)
    kwargs.update(burst=True, handle_signals=False, poll_delay=0.01, **overrides)
    worker = Worker(**kwargs)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker


class WorkerProcess:
    """``python -m arq worker.settings.WorkerSettings`` against ``addr`` in a subprocess."""

    def __init__(self, addr: str, **env: str) -> None:
        self.env = {
            **os.environ,
            "SEEN_CACHE_ADDR": addr,
            "SEEN_WORKER_POLL_DELAY": "0.01",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "arq", "worker.settings.WorkerSettings"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: a crash in the middle of whatever it was doing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
