"""Live downloads over SSE: one reader fanned out, exact resume with Last-Event-ID, and a slow
client that never holds the others up. Real uvicorn, real store, real apply script."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from cache.manager import CacheManager
from dashboard.hub import EventHub
from dashboard.server import DashboardServer
from tests.conftest import TestServer
from tests.support.dashboard import SseClient, dashboard_client, running_dashboard, sse
from tests.support.updates import upd
from tests.support.waiting import wait_until

JOBS = [f"dl-{n}" for n in range(12)]  # spread over several shards


def hub_of(dash: DashboardServer) -> EventHub:
    hub: EventHub = dash.app.state.dashboard.hub
    return hub


async def apply_round(manager: CacheManager, seq: int, jobs: list[str] = JOBS) -> None:
    for job in jobs:
        await manager.download.set_progress(upd(job, seq))


async def all_entry_ids(manager: CacheManager) -> list[str]:
    ids: list[str] = []
    for shard in range(manager.config.download.shards):
        key = manager.keys.download_events(shard)
        entries = await manager.client.xrange(key, "-", "+")
        ids += [f"{shard}:{e[0].decode()}" for e in entries]
    return sorted(ids)


def ids_of(items: list[dict[str, Any]]) -> list[str]:
    return [f"{i['h']}:{i['i']}" for i in items]


async def test_snapshot_first_then_live_batches(server: TestServer, manager: CacheManager) -> None:
    await apply_round(manager, 1, JOBS[:3])
    async with dashboard_client(server.url) as (_dash, c), sse(c) as client:
        await wait_until(lambda: _has(client.events), 5, "the snapshot")
        first = client.events[0]
        assert first.event == "snapshot" and first.id is not None
        assert sorted(d["j"] for d in first.data["downloads"]) == sorted(JOBS[:3])
        await apply_round(manager, 2)
        await wait_until(lambda: _count(client.items, len(JOBS)), 5, "live events")
        assert {i["j"] for i in client.items} == set(JOBS)
        assert all(i["q"] == 2 for i in client.items)
        assert all(e.id for e in client.events)  # every frame carries its cursor
        await wait_until(lambda: _true(client.pings > 0), 5, "a heartbeat comment")


async def _has(events: list[Any]) -> bool:
    return bool(events)


async def _count(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def _true(value: bool) -> bool:
    return value


def _hub_read(hub: EventHub, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return hub.events >= n

    return check


def _events_of(client: SseClient) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(client.events)

    return check


def _items_of(client: SseClient, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(client.items) >= n

    return check


async def _resume_exactly(server: TestServer, manager: CacheManager, **dashboard: Any) -> str:
    """Connect, disconnect, let events pass, reconnect with Last-Event-ID: exact continuation."""
    async with running_dashboard(server.url, **dashboard) as dash:
        hub = hub_of(dash)
        async with httpx.AsyncClient(base_url=dash.url) as c:
            async with sse(c) as first:
                await wait_until(lambda: _has(first.events), 5, "the snapshot")
                await apply_round(manager, 1)
                await wait_until(lambda: _count(first.items, len(JOBS)), 5, "round 1")
                last = first.last_id
                assert last is not None
            seen_before = len(first.items)
            # while away: several rounds, each read by the hub as its own batch
            for seq in range(2, 6):
                before = hub.events
                await apply_round(manager, seq)
                await wait_until(_hub_read(hub, before + len(JOBS)), 5, f"hub read {seq}")
            async with sse(c, **{"Last-Event-ID": last}) as second:
                want = 4 * len(JOBS)
                await wait_until(lambda: _count(second.items, want), 5, "the gap")
                await apply_round(manager, 6)
                await wait_until(lambda: _count(second.items, want + len(JOBS)), 5, "round 6")
                kinds = second.kinds()
        received = ids_of(first.items[:seen_before]) + ids_of(second.items)
    assert "snapshot" not in kinds, kinds  # resumed, not reloaded
    assert len(received) == len(set(received)), "duplicates"
    assert sorted(received) == await all_entry_ids(manager), "gap"
    for job in JOBS:  # every download's seqs in order, none missing
        assert [i["q"] for i in second.items if i["j"] == job] == [2, 3, 4, 5, 6]
    return kinds[0]


async def test_resume_from_the_replay_buffer(server: TestServer, manager: CacheManager) -> None:
    await _resume_exactly(server, manager)


async def test_resume_older_than_the_buffer_reads_the_streams(
    server: TestServer, manager: CacheManager
) -> None:
    # a buffer of one batch: the client's cursor is gone from it, the streams still hold it
    await _resume_exactly(server, manager, replay_batches=1)


async def test_resume_after_a_dashboard_restart(server: TestServer, manager: CacheManager) -> None:
    async with dashboard_client(server.url) as (_dash, c), sse(c) as first:
        await wait_until(lambda: _has(first.events), 5, "the snapshot")
        await apply_round(manager, 1)
        await wait_until(lambda: _count(first.items, len(JOBS)), 5, "round 1")
        last = first.last_id
    assert last is not None
    await apply_round(manager, 2)
    async with (
        dashboard_client(server.url) as (_dash, c),
        sse(c, **{"Last-Event-ID": last}) as second,
    ):
        await wait_until(lambda: _count(second.items, len(JOBS)), 5, "the gap")
        assert second.kinds()[0] == "progress"
        assert sorted(ids_of(first.items + second.items)) == await all_entry_ids(manager)


async def test_trimmed_gap_gets_a_snapshot(server: TestServer, manager: CacheManager) -> None:
    async with (
        running_dashboard(server.url, replay_batches=1) as dash,
        httpx.AsyncClient(base_url=dash.url) as c,
    ):
        async with sse(c) as first:
            await wait_until(lambda: _has(first.events), 5, "the snapshot")
            await apply_round(manager, 1)
            await wait_until(lambda: _count(first.items, len(JOBS)), 5, "round 1")
            last = first.last_id
        assert last is not None
        hub = hub_of(dash)
        for seq in (2, 3):
            await apply_round(manager, seq)
        await wait_until(_hub_read(hub, 3 * len(JOBS)), 5, "the hub read rounds 2 and 3")
        for shard in range(manager.config.download.shards):  # lose the history
            await manager.client.xtrim(manager.keys.download_events(shard), maxlen=0)
        await apply_round(manager, 4)
        await wait_until(_hub_read(hub, 4 * len(JOBS)), 5, "the hub read round 4")
        async with sse(c, **{"Last-Event-ID": last}) as second:
            await wait_until(lambda: _has(second.events), 5, "catch-up")
            snap = second.events[0]
    assert snap.event == "snapshot"  # the gap cannot be read exactly: a full state instead
    assert {d["j"]: d["q"] for d in snap.data["downloads"]} == dict.fromkeys(JOBS, 4)


async def test_clients_opening_at_once_share_one_snapshot_read(manager: CacheManager) -> None:
    hub = EventHub(manager, max_clients=10, client_queue=4, replay_batches=4, block_s=0.1)
    reads: list[int] = []
    release = asyncio.Event()

    async def read() -> bytes:
        reads.append(len(reads))
        await release.wait()
        return f"state {len(reads)}".encode()

    early = [hub.subscribe(None)[0] for _ in range(3)]
    waiting = [asyncio.create_task(hub.snapshot(sub, read)) for sub in early]
    await asyncio.sleep(0)  # the first read has started
    late = hub.subscribe(None)[0]  # registered after that read began: shares it + batches
    waiting.append(asyncio.create_task(hub.snapshot(late, read)))
    await asyncio.sleep(0)
    release.set()
    got = await asyncio.gather(*waiting)
    assert len(reads) == 1 and hub.snapshots == 1
    assert all(frame.endswith(b"data: state 1\n\n") for frame in got)
    # a client that comes a moment later gets the last snapshot plus the batches since it
    hub.publish("1-0," + ",".join(["0"] * (hub.shards - 1)), [{"i": "1-0", "h": 0}])
    later = hub.subscribe(None)[0]
    reply = await hub.snapshot(later, read)
    assert len(reads) == 1  # no new read
    snapshot_part, batch_part = reply.split(b"\n\n", 1)
    assert snapshot_part.startswith(b"id: " + hub.replay[0].cursor.replace("1-0", "0").encode())
    assert batch_part == hub.replay[-1].frame


async def test_bad_last_event_id_gets_a_snapshot(server: TestServer, manager: CacheManager) -> None:
    async with running_dashboard(server.url) as dash, httpx.AsyncClient(base_url=dash.url) as c:
        for bad in ("nonsense", "1-1", ",".join(["9999999999999-0"] * 16)):
            async with sse(c, **{"Last-Event-ID": bad}) as client:
                await wait_until(_events_of(client), 5, "catch-up")
                assert client.events[0].event == "snapshot", bad


async def test_bounded_number_of_streams(server: TestServer, raw: Redis) -> None:
    async with (
        running_dashboard(server.url, max_sse_clients=1) as dash,
        httpx.AsyncClient(base_url=dash.url) as c,
        sse(c) as one,
    ):
        await wait_until(lambda: _has(one.events), 5, "first stream")
        r = await c.get("/events/downloads")
        assert r.status_code == 503


@pytest.mark.timeout(90)
async def test_slow_client_is_dropped_and_never_blocks_the_others(
    server: TestServer, manager: CacheManager
) -> None:
    async with running_dashboard(server.url, client_queue=4) as dash:
        hub = hub_of(dash)
        host, port = dash.settings.dashboard.host_port()
        # a "browser" that opens the stream and never reads: its socket buffers fill up
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((host, dash.port or 0))
        slow.sendall(f"GET /events/downloads HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        try:
            async with httpx.AsyncClient(base_url=dash.url, timeout=10) as c, sse(c) as fast:
                await wait_until(lambda: _true(len(hub.subscribers) == 2), 5, "two streams")
                await wait_until(lambda: _has(fast.events), 5, "fast snapshot")
                seq = 0
                error = "x" * 180  # fat events fill the slow socket sooner
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 60
                while hub.dropped == 0 and loop.time() < deadline:
                    seq += 1
                    updates = [upd(f"big-{n}", seq, error=error) for n in range(200)]
                    await manager.download.bulk_update_progress(updates)
                    # the fast client keeps up all along: the reader is never held back
                    await wait_until(_items_of(fast, 200 * seq), 10, "fast client")
                assert hub.dropped == 1, "the slow client was never dropped"
                assert len(hub.subscribers) == 1  # only the fast one is still fed
                got = ids_of(fast.items)
                assert len(got) == len(set(got)) == 200 * seq
                # once it reads again, the slow client is told to resync, and its stream ends
                slow.setblocking(False)
                received = b""
                async with asyncio.timeout(20):
                    while b"event: resync" not in received:
                        chunk = await loop.sock_recv(slow, 65536)
                        assert chunk, "stream closed before the resync event"
                        received = received[-100:] + chunk
        finally:
            slow.close()
