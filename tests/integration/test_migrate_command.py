"""``seen-worker migrate-queue``: what it prints per pass and its exit codes.

0: nothing of the queue is left in the source layout; 1: something is (duplicates, failures,
jobs held past ``--within``: each named) or the store failed; 2: bad arguments or settings (the
same layout twice, ``--within`` without ``--until-empty``, a cluster, fewer shards than the
keys use). The command runs in-process here (the parser and handler ``main`` uses) and once as
a real process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from jobs.client import enqueue_jobs
from jobs.wire.layout import QueueLayout
from tests.conftest import TestServer
from tests.support.processes import run_cli, write_settings
from worker.cli import build_parser
from worker.migrate_queue import migrate_queue
from worker.settings import load_settings

ARQ = QueueLayout.arq()
SHARDED = QueueLayout.sharded("arq:queue", 4)


async def run(store: str, *argv: str, **queue: Any) -> int:
    args = build_parser().parse_args(["migrate-queue", *argv])
    settings = load_settings(cache={"addr": store, "retries": 0}, queue=queue)
    return await migrate_queue(settings, args)


async def enqueue(raw: Redis, layout: QueueLayout, ids: list[str]) -> None:
    assert all(await enqueue_jobs(raw, [("noop", (), i) for i in ids], layout=layout))


async def test_a_pass_that_empties_the_source_exits_0_and_says_what_moved(
    server: TestServer, raw: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    await enqueue(raw, ARQ, [f"j{i}" for i in range(25)])
    await raw.set("arq:result:old", json.dumps({"q": "arq:queue", "s": True}))

    assert await run(server.addr, "--to", "sharded", "--shards", "4", "--batch", "7") == 0

    out = capsys.readouterr().out
    assert "pass 1: moved 25 job(s) and 1 result(s); held by a worker 0" in out
    assert "left in the source: 0 job(s), 0 result(s)" in out
    assert "done: nothing of the queue is left in the arq layout, queue arq:queue" in out
    assert sum([await raw.zcard(s.queue) for s in SHARDED.shards]) == 25


async def test_leftovers_exit_1_and_are_named(
    server: TestServer, raw: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    await enqueue(raw, SHARDED, ["dup", "ok", "held"])
    await enqueue(raw, ARQ, ["dup"])
    await raw.set(SHARDED.for_job("held").in_progress("held"), "t", px=30_000)

    code = await run(
        server.addr, "--to", "arq", "--until-empty", "--within", "0.5", layout="sharded", shards=4
    )

    assert code == 1
    out = capsys.readouterr().out
    assert "held by a worker 1" in out and "held (a worker runs them" in out
    assert "  duplicate dup: arq:queue already holds it" in out
    assert "NOT DONE: 2 job(s) and 0 result(s) are left in the sharded layout" in out

    await raw.delete(SHARDED.for_job("held").in_progress("held"))
    assert await run(server.addr, "--to", "arq", "--drop-duplicates", "--json", shards=4) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["pass"] == 1 and lines[0]["moved"] == 1
    assert lines[0]["dropped"] == {"count": 1, "examples": [["dup", "arq:queue already holds it"]]}
    assert lines[-1]["done"] is True and lines[-1]["source"].startswith("sharded layout")


@pytest.mark.parametrize(
    ("argv", "queue", "says"),
    [
        (["--to", "arq", "--from", "arq"], {}, "--from and --to are both arq"),
        (["--to", "sharded", "--within", "5"], {}, "--within needs --until-empty"),
        (
            ["--to", "arq"],
            {"layout": "sharded", "addr": "127.0.0.1:1,127.0.0.1:2"},
            "the queue store is a Redis Cluster",
        ),
        (["--to", "arq", "--shards", "2"], {}, r"{arq:queue:[23]}:queue holds jobs"),
    ],
)
async def test_bad_arguments_and_settings_exit_2(
    server: TestServer,
    raw: Redis,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    queue: dict[str, Any],
    says: str,
) -> None:
    await enqueue(raw, SHARDED, [f"j{i}" for i in range(20)])
    assert await run(server.addr, *argv, **queue) == 2
    err = capsys.readouterr().err
    assert err.startswith("seen-worker migrate-queue: ")
    if says.startswith("{"):
        assert any(f"{{arq:queue:{i}}}:queue holds jobs" in err for i in (2, 3)), err
    else:
        assert says in err


async def test_an_unreachable_store_exits_1(raw: Redis, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run("127.0.0.1:1", "--to", "sharded") == 1
    assert "the store failed" in capsys.readouterr().err


async def test_the_command_as_a_process(server: TestServer, raw: Redis, tmp_path: Path) -> None:
    await enqueue(raw, ARQ, [f"j{i}" for i in range(10)])
    settings = write_settings(
        tmp_path / "settings.toml", server.addr, queue={"layout": "sharded", "shards": 4}
    )
    env = {**os.environ, "SEEN_SETTINGS_FILE": str(settings)}
    env.pop("SEEN_CACHE_ADDR", None)
    done = run_cli("migrate-queue", "--to", "sharded", "--until-empty", env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pass 1: moved 10 job(s)" in done.stdout
    bad = run_cli("migrate-queue", "--to", "sideways", env=env, timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'sideways'" in bad.stderr
