"""Sentry with a real worker in-process: job name, id and try on the event, secrets scrubbed."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sentry_sdk
from arq.worker import func

from jobs import maintenance
from tests.conftest import TestServer
from tests.integration.test_worker import fast_settings, make_worker
from tests.support.processes import queue_pool
from tests.unit.test_sentry import CapturingTransport
from worker.app import build_worker_settings
from worker.sentry import init_sentry

DSN = "https://public@127.0.0.1/1"  # never contacted: the transport keeps events in memory


SECRET = "-".join(["never", "in", "sentry"])  # not literally in any source context line


async def leaky(ctx: dict[str, Any]) -> None:
    api_token = SECRET  # noqa: F841 - frame variables are scrubbed by name
    raise RuntimeError(f"upstream rejected password={SECRET}")


@pytest.fixture
def capture() -> Any:
    transport = CapturingTransport()
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.init()


@pytest.mark.usefixtures("raw")  # a clean database: a burst worker drains whatever is queued
async def test_failed_job_reaches_sentry_with_job_tags(
    server: TestServer, capture: CapturingTransport
) -> None:
    # A lease of seconds, not FAST's 0.6 s: Sentry's first capture reads the frames' source
    # files, and on a loaded machine that held the loop past the lease (the run was lost, ran
    # again and reached Sentry twice).
    settings = fast_settings(server.addr, sentry={"dsn": DSN}, worker={"job_lease": 5.0})
    assert init_sentry(settings, "w-test", transport=capture)
    arq_settings = settings.model_copy(
        update={"queue": settings.queue.model_copy(update={"layout": "arq"})}
    )
    built = build_worker_settings(arq_settings)["functions"]  # ARQ's own CLI
    assert {f.coroutine.__wrapped__ for f in built} >= {maintenance.log_cache_stats}

    pool = queue_pool(server.addr)
    try:
        job = await pool.enqueue_job("leaky", _job_id="leak-1")
        assert job is not None
        worker = make_worker(settings, extra=[func(leaky, name="leaky")], burst=True)
        ours = worker.functions
        assert all(hasattr(f.coroutine, "__wrapped__") for f in ours.values())  # every job
        await worker.run()
    finally:
        await pool.aclose()
    sentry_sdk.flush()
    (event,) = capture.events
    assert event["tags"]["job_name"] == "leaky"
    assert event["tags"]["job_id"] == "leak-1"
    assert str(event["tags"]["job_try"]) == "1"
    assert event["tags"]["worker_id"] == "w-test"
    assert event["contexts"]["arq_job"]["id"] == "leak-1"
    text = json.dumps(event)
    assert SECRET not in text
    assert "RuntimeError" in text


async def test_memory_warning_is_a_sentry_message(
    server: TestServer, capture: CapturingTransport
) -> None:
    from cache.manager import CacheManager
    from tests.integration.test_maintenance import make_ctx
    from worker.embedded import EmbeddedServer

    with EmbeddedServer() as store:
        settings = fast_settings(
            store.addr, sentry={"dsn": DSN}, maintenance={"memory_warning": 0.001}
        )
        init_sentry(settings, "w-test", transport=capture)
        async with await CacheManager.connect(settings) as manager:
            await manager.client.config_set("maxmemory", str(64 * 1024 * 1024))
            await maintenance.log_cache_stats(make_ctx(manager, settings, "m1"))
    sentry_sdk.flush()
    (event,) = capture.events
    assert event["level"] == "warning"
    assert "of maxmemory" in event["message"]
