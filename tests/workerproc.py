"""Real ``seen-worker run`` processes for the worker tests, plus a slow warmup source.

``WorkerProcess`` starts ``python -m worker.cli run`` with its own settings file and a log file,
and always ends it (SIGTERM, then SIGKILL) so no test leaves a process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, cast

from arq.connections import ArqRedis
from redis.asyncio import Redis

from cache.keys import KeyBuilder
from cache.manager import CacheManager
from worker.app import create_queue_pool
from worker.heartbeat import WorkerBeat, read_beats
from worker.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
SLOW_EVENTS = "seen:test:slow:events"


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
        "maintenance": {
            "cleanup_every": 0,
            "stats_every": 0,
            "warmup_every": 0,
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
    """One ``seen-worker run`` process."""

    def __init__(self, settings_file: Path, log_path: Path, **env: str) -> None:
        self.settings_file = settings_file
        self.log_path = log_path
        self.env = {**os.environ, "SEEN_SETTINGS_FILE": str(settings_file), **env}
        self.env.pop("SEEN_CACHE_ADDR", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> WorkerProcess:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run"],
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
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
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

    def start(self, count: int = 1, **env: str) -> list[WorkerProcess]:
        started = []
        for _ in range(count):
            log = self.tmp_path / f"worker-{len(self.workers)}.log"
            worker = WorkerProcess(self.settings_file, log, **env).start()
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


def queue_pool(addr: str) -> ArqRedis:
    """A producer's client on the queue store (JSON job format)."""
    return create_queue_pool(load_settings(cache={"addr": addr}))


async def fresh_beats(client: Redis, within: float = 1.5) -> list[WorkerBeat]:
    """Heartbeats younger than ``within`` seconds."""
    now = time.time() * 1000
    return [
        b for b in await read_beats(client, KeyBuilder()) if now - b.last_beat_ms <= within * 1000
    ]


async def items(client: Redis, key: str) -> list[str]:
    """A whole list, as text (redis-py's types cannot tell sync from async here)."""
    raw = await cast(Awaitable[list[Any]], client.lrange(key, 0, -1))
    return [x.decode() if isinstance(x, bytes) else str(x) for x in raw]


async def wait_until(
    check: Callable[[], Awaitable[bool]], within: float, what: str, interval: float = 0.05
) -> float:
    """Poll ``check`` until true; returns the seconds waited, fails the test after ``within``."""
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


async def slow_source(manager: CacheManager) -> int:
    """A warmup source that takes ``SEEN_TEST_SLOW_SECONDS`` and records start/done with pid."""
    seconds = float(os.environ.get("SEEN_TEST_SLOW_SECONDS", "1.5"))
    client: Any = manager.client
    await client.rpush(SLOW_EVENTS, f"start:{os.getpid()}")
    await asyncio.sleep(seconds)
    await client.rpush(SLOW_EVENTS, f"done:{os.getpid()}")
    return 1


async def busy_source(manager: CacheManager) -> int:
    """A warmup source that talks to the store non-stop for ``SEEN_TEST_BUSY_SECONDS``.

    Records ``busy:<pid>`` in ``SLOW_EVENTS`` when it starts (in the process's namespace-free
    test key, so any namespace sees it).
    """
    seconds = float(os.environ.get("SEEN_TEST_BUSY_SECONDS", "30"))
    client: Any = manager.client
    await client.rpush(SLOW_EVENTS, f"busy:{os.getpid()}")
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        await client.set("seen:test:busy", "x")
        await client.get("seen:test:busy")
    return 1


async def interval_source(manager: CacheManager) -> int:
    """A warmup source that records when it runs in the file ``SEEN_TEST_INTERVALS`` (local,
    so it works while the store is paused): ``<run> start <t>`` and ``<run> end|cancelled <t>``
    lines, wall-clock seconds. Runs ``SEEN_TEST_SLOW_SECONDS`` without touching the store."""
    path = Path(os.environ["SEEN_TEST_INTERVALS"])
    seconds = float(os.environ.get("SEEN_TEST_SLOW_SECONDS", "8"))
    run = f"{os.getpid()}-{secrets.token_hex(3)}"

    def note(what: str) -> None:
        with path.open("a", encoding="utf-8") as out:
            out.write(f"{run} {what} {time.time():.4f}\n")

    note("start")
    try:
        await asyncio.sleep(seconds)
    except BaseException:
        note("cancelled")
        raise
    note("end")
    return 1
