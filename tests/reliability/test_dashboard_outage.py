"""The dashboard's one stream reader rides out a store restart: open streams keep going."""

from __future__ import annotations

import asyncio

import pytest

from cache.manager import CacheManager
from tests.conftest import cache_config_for
from tests.support.dashboard import dashboard_client, sse
from tests.support.updates import upd
from tests.support.waiting import wait_until
from worker.embedded import EmbeddedServer

JOBS = [f"dl-{n}" for n in range(8)]


@pytest.mark.timeout(90)
async def test_open_streams_survive_a_store_restart(private_server: EmbeddedServer) -> None:
    config = cache_config_for(private_server.url)
    async with (
        await CacheManager.connect(config) as manager,
        dashboard_client(private_server.url) as (dash, c),
        sse(c) as client,
    ):

        async def got(n: int) -> bool:
            return len(client.items) >= n

        async def apply(seq: int) -> None:
            for job in JOBS:
                await manager.download.set_progress(upd(job, seq))

        await apply(1)
        await wait_until(lambda: got(len(JOBS)), 10, "round 1")
        await asyncio.to_thread(private_server.restart, hard=True)

        async def store_back() -> bool:
            try:
                await apply(2)
            except Exception:
                return False
            return True

        await wait_until(store_back, 20, "the store back", interval=0.2)
        await wait_until(lambda: got(2 * len(JOBS)), 20, "round 2 on the same stream")
        hub = dash.app.state.dashboard.hub
        assert len(hub.subscribers) == 1
        assert [i["q"] for i in client.items if i["j"] == JOBS[0]] == [1, 2]
