"""An outside package adds a plain and a periodic job with only ``@job``/``@periodic`` and
``worker.job_modules``, following docs/write-your-own-job.md word for word.

The page's files are written into a folder outside this tree and installed with pip (into a
``--target`` folder that only the test's worker processes see on ``PYTHONPATH``, so nothing leaks
into the shared environment); two real ``seen-worker run`` processes load it with the page's
settings; the page's producer code enqueues the plain job and reads its result; the periodic
job, its period set to 2 s through its ``SEEN_JOBS_<NAME>`` variable, runs once per slot
across both workers. Start-up problems stop with one line and exit 2.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import TestServer
from tests.support.imports import ROOT
from tests.support.processes import Fleet, run_cli, write_settings
from tests.support.waiting import items, wait_until

PAGE = ROOT / "docs" / "write-your-own-job.md"
BLOCK = re.compile(
    r"<!-- (file: (?P<path>\S+)|(?P<kind>settings|producer)) -->\n```\w*\n(.*?)```", re.S
)
PERIOD = 2


def page_blocks() -> tuple[dict[str, str], str, str]:
    """The page's files (path -> text), its settings block and its producer block."""
    files: dict[str, str] = {}
    other: dict[str, str] = {}
    for match in BLOCK.finditer(PAGE.read_text(encoding="utf-8")):
        if match.group("path"):
            files[match.group("path")] = match.group(4)
        else:
            other[match.group("kind")] = match.group(4)
    return files, other["settings"], other["producer"]


def settings_sections(text: str) -> dict[str, dict[str, Any]]:
    """The page's TOML as ``write_settings`` sections (``[jobs.<name>]`` kept as such)."""
    sections: dict[str, dict[str, Any]] = {}
    for name, values in tomllib.loads(text).items():
        if name == "jobs":
            for job, options in values.items():
                sections[f"jobs.{job}"] = options
        else:
            sections[name] = values
    return sections


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page's package, installed (``pip install ./team-jobs``) into a folder of its own."""
    where = tmp_path_factory.mktemp("outside")
    files, _, _ = page_blocks()
    for path, text in files.items():
        target = where / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    site = where / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(where / "team-jobs")],
        cwd=where, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (site / "team_jobs" / "reports.py").is_file()
    return site


@pytest.mark.timeout(120)
async def test_an_outside_package_runs_its_plain_and_periodic_jobs(
    installed: Path, server: TestServer, raw: Redis, tmp_path: Path
) -> None:
    _, settings_text, producer = page_blocks()
    sections = settings_sections(settings_text)
    sections.setdefault("queue", {"layout": "arq"})  # the page's default, as its producer uses
    with Fleet(tmp_path, server.addr, **sections) as fleet:
        env = {
            "PYTHONPATH": str(installed),
            "SEEN_JOBS_COUNT_SIGNUPS": json.dumps({"every": PERIOD}),
        }
        fleet.start(2, **env)
        namespace: dict[str, Any] = {}
        exec(compile(producer, f"{PAGE}:producer", "exec"), namespace)  # noqa: S102
        assert await namespace["greet_ops"](raw) == "hello, ops", fleet.logs()

        async def ok_runs() -> list[dict[str, Any]]:
            runs = [json.loads(r) for r in await items(raw, "seen:cronlog:count_signups")]
            return [r for r in runs if r.get("outcome") == "ok"]

        async def three_slots() -> bool:
            return len(await ok_runs()) >= 3

        await wait_until(three_slots, 60, "three scheduled runs of count_signups")
        runs = await ok_runs()
        slots = [r["slot"] for r in runs]
        assert len(slots) == len(set(slots)), f"a slot ran twice: {runs}"
        assert all(isinstance(s, int) for s in slots)
        for slot in slots:
            claim = await raw.get(f"seen:cron:count_signups:{slot}")
            assert claim is not None and claim.startswith("done:count_signups:")
        assert {w.running for w in fleet.workers} == {True}
        assert fleet.stop_all() == [0, 0]
    # each body that ran is one "ok" run in the history (or one a stopping worker cancelled)
    history = [json.loads(r) for r in await items(raw, "seen:cronlog:count_signups")]
    ok = [r for r in history if r.get("outcome") == "ok"]
    cancelled = [r for r in history if r.get("outcome") == "cancelled"]
    counted = int(await raw.get("team:count_signups:runs") or 0)
    assert len(ok) <= counted <= len(ok) + len(cancelled), history
    assert len({r["slot"] for r in ok}) == len(ok)
    assert len({r["worker"] for r in history}) >= 1


@pytest.fixture
def settings_file(tmp_path: Path, server: TestServer) -> Path:
    return tmp_path / "settings.toml"


def start_error(path: Path, installed: Path, addr: str, **sections: dict[str, Any]) -> str:
    write_settings(path, addr, **sections)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("SEEN_")} | {
        "SEEN_SETTINGS_FILE": str(path),
        "PYTHONPATH": str(installed),
    }
    out = run_cli("run", env=env, timeout=30)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("sections", "says"),
    [
        ({"worker": {"job_modules": ["team_jobs.nope"]}}, "no module named 'team_jobs.nope'"),
        ({"worker": {"job_modules": ["team_jobs"]}}, "module 'team_jobs' declares no job"),
        (
            {"worker": {"job_modules": ["team_jobs.reports", "tests.support.clash"]}},
            "job 'greet' of tests.support.clash clashes with the job of the same name in "
            "team_jobs.reports",
        ),
        ({"worker": {"job_modules": ["tests.support.clash_builtin"]}}, "job 'ping' of"),
        (
            {"worker": {"job_modules": ["team_jobs.reports"]}, "jobs.count_signup": {"every": 60}},
            "setting jobs.count_signup: no loaded job is called 'count_signup'",
        ),
        (
            {"worker": {"job_modules": ["team_jobs.reports"]}, "jobs.greet": {"every": 60}},
            "setting jobs.greet.every: greet is not a periodic job",
        ),
        ({"jobs.count_signups": {"every": 7}}, "setting jobs.count_signups.every: period 7s"),
        ({"jobs.count_signups": {"evry": 60}}, "setting jobs.count_signups.evry"),
    ],
    ids=["missing", "no-jobs", "clash", "clash-builtin", "unknown-job", "not-periodic",
         "bad-period", "typo"],
)  # fmt: skip
def test_start_up_problems_stop_with_one_line_and_exit_2(
    installed: Path, settings_file: Path, server: TestServer, sections: Any, says: str
) -> None:
    line = start_error(settings_file, installed, server.addr, **sections)
    assert line.startswith("seen-worker: configuration error: ")
    assert says in line, line
