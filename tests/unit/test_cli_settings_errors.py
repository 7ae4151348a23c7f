"""A bad setting stops every ``seen-worker`` command with exit code 2 and one line naming it,
never a traceback. Runs the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.processes import run_cli

BAD = [
    ("SEEN_WORKER_JOB_LEASE", "inf", "worker.job_lease"),
    ("SEEN_WORKER_JOB_LEASE", "nan", "worker.job_lease"),
    ("SEEN_WORKER_JOB_LEASE", "-1", "worker.job_lease"),
    ("SEEN_WORKER_JOB_LEASE", "1e400", "worker.job_lease"),
    ("SEEN_SENTRY_DSN", "garbage", "sentry.dsn"),
    ("SEEN_WARMUP_CALLABLES", "not json", "warmup.callables"),
    ("SEEN_WARMUP_CALLABLES", '["not a path"]', "warmup.callables"),
    ("SEEN_WORKERS_MAX_JOBS", "5", "SEEN_WORKER_MAX_JOBS"),
    ("SEEN_CACHE_DB", "99", "cache.db"),
]
COMMANDS = [
    ["run"],
    ["run", "--embedded"],
    ["health"],
    ["stats"],
    ["watch", "--once"],
    ["check"],
    ["demo", "--duration", "1"],
]


def seen_worker(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SEEN_")}
    return run_cli(*args, env={**clean, "SEEN_CACHE_ADDR": "127.0.0.1:1", **env})


def assert_refused(done: subprocess.CompletedProcess[str], env: str, names: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert names in lines[0] and env in lines[0], lines[0]
    assert lines[0].startswith("seen-worker: configuration error:")
    assert done.stdout == ""


@pytest.mark.parametrize(("env", "value", "names"), BAD, ids=[f"{e}={v}" for e, v, _ in BAD])
def test_bad_setting_stops_run_with_one_line(env: str, value: str, names: str) -> None:
    assert_refused(seen_worker(["run"], **{env: value}), env, names)


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_refuses_a_bad_setting(command: list[str]) -> None:
    done = seen_worker(command, SEEN_WORKER_JOB_LEASE="inf")
    assert_refused(done, "SEEN_WORKER_JOB_LEASE", "worker.job_lease")


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "abc"])
def test_non_finite_durations_on_the_command_line_are_refused(value: str) -> None:
    done = seen_worker(["health", "--stale-after", value])
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--stale-after" in done.stderr
