"""The Go producer (clients/go): its own tests (the shared vectors, the put script copy)
and its end-to-end test through redigo against a real server and a real worker.

The sharded case is expected to fail until the sharded engine lands: a worker on
``queue.layout = "sharded"`` does not run jobs on this branch yet, so the Go test's first
wait for a result runs out. ``strict=True`` makes the run fail once it passes, so the
marker is removed when the engine arrives instead of hiding a pass.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from cache.manager import CacheManager
from tests.conformance.e2e import (
    LAYOUTS,
    check_downloads,
    check_worker_spans,
    clean_spare_db,
    new_traceparent,
    started_fleet,
)
from tests.conformance.toolchain import GO_DIR, SHARDS, SPARE_DB, assert_ok, require_go, run_tool
from tests.conftest import TestServer
from tests.support.otlp import OtlpReceiver

OFFLINE = str(GO_DIR / "offline.sh")
OWN_FILES = ["gofmt", "-l", ".", "redigoconn"]


@pytest.mark.timeout(300)
def test_go_vet_format_and_unit_tests() -> None:
    require_go()
    assert_ok(run_tool([OFFLINE, "go", "vet", "./...", "./redigoconn/..."], GO_DIR, timeout=240))
    listed = run_tool(OWN_FILES, GO_DIR, timeout=30)
    assert_ok(listed)
    unformatted = [f for f in listed.stdout.split() if not f.startswith(".offline")]
    assert unformatted == [], f"gofmt -w {' '.join(unformatted)}"
    done = run_tool(
        [OFFLINE, "go", "test", "-count=1", "./...", "./redigoconn/..."], GO_DIR, timeout=240
    )
    assert_ok(done)
    assert "ok  \tseen-worker/clients/go\t" in done.stdout


@pytest.mark.timeout(300)
@pytest.mark.parametrize("layout", LAYOUTS)
async def test_go_end_to_end(
    layout: str, server: TestServer, raw: Redis, manager: CacheManager, tmp_path: object
) -> None:
    require_go()
    await clean_spare_db(server)
    prefix = f"go-{uuid.uuid4().hex[:8]}"
    traceparent, trace_id, parent = new_traceparent()
    with OtlpReceiver() as otlp:
        async with started_fleet(tmp_path, server, raw, layout, otlp) as fleet:
            done = await asyncio.to_thread(
                run_tool,
                [OFFLINE, "go", "test", "-count=1", "-v", "-timeout=200s", "./redigoconn/..."],
                GO_DIR,
                timeout=260,
                SEEN_TEST_REDIS_ADDR=server.addr,
                SEEN_TEST_QUEUE_LAYOUT=layout,
                SEEN_TEST_QUEUE_SHARDS=str(SHARDS),
                SEEN_TEST_SPARE_DB=str(SPARE_DB),
                SEEN_TEST_PREFIX=prefix,
                SEEN_TEST_TRACEPARENT=traceparent,
            )
            if done.returncode != 0:
                print(fleet.logs()[-4000:])
            assert_ok(done)
            await check_worker_spans(otlp, trace_id, parent, prefix)
    for name in (
        "TestE2ERefusedBeforeAnythingIsWritten",
        "TestE2ECoalescedOutcomes",
        "TestE2EWithWorker",
    ):
        assert f"--- PASS: {name}" in done.stdout  # ran, not skipped
    await check_downloads(manager, prefix)
