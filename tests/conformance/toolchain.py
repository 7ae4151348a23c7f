"""Running the Go and Node producers' own test suites from pytest.

pytest is the one orchestrator: it starts the private server and real worker processes
(``tests.support.processes.Fleet``) and runs ``go test`` / ``npm test`` against them with
the server's address in ``SEEN_TEST_REDIS_ADDR``. Without a toolchain the wrappers skip
with the reason; with ``CI=true`` they fail instead (CI installs both: a skip there would
hide a suite that silently stopped running). ``SEEN_TEST_CLIENTS=0`` turns them off on
purpose: ``.ci/run`` runs them in its first lane only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
GO_DIR = ROOT / "clients" / "go"
NODE_DIR = ROOT / "clients" / "node"
ENABLED_ENV = "SEEN_TEST_CLIENTS"
REDIGO_SRC = Path("/usr/share/gocode/src/github.com/gomodule/redigo")
SPARE_DB = 9
"""A database of the test server no worker reads: refusals and exact put outcomes."""
SHARDS = 4
"""queue.shards of the sharded-layout runs."""


def cannot_run(reason: str) -> NoReturn:
    """Skip with ``reason``; with ``CI=true`` fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and this test cannot run: {reason}")
    pytest.skip(reason)


def require_enabled() -> None:
    if os.environ.get(ENABLED_ENV) == "0":
        pytest.skip(f"{ENABLED_ENV}=0: the Go and Node suites run in another lane")


def require_go() -> None:
    require_enabled()
    if shutil.which("go") is None or shutil.which("gofmt") is None:
        cannot_run("Go is not installed (apt-get install golang-go)")
    if not (REDIGO_SRC / "redis" / "redis.go").exists():
        cannot_run(
            f"redigo is not at {REDIGO_SRC} (apt-get install golang-github-gomodule-redigo-dev)"
        )


def require_node() -> None:
    require_enabled()
    if shutil.which("node") is None or shutil.which("npm") is None:
        cannot_run("Node.js and npm are not installed")
    if not (NODE_DIR / "node_modules" / "redis").exists():
        cannot_run("clients/node has no node_modules: run `npm ci` in clients/node")


def tool_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    if "HOME" not in env and "GOCACHE" not in env:
        env["GOCACHE"] = str(Path(tempfile.gettempdir()) / "seen-go-build-cache")
    return env


def run_tool(
    args: Sequence[str], cwd: Path, *, timeout: float, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run a toolchain command to its end; output (both streams) in ``.stdout``."""
    return subprocess.run(
        list(args),
        cwd=cwd,
        env=tool_env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    tail = done.stdout[-6000:]
    assert done.returncode == 0, f"{' '.join(done.args)} exited {done.returncode}:\n{tail}"
