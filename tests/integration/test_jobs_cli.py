"""``seen-worker jobs ...`` and ``seen-worker queue ...`` as an on-call engineer runs them: real
processes against a real store on the lane's queue layout, their output (text and ``--json``)
and their exit codes (0 done, 1 refused, 2 usage, 3 not found, 4 store).

The last test is the fleet: two worker processes stop claiming when ``queue pause`` runs
(running jobs finish; their ``seen_queue_paused`` says 1) and claim again on ``queue resume``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from cache.clock import wall_ms
from cache.manager import CacheManager
from jobs.client import enqueue_job, job_record
from jobs.deadletter import make_dead_letter, push_dead_letters, read_stored
from tests.conftest import TestServer
from tests.integration.test_worker_metrics import get, scrape, value
from tests.support.layout import LAYOUT, job_key, lease_key, queue_of
from tests.support.processes import Fleet, run_cli, write_settings
from tests.support.waiting import fresh_beats, wait_until
from worker.embedded import free_port
from worker.heartbeat import WorkerBeat, add_beat

pytestmark = pytest.mark.timeout(120)

HOSTILE = "<script>alert(1)</script> \u202eevil\u202c \x1b[31m"


@pytest.fixture
def env(server: TestServer, tmp_path: Path) -> dict[str, str]:
    settings = write_settings(tmp_path / "settings.toml", server.addr)
    out = {**os.environ, "SEEN_SETTINGS_FILE": str(settings)}
    out.pop("SEEN_CACHE_ADDR", None)
    return out


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, timeout=60)


def as_json(done: subprocess.CompletedProcess[str]) -> object:
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"not JSON: {done.stdout!r} {done.stderr!r}") from None


async def test_queue_pause_status_resume(env: dict[str, str], raw: Redis) -> None:
    status = cli(env, "queue", "status")
    assert status.returncode == 0 and "is running" in status.stdout, status.stderr
    paused = cli(env, "queue", "pause", "--reason", "migrating the store", "--json")
    assert paused.returncode == 0, paused.stderr
    state = as_json(paused)
    assert isinstance(state, dict) and state["paused"] is True
    assert state["reason"] == "migrating the store" and "@" in state["by"]
    assert await raw.exists(LAYOUT.paused_key)
    text = cli(env, "queue", "status")
    assert "paused by" in text.stdout and "migrating the store" in text.stdout
    resumed = cli(env, "queue", "resume", "--json")
    assert resumed.returncode == 0 and as_json(resumed) == {
        "queue": LAYOUT.name,
        "paused": False,
        "by": None,
        "at_ms": None,
        "reason": None,
    }
    assert not await raw.exists(LAYOUT.paused_key)


async def test_list_pages_show_and_exit_codes(
    env: dict[str, str], raw: Redis, manager: CacheManager
) -> None:
    now = wall_ms()
    for n in range(5):
        await raw.set(job_key(f"w{n}"), job_record("ping", [n]))
        await raw.zadd(queue_of(f"w{n}"), {f"w{n}": now - 1000 * (5 - n)})
    await raw.set(job_key("run"), job_record("update_progress", [{"note": HOSTILE}]))
    await raw.zadd(queue_of("run"), {"run": now - 9000})
    worker_id = "cli-host-4242-a1b2c3"
    await raw.set(lease_key("run"), f"{worker_id}:feedf00d-1", px=300_000)
    await raw.set(LAYOUT.for_job("run").retry("run"), 2)
    beat = WorkerBeat(worker_id=worker_id, host="cli-host", pid=4242, last_beat_ms=wall_ms())
    async with raw.pipeline(transaction=False) as pipe:
        add_beat(pipe, manager.keys, beat, 30)
        await pipe.execute()

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        args = ["jobs", "list", "--limit", "2", "--json"]
        done = cli(env, *args, *(["--cursor", cursor] if cursor else []))
        assert done.returncode == 0, done.stderr
        page = as_json(done)
        assert isinstance(page, dict) and page["examined"] <= 2
        seen += [row["job_id"] for row in page["rows"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == [f"w{n}" for n in range(5)]  # oldest first; "run" is running, not waiting
    text = cli(env, "jobs", "list", "--state", "running")
    assert text.returncode == 0 and "run " in text.stdout and worker_id in text.stdout

    shown = cli(env, "jobs", "show", "run", "--json")
    assert shown.returncode == 0, shown.stderr
    job = as_json(shown)
    assert isinstance(job, dict) and job["state"] == "running" and job["tries"] == 2
    assert job["holder"]["host"] == "cli-host" and job["holder"]["pid"] == 4242
    assert job["max_tries"] == 5 and 0 < job["lease"]["ttl_ms"] <= 300_000
    assert HOSTILE in json.loads(job["args"])[0]["note"]
    plain = cli(env, "jobs", "show", "run")
    assert "held by   cli-host-4242-a1b2c3 on cli-host pid 4242" in plain.stdout

    assert cli(env, "jobs", "show", "nope").returncode == 3
    assert cli(env, "jobs", "show", "bad id*").returncode == 2
    assert cli(env, "jobs", "list", "--state", "sleeping").returncode == 2
    assert cli(env, "jobs", "list", "--cursor", "garbage").returncode == 2

    await raw.zadd(queue_of("w4"), {"w4": now + 600_000})
    retried = cli(env, "jobs", "retry", "w4", "--json")
    assert retried.returncode == 0 and as_json(retried)["verdict"] == "done"  # type: ignore[index]
    assert cli(env, "jobs", "retry", "w4").returncode == 0  # already due: unchanged
    refused = cli(env, "jobs", "delete", "run")
    assert refused.returncode == 1 and "cancel it instead" in refused.stdout
    assert cli(env, "jobs", "delete", "w0").returncode == 0
    assert await raw.zscore(queue_of("w0"), "w0") is None
    assert cli(env, "jobs", "delete", "w0").returncode == 3
    cancelled = cli(env, "jobs", "cancel", "run")
    assert cancelled.returncode == 0 and "abort requested" in cancelled.stdout
    assert await raw.zscore(LAYOUT.for_job("run").abort, "run") is not None
    assert cli(env, "jobs", "cancel", "ghost").returncode == 3


async def test_requeue_a_dead_letter_under_its_id(
    env: dict[str, str], raw: Redis, manager: CacheManager
) -> None:
    record = {"t": 1, "f": "ping", "a": [], "k": {}, "et": wall_ms()}
    letter = make_dead_letter(manager, job_id="lost-1", function="ping", reason="x", payload=record)
    await push_dead_letters(manager, [letter])
    (stored,), _ = await read_stored(manager, 1)
    listed = as_json(cli(env, "jobs", "list", "--state", "dead", "--json"))
    assert isinstance(listed, dict) and listed["rows"][0]["job_id"] == "lost-1"
    done = cli(env, "jobs", "requeue", stored.id, "--json")
    assert done.returncode == 0, done.stderr
    results = as_json(done)
    assert isinstance(results, list) and len(results) == 1
    assert results[0]["new_id"] == "lost-1"
    assert await raw.zscore(queue_of("lost-1"), "lost-1") is not None
    assert cli(env, "jobs", "requeue", stored.id).returncode == 3  # gone from the list


def test_an_unreachable_store_exits_4(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path / "down.toml", f"127.0.0.1:{free_port()}", health={"timeout": 2.0}
    )
    env = {**os.environ, "SEEN_SETTINGS_FILE": str(settings)}
    env.pop("SEEN_CACHE_ADDR", None)
    for args in (("queue", "status"), ("jobs", "list"), ("jobs", "retry", "x")):
        done = cli(env, *args)
        assert done.returncode == 4, (args, done.stdout, done.stderr)
        assert "store error" in done.stderr


@pytest.mark.timeout(150)
async def test_pause_stops_claiming_fleet_wide_and_resume_restarts(
    env: dict[str, str], server: TestServer, tmp_path: Path, raw: Redis, manager: CacheManager
) -> None:
    ports = [free_port(), free_port()]
    sections = {"worker": {"job_modules": ["tests.support.jobs"], "max_jobs": 4}}
    with Fleet(tmp_path, server.addr, **sections) as fleet:
        for port in ports:
            fleet.start(1, SEEN_HTTP_ADDR=f"127.0.0.1:{port}")

        async def both_up() -> bool:
            return len(await fresh_beats(raw)) == 2

        await wait_until(both_up, 30, "two workers beating")
        long = await enqueue_job(raw, "test_sleep", 2.0, job_id="long-one", layout=LAYOUT)
        assert long is not None

        async def long_started() -> bool:
            return bool(await raw.exists(lease_key("long-one")))

        await wait_until(long_started, 20, "the long job running")
        paused = cli(env, "queue", "pause", "--reason", "test")
        assert paused.returncode == 0, paused.stderr

        async def every_worker_paused() -> bool:
            try:
                return all(value(scrape(p)["seen_queue_paused"]) == 1 for p in ports)
            except OSError:
                return False

        # each worker reads the flag at its next poll (worker.poll_delay = 0.05 s)
        waited = await wait_until(every_worker_paused, 10, "both workers paused")
        ids = [f"paused-{n}" for n in range(10)]
        for job_id in ids:
            await enqueue_job(raw, "ping", job_id=job_id, layout=LAYOUT)
        # an observation window (no synchronisation): 40 polls of each worker claim nothing
        await asyncio.sleep(2.0)
        for job_id in ids:
            assert not await raw.exists(LAYOUT.for_job(job_id).result(job_id)), job_id
            assert not await raw.exists(lease_key(job_id)), job_id

        async def long_finished() -> bool:  # running jobs finish while paused
            return bool(await raw.exists(LAYOUT.for_job("long-one").result("long-one")))

        await wait_until(long_finished, 20, "the running job finishing during the pause")
        start = time.monotonic()
        assert cli(env, "queue", "resume").returncode == 0

        async def all_ran() -> bool:
            for job_id in ids:
                if not await raw.exists(LAYOUT.for_job(job_id).result(job_id)):
                    return False
            return True

        await wait_until(all_ran, 20, "every job run after the resume")
        for port in ports:
            assert value(scrape(port)["seen_queue_paused"]) == 0
            assert get(port, "/readyz")[0] == 200
        logs = fleet.logs()
    assert logs.count("paused") >= 2 and logs.count("resumed") >= 2, logs[-3000:]
    assert waited < 10 and time.monotonic() - start < 20
