"""``DashboardState``: the connections, the hub and the history sampler one dashboard process
owns.

Created by the app's lifespan (``await DashboardState.create(settings)``) and closed when the
server stops (``aclose``, every step bounded). Nothing is connected at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from redis.asyncio import Redis

from cache.client import create_client
from cache.manager import CacheManager
from dashboard.history import HistorySampler
from dashboard.hub import EventHub
from worker.fleet import FleetReader
from worker.settings import Settings

log = logging.getLogger("seen.dashboard")

CLOSE_WITHIN_S = 2.0


@dataclass
class DashboardState:
    settings: Settings
    manager: CacheManager
    queue: Redis
    hub: EventHub
    fleet: FleetReader
    history: HistorySampler

    @classmethod
    async def create(cls, settings: Settings) -> DashboardState:
        """Connect to both stores, start the event hub and the history sampler (bounded by
        the connect timeouts)."""
        cfg = settings.dashboard
        manager = await CacheManager.connect(settings)
        queue = create_client(settings.queue_cache_settings())
        try:
            hub = EventHub(
                manager,
                max_clients=cfg.max_sse_clients,
                client_queue=cfg.client_queue,
                replay_batches=cfg.replay_batches,
                block_s=cfg.read_block,
                replay_bytes=cfg.replay_mb * 1024 * 1024,
            )
            await hub.start()
        except BaseException:
            await queue.aclose()
            await manager.aclose()
            raise
        sampler = HistorySampler(queue, manager, settings)
        sampler.start()
        return cls(settings, manager, queue, hub, FleetReader(queue, manager, settings), sampler)

    async def aclose(self) -> None:
        await self.history.aclose()
        await self.hub.aclose()
        for close in (self.queue.aclose, self.manager.aclose):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_WITHIN_S):
                    await close()
