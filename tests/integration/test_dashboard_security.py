"""The dashboard's security by default, over real HTTP (uvicorn) on the test server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from cache.manager import CacheManager
from dashboard.security import CSP
from dashboard.server import DashboardConfigError, DashboardServer
from jobs.deadletter import letter_id, make_dead_letter, push_dead_letters
from jobs.serializer import parse_record
from tests.conftest import TestServer
from tests.support.dashboard import (
    METRICS_TOKEN,
    TOKEN,
    dashboard_settings,
    running_dashboard,
)
from tests.support.layout import job_key, queue_length
from tests.support.processes import run_cli
from worker.settings import SettingsError

PAGES = ["/", "/downloads", "/schedules", "/dead-letters", "/locks", "/api/overview"]


async def test_security_headers_on_every_kind_of_response(server: TestServer, raw: Redis) -> None:
    async with running_dashboard(server.url) as dash, httpx.AsyncClient(base_url=dash.url) as c:
        for path in [*PAGES, "/static/dashboard.js", "/nope"]:
            r = await c.get(path, headers={"Origin": "https://evil.example"})
            assert r.headers["content-security-policy"] == CSP, path
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert not any(h.startswith("access-control-") for h in r.headers), path
        async with c.stream("GET", "/events/downloads") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["content-security-policy"] == CSP
        page = (await c.get("/downloads")).text
        assert "<script>" not in page and "style=" not in page  # no inline code (strict CSP)


async def test_payloads_are_escaped_and_truncated(
    server: TestServer, manager: CacheManager
) -> None:
    evil = "<script>alert(1)</script>" + "x" * 5000
    letter = make_dead_letter(
        manager, job_id="j1", function="update_progress", reason="bad", payload=evil
    )
    await push_dead_letters(manager, [letter])
    async with (
        running_dashboard(server.url, payload_chars=100) as dash,
        httpx.AsyncClient(base_url=dash.url) as c,
    ):
        html = (await c.get("/dead-letters")).text
        data = (await c.get("/api/dead-letters")).json()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    shown = data["groups"][0]["letters"][0]
    assert len(shown["payload"]) == 100 and shown["truncated"] is True


async def test_token_required_refused_and_accepted(server: TestServer, raw: Redis) -> None:
    async with (
        running_dashboard(server.url, token=TOKEN) as dash,
        httpx.AsyncClient(base_url=dash.url) as c,
    ):
        assert (await c.get("/api/overview")).status_code == 401
        assert (await c.get("/events/downloads")).status_code == 401
        r = await c.get("/", headers={"Accept": "text/html"})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        wrong = {"Authorization": "Bearer " + "x" * 43}
        assert (await c.get("/api/overview", headers=wrong)).status_code == 403
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert (await c.get("/api/overview", headers=good)).status_code == 200
        assert (await c.get("/static/dashboard.css")).status_code == 200  # public
        # the login form: wrong token refused, right one sets a strict session cookie
        r = await c.post("/login", data={"token": "nope"})
        assert r.status_code == 403 and "wrong token" in r.text
        assert "set-cookie" not in r.headers
        r = await c.post("/login", data={"token": TOKEN})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert TOKEN.lower() not in cookie  # the cookie is derived, never the token
        assert (await c.get("/api/overview")).status_code == 200  # the cookie jar has it


async def test_metrics_has_its_own_token(server: TestServer, raw: Redis) -> None:
    async with (
        running_dashboard(server.url, token=TOKEN, metrics_token=METRICS_TOKEN) as dash,
        httpx.AsyncClient(base_url=dash.url) as c,
    ):
        assert (await c.get("/metrics")).status_code == 401
        bad = {"Authorization": f"Bearer {TOKEN}"}  # the dashboard token is not the metrics one
        assert (await c.get("/metrics", headers=bad)).status_code == 401
        ok = await c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert ok.status_code == 200, ok.text


def test_non_loopback_bind_refused_without_tokens(server: TestServer) -> None:
    with pytest.raises(DashboardConfigError, match="token"):
        DashboardServer(dashboard_settings(server.url, addr="0.0.0.0:0"))
    with pytest.raises(DashboardConfigError, match="METRICS_TOKEN"):
        DashboardServer(dashboard_settings(server.url, addr="0.0.0.0:0", token=TOKEN))
    DashboardServer(
        dashboard_settings(server.url, addr="0.0.0.0:0", token=TOKEN, metrics_token=METRICS_TOKEN)
    )
    with pytest.raises(SettingsError, match="32 bytes"):
        dashboard_settings(server.url, token="short")


def dashboard_cli(server: TestServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``seen-worker dashboard ARGS`` against ``server``, in a clean environment."""
    return run_cli(
        "dashboard", *args, env={"SEEN_CACHE_ADDR": server.addr, "PATH": "/usr/bin:/bin"}
    )


def test_cli_refuses_non_loopback_without_token(server: TestServer) -> None:
    out = dashboard_cli(server, "--addr", "0.0.0.0:0")
    assert out.returncode == 2, out
    assert "not a loopback address" in out.stderr
    new = dashboard_cli(server, "--new-token")
    assert new.returncode == 0, new
    token = new.stdout.strip()
    assert len(token) >= 43


def test_cli_token_file_is_checked(server: TestServer, tmp_path: Path) -> None:
    short = tmp_path / "short.token"
    short.write_text("too-short\n")
    out = dashboard_cli(server, "--token-file", str(short))
    assert out.returncode == 2 and "at least 32 bytes" in out.stderr, out
    missing = dashboard_cli(server, "--token-file", str(tmp_path / "no"))
    assert missing.returncode == 2 and "cannot read token file" in missing.stderr, missing


def _letter_payload(manager: CacheManager) -> str:
    return json.dumps({"job_id": "dl-1", "user_id": "u2", "status": "downloading", "seq": 3})


async def _one_dead_letter(manager: CacheManager) -> str:
    update = json.loads(_letter_payload(manager))
    letter = make_dead_letter(
        manager, job_id="j1", function="update_progress", reason="owner", payload=update
    )
    await push_dead_letters(manager, [letter])
    return letter.model_dump_json()


async def _dead_id(c: httpx.AsyncClient) -> str:
    data = (await c.get("/api/dead-letters")).json()
    ident: str = data["groups"][0]["letters"][0]["id"]
    return ident


async def test_actions_refused_when_read_only(server: TestServer, manager: CacheManager) -> None:
    await _one_dead_letter(manager)
    async with running_dashboard(server.url) as dash, httpx.AsyncClient(base_url=dash.url) as c:
        ident = await _dead_id(c)
        page = (await c.get("/")).text
        csrf = page.split('name="csrf" content="', 1)[1].split('"', 1)[0]
        r = await c.post("/actions/requeue", data={"id": ident, "csrf": csrf})
        assert r.status_code == 403 and "read-only" in r.text
        assert (await c.get("/actions/requeue")).status_code == 405  # POST only
    assert await manager.client.llen(manager.keys.dead_letter()) == 1  # type: ignore[misc]


async def test_actions_need_csrf_and_own_origin(server: TestServer, manager: CacheManager) -> None:
    await _one_dead_letter(manager)
    async with (
        running_dashboard(server.url, allow_actions=True, max_action_items=2) as dash,
        httpx.AsyncClient(base_url=dash.url) as c,
    ):
        ident = await _dead_id(c)
        page = (await c.get("/dead-letters")).text
        assert 'name="id"' in page  # checkboxes only with actions on
        csrf = page.split('name="csrf" content="', 1)[1].split('"', 1)[0]
        own = dash.url.rstrip("/")
        refused = [
            ({"id": ident}, {"Origin": own}),  # no CSRF token
            ({"id": ident, "csrf": "x" * 43}, {"Origin": own}),  # wrong CSRF token
            ({"id": ident, "csrf": csrf}, {"Origin": "https://evil.example"}),
            ({"id": ident, "csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
            ({"id": ident, "csrf": csrf}, {"Origin": "null"}),
        ]
        for form, headers in refused:
            r = await c.post("/actions/requeue", data=form, headers=headers)
            assert r.status_code == 403, (form, headers, r.text)
        assert await manager.client.llen(manager.keys.dead_letter()) == 1  # type: ignore[misc]
        assert await queue_length(manager.client) == 0
        too_many = {"id": [ident, "a", "b"], "csrf": csrf}
        r = await c.post("/actions/requeue", data=too_many, headers={"Origin": own})
        assert r.status_code == 400 and "at most 2" in r.text
        r = await c.post(
            "/actions/requeue",
            data={"id": ident, "csrf": csrf},
            headers={
                "Origin": own,
                "Sec-Fetch-Site": "same-origin",
                "Accept": "application/json",
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["done"] == [ident]
        # Chromium's same-origin form post under Referrer-Policy: no-referrer
        browser = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
        r = await c.post(
            "/actions/run",
            data={"name": "log_cache_stats", "csrf": csrf},
            headers={**browser, "Accept": "application/json"},
        )
        assert r.status_code == 200, r.text
        r = await c.post(
            "/actions/run", data={"name": "flushall", "csrf": csrf}, headers={"Origin": own}
        )
        assert r.status_code == 400
    assert await manager.client.llen(manager.keys.dead_letter()) == 0  # type: ignore[misc]
    assert await queue_length(manager.client) == 2  # the requeued update and the manual run


async def test_requeue_by_the_shown_id_takes_exactly_that_entry(
    server: TestServer, manager: CacheManager
) -> None:
    updates = [
        {"job_id": f"dl-{n}", "user_id": "u2", "status": "downloading", "seq": n} for n in (1, 2)
    ]
    letters = [
        make_dead_letter(
            manager, job_id=f"j{n}", function="update_progress", reason="owner", payload=u
        )
        for n, u in enumerate(updates)
    ]
    await push_dead_letters(manager, letters)  # newest first: letters[1], letters[0]
    key = manager.keys.dead_letter()
    stored = await manager.client.lrange(key, 0, -1)  # type: ignore[misc]
    async with (
        running_dashboard(server.url, allow_actions=True) as dash,
        httpx.AsyncClient(base_url=dash.url) as c,
    ):
        shown = (await c.get("/api/dead-letters")).json()["groups"][0]["letters"]
        again = (await c.get("/api/dead-letters")).json()["groups"][0]["letters"]
        ids = [row["id"] for row in shown]
        assert ids == [row["id"] for row in again] == [letter_id(x) for x in stored]
        assert len(set(ids)) == 2
        html = (await c.get("/dead-letters")).text
        assert all(f'data-id="{i}"' in html for i in ids)
        csrf = html.split('name="csrf" content="', 1)[1].split('"', 1)[0]
        older = next(row for row in shown if row["job_id"] == "j0")
        r = await c.post(
            "/actions/requeue",
            data={"id": older["id"], "csrf": csrf},
            headers={"Origin": dash.url.rstrip("/"), "Accept": "application/json"},
        )
        assert r.status_code == 200, r.text
        assert (r.json()["done"], r.json()["refused"]) == ([older["id"]], {})
        (result,) = r.json()["results"]
        assert result["new_id"] == "j0" and "its original id" in result["message"]
        left = (await c.get("/api/dead-letters")).json()["groups"][0]["letters"]
    assert [row["job_id"] for row in left] == ["j1"]
    assert await manager.client.lrange(key, 0, -1) == [stored[0]]  # type: ignore[misc]
    assert await queue_length(manager.client) == 1
    record = parse_record(await manager.client.get(job_key("j0")))
    assert (record["f"], record["a"]) == ("update_progress", [updates[0]])


async def test_unreachable_store_is_a_clear_start_error() -> None:
    from dashboard.server import DashboardStartError
    from worker.embedded import free_port

    server = DashboardServer(dashboard_settings(f"127.0.0.1:{free_port()}"))
    with pytest.raises(DashboardStartError, match="did not start"):
        await server.start()
    await server.aclose()
