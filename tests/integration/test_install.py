"""``pip install seen-worker`` without extras: the cache layer and the producer API, nothing of
the worker's or the dashboard's stack.

The wheel is built from this tree (hatchling, offline), installed into a fresh virtual
environment with no extras (its dependencies come from the package index), and a script run
there, outside the source tree, uses ``CacheManager``, ``ProgressPublisher``, ``enqueue`` and
``JobHandle`` against the test's server. ``seen-worker`` there names the extra it needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.conftest import TestServer
from tests.support.imports import ROOT
from worker.entry import EXTRAS

UV = Path(sys.executable).with_name("uv")
NOT_IN_BASE = sorted({m for modules in EXTRAS.values() for m in modules})

SCRIPT = """
import asyncio, importlib.util, json, sys
from datetime import UTC, datetime, timedelta

from cache import CacheManager, ProgressUpdate, SessionData
from jobs import JobStatus, ProgressPublisher, QueueLayout, enqueue

async def main(url: str) -> None:
    async with await CacheManager.from_url(url) as manager:
        expires = datetime.now(UTC) + timedelta(hours=1)
        await manager.session.set_session(
            SessionData(session_id="s1", user_id="u1", expires_at=expires)
        )
        session = await manager.session.get_session("s1")
        publisher = ProgressPublisher(manager)
        outcome = await publisher.publish(
            ProgressUpdate(
                job_id="dl-1", user_id="u1", status="downloading", seq=1, bytes_total=100
            )
        )
        handle = await enqueue(manager.client, "ping", layout=QueueLayout.arq())
        status = await handle.status()
    print(json.dumps({
        "session_user": session.user_id,
        "publish": outcome.name,
        "drains": publisher.enqueued,
        "job": handle.job_id,
        "status": status.value,
        "installed": sorted(m for m in sys.argv[2:] if importlib.util.find_spec(m) is not None),
        "cache_from": __import__("cache").__file__,
    }))

asyncio.run(main(sys.argv[1]))
"""


def run(*cmd: str | Path, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEEN_", "VIRTUAL_ENV", "UV_"))}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel of this tree installed, no extras."""
    where = tmp_path_factory.mktemp("install")
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-w", where / "dist", ROOT, cwd=where,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (where / "dist").glob("seen_worker-*.whl")
    venv = where / "venv"
    made = run(UV, "venv", "--python", sys.executable, venv, cwd=where)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run(UV, "pip", "install", "--python", python, wheel, cwd=where)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


@pytest.mark.timeout(300)
async def test_the_base_install_caches_and_produces_without_the_worker_stack(
    base_venv: Path, server: TestServer, raw: Redis, tmp_path: Path
) -> None:
    url = f"redis://{server.addr}/0"
    out = run(base_venv / "bin" / "python", "-c", SCRIPT, url, *NOT_IN_BASE, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["installed"] == [], f"the base install brought {report['installed']}"
    assert str(base_venv) in report["cache_from"]  # the installed wheel, not this tree
    assert report["session_user"] == "u1"
    assert report["publish"] == "SCHEDULED" and report["drains"] == 1
    assert report["status"] == "queued"
    assert await raw.zscore("arq:queue", report["job"]) is not None
    assert await raw.exists(f"arq:job:{report['job']}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("command", "extra"),
    [(["run"], "worker"), (["health"], "worker"), (["dashboard"], "dashboard")],
    ids=["run", "health", "dashboard"],
)
def test_seen_worker_without_its_extra_says_which_in_one_line(
    base_venv: Path, tmp_path: Path, command: list[str], extra: str
) -> None:
    out = run(base_venv / "bin" / "seen-worker", *command, cwd=tmp_path, timeout=30)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"needs the [{extra}] extra" in lines[0]
    assert f"pip install 'seen-worker[{extra}]'" in lines[0]
