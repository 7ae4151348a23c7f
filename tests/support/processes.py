"""Real worker processes for the tests, and the settings they run with.

- ``WorkerProcess`` / ``Fleet``: ``python -m worker.cli run`` (``SeenWorker``) with its own
  settings file (``write_settings``) and log file.
- ``ArqWorkerProcess``: ``python -m arq worker.settings.WorkerSettings`` (plain ARQ).
- ``run_burst_worker``: ``SeenWorker`` (the engine) in-process, in burst mode.

Every process is always ended (``worker.processes.stop_process``: SIGTERM, bounded wait,
SIGKILL) so no test leaves one behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from arq.connections import ArqRedis
from arq.worker import Function

from jobs.outcome import JobCounts
from tests.support.layout import QUEUE_SECTION
from tests.support.queue import TestQueue, producer
from worker.app import SeenWorker, create_queue_pool
from worker.processes import stop_process
from worker.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def write_settings(path: Path, addr: str, **sections: dict[str, Any]) -> Path:
    """A settings file for a worker process: the cache address, fast beats, and ``sections``."""
    base: dict[str, dict[str, Any]] = {
        "cache": {"addr": addr, "connect_timeout": 0.5, "retries": 2, "retry_cap": 0.1},
        "worker": {
            "heartbeat_interval": 0.5,
            "heartbeat_ttl": 2.0,
            "job_lease": 2.0,
            "backoff_base": 0.1,
            "backoff_cap": 0.5,
            "shutdown_grace": 5.0,
            "startup_timeout": 10.0,
        },
        "health": {"stale_after": 1.5},
        "http": {"addr": "127.0.0.1:0"},
        "queue": dict(QUEUE_SECTION),
        # no schedules unless a test asks: a slot at a full minute would add a job to the
        # counts tests compare, depending on the second a test ran at
        "maintenance": {
            "cleanup_every": 0,
            "stats_every": 0,
            "warmup_every": 0,
            "repair_every": 0,
            "warmup_at_startup": False,
        },
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class WorkerProcess:
    """One ``seen-worker run`` process; ``prefix`` wraps the command (e.g. ``ip netns exec``,
    which execs it, so ``pid`` stays the worker's own)."""

    def __init__(
        self, settings_file: Path, log_path: Path, prefix: Sequence[str] = (), **env: str
    ) -> None:
        self.settings_file = settings_file
        self.prefix = list(prefix)
        self.log_path = log_path
        self.env = {**os.environ, "SEEN_SETTINGS_FILE": str(settings_file), **env}
        self.env.pop("SEEN_CACHE_ADDR", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> WorkerProcess:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "worker.cli", "run"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if self.proc is None:
            return None
        stop_process(self.proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode


class Fleet:
    """Worker processes sharing one settings file; all stopped when the block ends."""

    def __init__(self, tmp_path: Path, addr: str, **sections: dict[str, Any]) -> None:
        self.tmp_path = tmp_path
        self.addr = addr
        self.settings_file = write_settings(tmp_path / "settings.toml", addr, **sections)
        self.workers: list[WorkerProcess] = []

    def start(
        self, count: int = 1, *, prefix: Sequence[str] = (), **env: str
    ) -> list[WorkerProcess]:
        started = []
        for _ in range(count):
            log = self.tmp_path / f"worker-{len(self.workers)}.log"
            worker = WorkerProcess(self.settings_file, log, prefix, **env).start()
            self.workers.append(worker)
            started.append(worker)
        return started

    def stop_all(self) -> list[int | None]:
        return [w.stop() for w in self.workers]

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log()}" for w in self.workers)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def run_cli(
    *args: str, env: dict[str, str], prefix: Sequence[str] = (), timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``seen-worker ARGS`` (``python -m worker.cli``) to its end, output captured as text;
    ``prefix`` runs it elsewhere (``ip netns exec <host>``)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "worker.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def queue_pool(addr: str) -> TestQueue:
    """A producer on the queue store, on the lane's layout (``tests.support.queue``)."""
    return producer(addr)


def arq_pool(addr: str) -> ArqRedis:
    """ARQ's own client on the queue store (ARQ's layout), for tests of ARQ compatibility."""
    return create_queue_pool(load_settings(cache={"addr": addr}))


def worker_settings(addr: str, **sections: dict[str, Any]) -> Settings:
    """Worker settings pointing at ``addr`` (settings.toml + env + ``sections``)."""
    overrides: dict[str, Any] = {"cache": {"addr": addr}, "queue": dict(QUEUE_SECTION)}
    for name, values in sections.items():
        overrides[name] = {**overrides.get(name, {}), **values}
    return load_settings(**overrides)


async def run_burst_worker(
    settings: Settings,
    *,
    cron: bool = False,
    extra_functions: Sequence[Function] = (),
    **worker_section: Any,
) -> JobCounts:
    """Run the worker (``SeenWorker``) until the queue is empty; returns its job counts.
    ``worker_section`` overrides ``[worker]`` settings (``max_tries=1``); HTTP is off.

    Without its periodic jobs unless ``cron``: a schedule whose slot falls inside the run
    (``repair_pending_progress`` at every full minute, the periodic jobs) would add a job to
    the counts the tests compare, depending on the second the test ran at."""
    worker_values: dict[str, Any] = {"poll_delay": 0.01, **worker_section}
    settings = settings.model_copy(
        update={
            "worker": settings.worker.model_copy(update=worker_values),
            "http": settings.http.model_copy(update={"enabled": False}),
        }
    )
    worker = SeenWorker(settings, burst=True, cron=cron, extra_functions=extra_functions)
    await worker.run()
    assert worker.engine is not None
    return worker.engine.counts


class ArqWorkerProcess:
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
        return None if self.proc is None else stop_process(self.proc, 15)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
