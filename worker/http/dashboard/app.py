"""The Starlette app: routes, templates, and the lifespan that owns the connections.

Pages are rendered on the server (Jinja2, autoescaped) and each has a JSON twin under
``/api/``; the live downloads page is fed by ``/events/downloads`` (SSE, ``stream.py``).
Actions are POST only and go through ``_action_allowed`` (enabled, same origin, CSRF token).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cache.errors import CacheError
from cache.ratelog import RateLimitedLog
from cache.unreadable import Unreadable
from worker.http.dashboard import readers
from worker.http.dashboard.actions import ActionError, requeue_dead_letters, run_now
from worker.http.dashboard.failures import describe_failure
from worker.http.dashboard.security import (
    AllowedHosts,
    Guard,
    RequireToken,
    SecurityHeaders,
    bearer,
    same,
    same_origin,
    set_session_cookie,
)
from worker.http.dashboard.state import DashboardState
from worker.http.dashboard.stream import live_events
from worker.http.fleet import FleetTimeout
from worker.http.fleet.exporter import render_fleet_metrics
from worker.http.hosts import HostPolicy
from worker.job_modules import load_jobs
from worker.settings import Settings

log = logging.getLogger("seen.dashboard")

HERE = Path(__file__).resolve().parent
MAX_FORM_BYTES = 64 * 1024
SNAPSHOT_LIMIT = 10_000

Endpoint = Callable[[Request], Awaitable[Response]]
Reader = Callable[[DashboardState, Unreadable], Awaitable[Any]]
UNREADABLE_HEADER = "X-Seen-Unreadable"
"""Rows a page or JSON twin skipped because they could not be read (0 when none)."""


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["bytes"] = _bytes
    env.filters["ago"] = _ago
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.1f} %"
    env.filters["rate"] = lambda v: "-" if v is None else f"{v:g}"
    env.filters["hm"] = lambda ms: _utc("%H:%M", ms)
    env.filters["when"] = lambda ms: _utc("%Y-%m-%d %H:%M:%S", ms)
    return env


def _utc(fmt: str, ms: int | None) -> str:
    """A stored time (ms) as UTC text; "?" for one no calendar holds (a bad row's)."""
    if not ms:
        return "-"
    try:
        return time.strftime(fmt, time.gmtime(ms / 1000))
    except (OverflowError, OSError, ValueError):
        return "?"


def _bytes(count: int | None) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return "-"  # pragma: no cover


def _ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


async def read_form(request: Request) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body, at most ``MAX_FORM_BYTES``."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ActionError("form too large")
    return parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=1000)


def create_app(settings: Settings, *, allow_actions: bool | None = None) -> Starlette:
    """The ASGI app of ``seen-worker dashboard``; connections are made by its lifespan."""
    cfg = settings.dashboard
    actions_on = cfg.allow_actions if allow_actions is None else allow_actions
    token = cfg.token.get_secret_value() if cfg.token is not None else None
    metrics_token = cfg.metrics_token.get_secret_value() if cfg.metrics_token else None
    guard = Guard(token)
    hosts = HostPolicy(cfg.host_port()[0], cfg.allowed_hosts, "dashboard.allowed_hosts")
    env = _env()
    registry = load_jobs(settings)
    periodic = set(registry.slot_periods(settings))  # what "run now" may enqueue
    functions = set(registry.names())  # what a requeue may enqueue

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = await DashboardState.create(settings)
        app.state.dashboard = state
        try:
            yield
        finally:
            await state.aclose()

    def st(request: Request) -> DashboardState:
        state: DashboardState = request.app.state.dashboard
        return state

    def page(
        request: Request,
        name: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        html = env.get_template(name).render(
            csrf=guard.csrf,
            actions=actions_on,
            login=guard.required,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status, headers=headers)

    def guarded(kind: str, read: Reader) -> Endpoint:
        """A page (``kind``.html) and its JSON twin share one reader. Rows it could not read
        are skipped and counted (the page's notice, ``unreadable`` in a JSON object, the
        ``X-Seen-Unreadable`` header on both); a failed read is worded by its kind."""

        async def endpoint(request: Request) -> Response:
            state = st(request)
            skipped = state.fleet.unreadable()
            api = request.url.path.startswith("/api/")
            try:
                data = await read(state, skipped)
            except (CacheError, FleetTimeout) as exc:
                status, text = describe_failure(exc)
                if api:
                    return JSONResponse({"error": text}, status)
                return page(request, "error.html", status, error=text)
            headers = {UNREADABLE_HEADER: str(skipped.total)}
            if api:
                if isinstance(data, dict):
                    data = {**data, "unreadable": skipped.summary()}
                return JSONResponse(data, headers=headers)
            return page(
                request, f"{kind}.html", headers=headers, data=data, unreadable=skipped.describe()
            )

        return endpoint

    async def read_overview(s: DashboardState, skipped: Unreadable) -> Any:
        overview = await s.fleet.overview(skipped)
        shards = await s.fleet.downloads()
        return {
            **asdict(overview),
            "alive": overview.alive,
            "stale": overview.stale,
            "active_downloads": sum(x.active for x in shards),
            "pending_updates": sum(x.pending for x in shards),
        }

    async def read_schedules(s: DashboardState, skipped: Unreadable) -> Any:
        return [asdict(job) for job in await s.fleet.schedules(skipped)]  # with counts by state

    async def read_dead(s: DashboardState, skipped: Unreadable) -> Any:
        dead = await s.fleet.dead_letters(cfg.page_limit, cfg.payload_chars, skipped)
        return readers.dead_letter_page(dead)

    async def read_locks(s: DashboardState, skipped: Unreadable) -> Any:
        return [asdict(lock) for lock in await s.fleet.locks(cfg.page_limit, skipped)]

    async def read_downloads(s: DashboardState, skipped: Unreadable) -> Any:
        rows = await s.manager.download.get_active_downloads(
            limit=cfg.page_limit, unreadable=skipped
        )
        return {"downloads": [p.model_dump(mode="json") for p in rows]}

    async def downloads_page(request: Request) -> Response:
        return page(request, "downloads.html")

    async def events(request: Request) -> Response:
        state = st(request)
        if len(state.hub.subscribers) >= cfg.max_sse_clients:
            return PlainTextResponse("too many live streams\n", 503, {"Retry-After": "5"})
        last = request.headers.get("last-event-id") or request.query_params.get("last")
        body = live_events(
            state.hub,
            state.manager,
            state.fleet.unreadable,
            last,
            heartbeat=cfg.heartbeat,
            gap_limit=cfg.gap_limit,
            snapshot_limit=SNAPSHOT_LIMIT,
        )
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    # -- login ------------------------------------------------------------------------------
    async def login_form(request: Request) -> Response:
        if not guard.required:
            return RedirectResponse("/", 303)
        return page(request, "login.html")

    async def login(request: Request) -> Response:
        if not guard.required:
            return RedirectResponse("/", 303)
        why = same_origin(request, hosts)
        if why is not None:
            return page(request, "login.html", 403, error=f"refused: {why}")
        try:
            form = await read_form(request)
        except ActionError as exc:
            return page(request, "login.html", 400, error=str(exc))
        given = (form.get("token") or [""])[0].strip()
        if not guard.check_token(given):
            log.warning("dashboard: failed login from %s", _who(request))
            return page(request, "login.html", 403, error="wrong token")
        response = RedirectResponse("/", 303)
        set_session_cookie(response, guard, secure=request.url.scheme == "https")
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login" if guard.required else "/", 303)
        response.delete_cookie("seen_dashboard", path="/")
        return response

    # -- actions ----------------------------------------------------------------------------
    async def _action_allowed(
        request: Request,
    ) -> tuple[dict[str, list[str]] | None, Response | None]:
        if not actions_on:
            return None, _refuse(
                request, 403, "read-only dashboard (start it with --allow-actions)"
            )
        why = same_origin(request, hosts)
        if why is not None:
            return None, _refuse(request, 403, f"refused: {why}")
        try:
            form = await read_form(request)
        except ActionError as exc:
            return None, _refuse(request, 400, str(exc))
        if not guard.check_csrf(next(iter(form.get("csrf", [])), None)):
            return None, _refuse(request, 403, "refused: missing or wrong CSRF token")
        return form, None

    def _refuse(request: Request, status: int, reason: str) -> Response:
        path = request.url.path
        log.warning("dashboard: action %s from %s refused: %s", path, _who(request), reason)
        return PlainTextResponse(reason + "\n", status)

    async def requeue(request: Request) -> Response:
        form, refusal = await _action_allowed(request)
        if refusal is not None or form is None:
            return refusal or _refuse(request, 400, "no form")
        state = st(request)
        try:
            result = await requeue_dead_letters(
                state.manager,
                state.queue,
                settings.queue.name,
                form.get("id", []),
                known=functions,
                limit=cfg.max_action_items,
                who=_who(request),
            )
        except ActionError as exc:
            return _refuse(request, 400, str(exc))
        except CacheError as exc:
            status, text = describe_failure(exc)
            return PlainTextResponse(text + "\n", status)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"done": result.done, "refused": result.refused})
        return RedirectResponse("/dead-letters?done=" + str(len(result.done)), 303)

    async def run(request: Request) -> Response:
        form, refusal = await _action_allowed(request)
        if refusal is not None or form is None:
            return refusal or _refuse(request, 400, "no form")
        name = (form.get("name") or [""])[0]
        try:
            job_id = await run_now(
                st(request).queue, settings.queue.name, name, known=periodic, who=_who(request)
            )
        except ActionError as exc:
            return _refuse(request, 400, str(exc))
        except CacheError as exc:
            status, text = describe_failure(exc)
            return PlainTextResponse(text + "\n", status)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"job_id": job_id})
        return RedirectResponse("/schedules", 303)

    # -- probes -----------------------------------------------------------------------------
    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def metrics(request: Request) -> Response:
        if metrics_token is not None:
            given = bearer(request.headers)
            if given is None or not same(given, metrics_token):
                return PlainTextResponse(
                    "bearer token required\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}
                )
        body, content_type = await render_fleet_metrics(
            st(request).fleet, request.headers.get("accept")
        )
        return Response(body, media_type=content_type)

    routes = [
        Route("/", guarded("overview", read_overview)),
        Route("/api/overview", guarded("overview", read_overview)),
        Route("/downloads", downloads_page),
        Route("/api/downloads", guarded("downloads", read_downloads)),
        Route("/events/downloads", events),
        Route("/schedules", guarded("schedules", read_schedules)),
        Route("/api/schedules", guarded("schedules", read_schedules)),
        Route("/dead-letters", guarded("deadletters", read_dead)),
        Route("/api/dead-letters", guarded("deadletters", read_dead)),
        Route("/locks", guarded("locks", read_locks)),
        Route("/api/locks", guarded("locks", read_locks)),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/actions/requeue", requeue, methods=["POST"]),
        Route("/actions/run", run, methods=["POST"]),
        Route("/livez", livez),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(RequireToken, guard=guard)
    app.add_middleware(AllowedHosts, policy=hosts, log=RateLimitedLog(log))
    app.add_middleware(SecurityHeaders)
    return app


def _who(request: Request) -> str:
    return request.client.host if request.client else "?"
