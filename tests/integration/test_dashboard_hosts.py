"""DNS rebinding: a page on a foreign name that resolves to 127.0.0.1 must get nothing.

The attack (issue 18, item 2): the browser of someone running the default dashboard (loopback,
no token) opens ``http://evil.example:<port>/`` after ``evil.example`` was made to resolve to
127.0.0.1. Every request then carries ``Host: evil.example:<port>``, and the browser calls it
same-origin (``Origin: http://evil.example:<port>``, ``Sec-Fetch-Site: same-origin``). Here a
real dashboard (uvicorn) and a real worker HTTP server get exactly those requests.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from cache.manager import CacheManager
from jobs.deadletter import make_dead_letter, push_dead_letters
from tests.conftest import TestServer
from tests.support.dashboard import running_dashboard
from worker.http.server import HttpServer
from worker.settings import load_settings

pytestmark = pytest.mark.integration

EVIL = "evil.example"
READS = [
    "/",
    "/downloads",
    "/schedules",
    "/dead-letters",
    "/locks",
    "/api/overview",
    "/api/downloads",
    "/api/schedules",
    "/api/dead-letters",
    "/api/locks",
    "/login",
    "/livez",
    "/metrics",
    "/static/dashboard.js",
]


def rebound(port: int, name: str = EVIL) -> dict[str, str]:
    """What a browser sends from a page on ``name`` (rebound to loopback)."""
    return {
        "Host": f"{name}:{port}",
        "Origin": f"http://{name}:{port}",
        "Sec-Fetch-Site": "same-origin",
    }


async def three_dead_letters(manager: CacheManager) -> None:
    letters = [
        make_dead_letter(
            manager,
            job_id=f"j{n}",
            function="update_progress",
            reason="owner",
            payload={"job_id": f"dl-{n}", "user_id": "u", "status": "downloading", "seq": 1},
        )
        for n in range(3)
    ]
    await push_dead_letters(manager, letters)


def csrf_of(page: str) -> str:
    return page.split('name="csrf" content="', 1)[1].split('"', 1)[0]


def refused(response: httpx.Response, csrf: str) -> None:
    """A short plain refusal: no page, no JSON, no CSRF token."""
    assert response.status_code == 421, (response.request.url, response.status_code)
    assert response.headers["content-type"].startswith("text/plain")
    assert csrf not in response.text and "<html" not in response.text.lower()
    assert "allowed_hosts" in response.text
    assert len(response.text) < 300


async def test_rebound_pages_json_sse_and_actions_are_refused(
    server: TestServer, manager: CacheManager
) -> None:
    await three_dead_letters(manager)
    key = manager.keys.dead_letter()
    async with (
        running_dashboard(server.url, allow_actions=True) as dash,
        httpx.AsyncClient(base_url=dash.url, timeout=10) as c,
    ):
        assert dash.port is not None
        csrf = csrf_of((await c.get("/dead-letters")).text)  # what only our own pages know
        ids = [
            x["id"]
            for g in (await c.get("/api/dead-letters")).json()["groups"]
            for x in g["letters"]
        ]
        evil = rebound(dash.port)
        for path in READS:
            refused(await c.get(path, headers=evil), csrf)
        async with c.stream("GET", "/events/downloads", headers=evil) as r:
            body = (await r.aread()).decode()
            assert r.status_code == 421 and "event:" not in body, body
        for path, form in (
            ("/actions/requeue", {"id": ids, "csrf": csrf}),
            ("/actions/run", {"name": "log_cache_stats", "csrf": csrf}),
            ("/login", {"token": "x"}),
            ("/logout", {}),
        ):
            refused(await c.post(path, data=form, headers=evil), csrf)
        # without a port, in capitals, with a trailing dot: still a foreign name
        for host in (EVIL, "EVIL.EXAMPLE", f"{EVIL}.:{dash.port}", f"localhost.{EVIL}"):
            refused(await c.get("/api/overview", headers={"Host": host}), csrf)
    assert await manager.client.llen(key) == 3  # type: ignore[misc]
    assert await manager.client.zcard("arq:queue") == 0


async def test_loopback_names_ip_literals_and_configured_names_are_served(
    server: TestServer, manager: CacheManager
) -> None:
    await three_dead_letters(manager)
    async with (
        running_dashboard(
            server.url, allow_actions=True, allowed_hosts=["dash.example.com", "ops.example:8443"]
        ) as dash,
        httpx.AsyncClient(base_url=dash.url, timeout=10) as c,
    ):
        port = dash.port
        for host in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            f"LocalHost.:{port}",
            f"[::1]:{port}",
            f"10.1.2.3:{port}",  # a probe's pod IP: an IP literal cannot be rebound
            "[fd00::7]:9470",
            "dash.example.com",  # behind a proxy: the public name, any port
            "dash.example.com:443",
            "ops.example:8443",
        ):
            r = await c.get("/api/overview", headers={"Host": host})
            assert r.status_code == 200, (host, r.text)
        assert (await c.get("/", headers={"Host": "ops.example:8444"})).status_code == 421
        csrf = csrf_of((await c.get("/")).text)
        data = {"name": "log_cache_stats", "csrf": csrf}
        ok = [
            # a TLS proxy: Host rewritten to ours, Origin the public name
            {"Host": f"127.0.0.1:{port}", "Origin": "https://dash.example.com"},
            {"Host": "dash.example.com", "Origin": "https://dash.example.com"},
            {"Host": f"10.1.2.3:{port}", "Origin": f"http://10.1.2.3:{port}"},
            {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"},
        ]
        for headers in ok:
            r = await c.post("/actions/run", data=data, headers=headers)
            assert r.status_code == 303, (headers, r.text)
        foreign_origin = [
            {"Host": f"127.0.0.1:{port}", "Origin": f"http://{EVIL}:{port}"},
            {"Host": f"127.0.0.1:{port}", "Origin": f"http://10.9.9.9:{port}"},  # not this Host
            {"Host": f"127.0.0.1:{port}", "Origin": "http://localhost:3000"},  # another port
            {"Host": f"127.0.0.1:{port}", "Origin": "https://ops.example:8444"},
        ]
        for headers in foreign_origin:
            r = await c.post("/actions/run", data=data, headers=headers)
            assert r.status_code == 403 and "Origin" in r.text, (headers, r.text)
    assert await manager.client.zcard("arq:queue") == len(ok)


async def worker_server(**http: object) -> HttpServer:
    settings = load_settings(http={"addr": "127.0.0.1:0", **http})
    server = HttpServer(settings.http, CollectorRegistry(), lambda: None)
    await server.start()
    return server


async def test_worker_http_server_refuses_a_rebound_host() -> None:
    server = await worker_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as c:
            for path in ("/metrics", "/livez", "/readyz"):
                r = await c.get(path, headers=rebound(server.port or 0))
                assert r.status_code == 421, (path, r.text)
                assert r.text.startswith("misdirected request") and "# HELP" not in r.text
                assert "http.allowed_hosts" in r.text
    finally:
        await server.aclose()


async def test_worker_http_server_serves_loopback_ip_literals_and_configured_names() -> None:
    server = await worker_server(allowed_hosts=["metrics.internal"])
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as c:
            for path in ("/metrics", "/livez", "/readyz"):
                for host in (
                    f"127.0.0.1:{server.port}",
                    f"localhost:{server.port}",
                    "10.244.1.17:9464",  # kubelet: Host = pod IP:port
                    "[fd00::17]:9464",
                    "metrics.internal:9464",
                ):
                    r = await c.get(path, headers={"Host": host})
                    assert r.status_code == 200, (path, host, r.text)
                r = await c.get(path, headers={"Host": "metrics.internal.evil.example"})
                assert r.status_code == 421
    finally:
        await server.aclose()
