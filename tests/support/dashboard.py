"""A real dashboard (uvicorn on a free port, in the test's loop) and a small SSE client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from dashboard.server import DashboardServer
from tests.support.layout import QUEUE_SECTION
from worker.settings import Settings, load_settings

TOKEN = "t" * 8 + "-test-token-of-at-least-32-bytes"
METRICS_TOKEN = "m" * 8 + "-metrics-token-at-least-32-bytes"


JOB_MODULES = ["tests.support.jobs"]
"""The tests' own jobs: the dashboard knows them as the workers that run them do."""


def dashboard_settings(url: str, **dashboard: Any) -> Settings:
    values: dict[str, Any] = {"addr": "127.0.0.1:0", "heartbeat": 0.5, "read_block": 0.2}
    values.update(dashboard)
    return load_settings(
        cache={"addr": url, "connect_timeout": 0.5, "retries": 2},
        dashboard=values,
        queue=dict(QUEUE_SECTION),
        worker={"job_modules": JOB_MODULES},
    )


@asynccontextmanager
async def running_dashboard(
    url: str, *, allow_actions: bool = False, **dashboard: Any
) -> AsyncIterator[DashboardServer]:
    server = DashboardServer(dashboard_settings(url, **dashboard), allow_actions=allow_actions)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: Any


@dataclass
class SseClient:
    """Reads one ``text/event-stream`` response into ``events`` (progress items in ``items``)."""

    response: httpx.Response
    events: list[SseEvent] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    pings: int = 0

    async def run(self) -> None:
        event_id: str | None = None
        kind = "message"
        data: list[str] = []
        async for line in self.response.aiter_lines():
            if line == "":
                if data:
                    parsed = json.loads("\n".join(data))
                    self.events.append(SseEvent(event_id, kind, parsed))
                    if kind == "progress":
                        self.items.extend(parsed["events"])
                kind, data = "message", []
                continue
            if line.startswith(":"):
                self.pings += line.startswith(": ping")
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                event_id = value
            elif name == "event":
                kind = value
            elif name == "data":
                data.append(value)

    @property
    def last_id(self) -> str | None:
        ids = [e.id for e in self.events if e.id is not None]
        return ids[-1] if ids else None

    def kinds(self) -> list[str]:
        return [e.event for e in self.events]


@asynccontextmanager
async def sse(
    client: httpx.AsyncClient, path: str = "/events/downloads", **headers: str
) -> AsyncIterator[SseClient]:
    """An open SSE stream read in the background; closed (and the reader ended) on exit."""
    async with client.stream("GET", path, headers=headers) as response:
        reader = SseClient(response)
        task = asyncio.create_task(reader.run())
        try:
            yield reader
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def dashboard_client(
    url: str, *, allow_actions: bool = False, **dashboard: Any
) -> AsyncIterator[tuple[DashboardServer, httpx.AsyncClient]]:
    """A running dashboard and an HTTP client for it."""
    async with (
        running_dashboard(url, allow_actions=allow_actions, **dashboard) as dash,
        httpx.AsyncClient(base_url=dash.url, timeout=10) as client,
    ):
        yield dash, client
