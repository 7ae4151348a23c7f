"""The engine's own loop (``worker.engine``), part by part, on the real store: runners, the one
timer (timeouts), aborts, pause, retries, bookkeeping errors, context isolation, fairness."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from typing import Any

import pytest
from arq.worker import Retry
from redis.asyncio import Redis

from jobs.client import enqueue_jobs
from jobs.outcome import Outcome
from jobs.wire.layout import QueueLayout
from tests.conftest import TestServer
from tests.support.engine import Recorder, engine_on, functions
from tests.support.layout import LAYOUT, both_layouts
from tests.support.waiting import wait_until

LAYOUTS = both_layouts(4)
MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="clean")


async def noop(ctx: dict[str, Any]) -> str:
    return "ok"


async def result_of(raw: Redis, layout: QueueLayout, job_id: str, within: float = 10) -> Any:
    key = layout.for_job(job_id).result(job_id)

    async def there() -> bool:
        return bool(await raw.exists(key))

    await wait_until(there, within, f"the result of {job_id}")
    return json.loads(await raw.get(key) or "null")


async def enqueue(raw: Redis, layout: QueueLayout, *jobs: tuple[str, tuple[Any, ...], str]) -> None:
    assert all(await enqueue_jobs(raw, list(jobs), layout=layout))


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
async def test_a_bookkeeping_error_fails_one_job_and_the_runner_goes_on(
    server: TestServer, raw: Redis, layout: QueueLayout, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(fail_on="broken")
    table = functions({"broken": noop, "noop": noop})
    async with engine_on(server.url, table, layout=layout, observer=recorder, max_jobs=1) as e:
        with caplog.at_level(logging.ERROR, "seen.worker"):
            await enqueue(raw, layout, ("broken", (), "b-1"), ("noop", (), "n-1"))
            assert (await result_of(raw, layout, "n-1"))["r"] == "ok"
        assert e.poll_errors == 1
        assert "bookkeeping of job b-1 failed" in caplog.text
        assert ("noop", Outcome.COMPLETE) in recorder.ended


async def test_context_variables_do_not_leak_from_one_job_to_the_next(
    server: TestServer, raw: Redis
) -> None:
    seen: list[str] = []

    async def marks(ctx: dict[str, Any], value: str) -> str:
        seen.append(MARK.get())
        MARK.set(value)
        await asyncio.sleep(0)
        return MARK.get()

    layout = LAYOUT
    async with engine_on(server.url, functions({"marks": marks}), max_jobs=1):
        for i in range(3):
            await enqueue(raw, layout, ("marks", (f"v{i}",), f"m-{i}"))
            assert (await result_of(raw, layout, f"m-{i}"))["r"] == f"v{i}"
    assert seen == ["clean", "clean", "clean"]  # one runner, a fresh context per job


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
async def test_a_timeout_fails_that_job_and_the_runner_takes_the_next(
    server: TestServer, raw: Redis, layout: QueueLayout
) -> None:
    async def sleeps(ctx: dict[str, Any]) -> str:
        await asyncio.sleep(30)
        return "woke"

    table = {**functions({"sleeps": sleeps}, timeout_s=0.3), **functions({"noop": noop})}
    async with engine_on(server.url, table, layout=layout, max_jobs=1) as engine:
        start = time.monotonic()
        await enqueue(raw, layout, ("sleeps", (), "s-1"), ("noop", (), "n-1"))
        failed = await result_of(raw, layout, "s-1")
        assert failed["s"] is False and failed["r"]["error"] == "TimeoutError"
        assert time.monotonic() - start < 10
        assert (await result_of(raw, layout, "n-1"))["r"] == "ok"
        assert (engine.counts.failed, engine.counts.complete) == (1, 1)


async def test_a_body_that_swallows_cancellation_is_cancelled_again(
    server: TestServer, raw: Redis
) -> None:
    async def stubborn(ctx: dict[str, Any]) -> str:
        for _ in range(3):  # swallows the first two cancellations
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                continue
        return "gave up"

    layout = LAYOUT
    async with engine_on(server.url, functions({"stubborn": stubborn}, timeout_s=0.2)):
        await enqueue(raw, layout, ("stubborn", (), "st-1"))
        result = await result_of(raw, layout, "st-1")
    # it ended its body itself after the third cancellation: its own return stands
    assert result["s"] is True and result["r"] == "gave up"


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
async def test_an_abort_cancels_a_running_job(
    server: TestServer, raw: Redis, layout: QueueLayout
) -> None:
    started = asyncio.Event()

    async def waits(ctx: dict[str, Any]) -> str:
        started.set()
        await asyncio.sleep(30)
        return "woke"

    async with engine_on(server.url, functions({"waits": waits}), layout=layout) as engine:
        await enqueue(raw, layout, ("waits", (), "w-1"))
        await asyncio.wait_for(started.wait(), 10)
        shard = layout.for_job("w-1")
        await raw.zadd(shard.abort, {"w-1": int(time.time() * 1000)})
        result = await result_of(raw, layout, "w-1")
        assert result["s"] is False and result["r"]["error"] == "CancelledError"
        assert engine.counts.cancelled == 1
        assert await raw.zscore(shard.abort, "w-1") is None


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.kind)
async def test_pause_stops_claiming_within_one_poll_and_resume_restarts(
    server: TestServer, raw: Redis, layout: QueueLayout
) -> None:
    async with engine_on(server.url, functions({"noop": noop}), layout=layout) as engine:
        await raw.set(layout.paused_key, "1")

        async def paused() -> bool:
            return engine.paused

        await wait_until(paused, 5, "the pause to be seen")
        await enqueue(raw, layout, *[("noop", (), f"p-{i}") for i in range(5)])
        await asyncio.sleep(0.3)  # fifteen polls: none of them may claim
        assert engine.counts.complete == 0
        assert sum([await raw.zcard(s.queue) for s in layout.shards]) == 5
        await raw.delete(layout.paused_key)
        for i in range(5):
            assert (await result_of(raw, layout, f"p-{i}"))["r"] == "ok"


async def test_retry_defers_the_job_and_counts_the_try(server: TestServer, raw: Redis) -> None:
    tries: list[int] = []

    async def flaky(ctx: dict[str, Any]) -> int:
        tries.append(ctx["job_try"])
        if len(tries) < 3:
            raise Retry(defer=0.05)
        return int(ctx["job_try"])

    layout = LAYOUT
    async with engine_on(server.url, functions({"flaky": flaky})) as engine:
        await enqueue(raw, layout, ("flaky", (), "f-1"))
        assert (await result_of(raw, layout, "f-1"))["r"] == 3
        assert tries == [1, 2, 3]
        assert (engine.counts.retried, engine.counts.complete) == (2, 1)


async def test_no_shard_starves_while_another_is_hot(server: TestServer, raw: Redis) -> None:
    """A backlog of 3,000 jobs on one shard and 8 jobs on the others: the others start long
    before the backlog is worked off (free slots go to shards in turn)."""
    layout = QueueLayout.sharded("arq:queue", 4)
    hot = layout.shards[0]
    hot_ids = [i for i in (f"h-{n}" for n in range(20_000)) if layout.shard_index(i) == 0][:3000]
    cold_ids = [i for i in (f"c-{n}" for n in range(200)) if layout.shard_index(i) != 0][:8]
    started: dict[str, float] = {}

    async def work(ctx: dict[str, Any]) -> None:
        started[ctx["job_id"]] = time.monotonic()
        await asyncio.sleep(0.002)

    for chunk in range(0, len(hot_ids), 500):
        await enqueue(raw, layout, *[("work", (), j) for j in hot_ids[chunk : chunk + 500]])
    await enqueue(raw, layout, *[("work", (), j) for j in cold_ids])
    async with engine_on(server.url, functions({"work": work}), layout=layout, max_jobs=8):

        async def cold_done() -> bool:
            return all(j in started for j in cold_ids)

        await wait_until(cold_done, 30, "the cold shards' jobs to start")
        hot_left = await raw.zcard(hot.queue)
    assert hot_left > 1000, f"the cold jobs waited for the hot backlog ({hot_left} left)"
