"""The Node producer (clients/node): its own tests (type check and build with tsc, the shared
vectors, the put script copy) and its end-to-end test through node-redis against a real
server and a real worker. The sharded case is expected to fail until the sharded engine
lands (see tests/conformance/test_go_client.py)."""

from __future__ import annotations

import asyncio
import re
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
from tests.conformance.toolchain import (
    NODE_DIR,
    SHARDS,
    SPARE_DB,
    assert_ok,
    require_node,
    run_tool,
)
from tests.conftest import TestServer
from tests.support.otlp import OtlpReceiver


def summary(output: str, what: str) -> int:
    """A count from the closing lines of node's spec reporter ("<i> pass 3")."""
    found = re.search(rf"^\S+ {what} (\d+)$", output, re.MULTILINE)
    assert found is not None, f"no '{what}' line in the test output"
    return int(found.group(1))


@pytest.fixture(scope="module")
def built() -> None:
    """The package compiled once for the end-to-end runs (``npm run build``: tsc)."""
    require_node()
    assert_ok(run_tool(["npm", "run", "build"], NODE_DIR, timeout=200))


SUITES = ("shards", "queue_keys", "job_ids", "updates", "batches", "records", "trace_context")


@pytest.mark.timeout(240)
def test_node_build_and_unit_tests() -> None:
    require_node()
    done = run_tool(["npm", "test"], NODE_DIR, timeout=200)
    assert_ok(done)
    for suite in (*SUITES, "pending_put"):
        assert f"✔ {suite} (" in done.stdout, f"suite {suite} did not pass (skipped?)"
    assert summary(done.stdout, "fail") == 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("layout", LAYOUTS)
async def test_node_end_to_end(
    layout: str,
    built: None,
    server: TestServer,
    raw: Redis,
    manager: CacheManager,
    tmp_path: object,
) -> None:
    await clean_spare_db(server)
    prefix = f"node-{uuid.uuid4().hex[:8]}"
    traceparent, trace_id, parent = new_traceparent()
    with OtlpReceiver() as otlp:
        async with started_fleet(tmp_path, server, raw, layout, otlp) as fleet:
            done = await asyncio.to_thread(
                run_tool,
                ["node", "--test", "--test-reporter=spec", "dist/test/e2e.test.js"],
                NODE_DIR,
                timeout=200,
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
    assert (summary(done.stdout, "pass"), summary(done.stdout, "skipped")) == (3, 0)
    await check_downloads(manager, prefix)
