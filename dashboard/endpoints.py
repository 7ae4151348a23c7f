"""The endpoints that are not pages: the live stream, the history the graphs draw, login and
logout, ``/metrics`` and ``/livez``. Module-level functions; what they need is on
``app.state`` (``context``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from cache.clock import wall_ms
from cache.errors import CacheError
from dashboard.context import context, state, who
from dashboard.exporter import render_fleet_metrics
from dashboard.failures import describe_failure
from dashboard.forms import FormError, read_form
from dashboard.pages import NAV
from dashboard.readers import verdict
from dashboard.render import render
from dashboard.security import bearer, same, same_origin, set_session_cookie
from dashboard.stream import live_events
from jobs.history import read_history
from worker.fleet import FleetTimeout

log = logging.getLogger("seen.dashboard")

SNAPSHOT_LIMIT = 10_000


async def events(request: Request) -> Response:
    """``/events/downloads``: the live downloads stream (SSE, ``stream.py``)."""
    s, cfg = state(request), context(request).cfg
    if len(s.hub.subscribers) >= cfg.max_sse_clients:
        return PlainTextResponse("too many live streams\n", 503, {"Retry-After": "5"})
    last = request.headers.get("last-event-id") or request.query_params.get("last")
    body = live_events(
        s.hub,
        s.manager,
        s.fleet.unreadable,
        last,
        heartbeat=cfg.heartbeat,
        gap_limit=cfg.gap_limit,
        snapshot_limit=SNAPSHOT_LIMIT,
    )
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


async def login_form(request: Request) -> Response:
    if not context(request).guard.required:
        return RedirectResponse("/", 303)
    return render(request, "login.html", pages=NAV)


async def login(request: Request) -> Response:
    ctx = context(request)
    guard = ctx.guard
    if not guard.required:
        return RedirectResponse("/", 303)
    why = same_origin(request, ctx.hosts)
    if why is not None:
        return render(request, "login.html", 403, error=f"refused: {why}", pages=NAV)
    try:
        form = await read_form(request)
    except FormError as exc:
        return render(request, "login.html", 400, error=str(exc), pages=NAV)
    given = (form.get("token") or [""])[0].strip()
    if not guard.check_token(given):
        log.warning("dashboard: failed login from %s", who(request))
        return render(request, "login.html", 403, error="wrong token", pages=NAV)
    response = RedirectResponse("/", 303)
    set_session_cookie(response, guard, secure=request.url.scheme == "https")
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login" if context(request).guard.required else "/", 303)
    response.delete_cookie("seen_dashboard", path="/")
    return response


async def history(request: Request) -> Response:
    """``/api/history?range=hour|day``: the fleet's history (``jobs.history``), the graphs'."""
    s = state(request)
    wanted = request.query_params.get("range", "hour")
    try:
        found = await read_history(s.queue, s.manager.keys, wanted, wall_ms())
    except ValueError as exc:
        return JSONResponse({"error": f"bad request: {exc}"}, 400)
    except CacheError as exc:
        status, text = describe_failure(exc)
        return JSONResponse({"error": text}, status)
    return JSONResponse(asdict(found), headers={"Cache-Control": "no-store"})


async def health(request: Request) -> Response:
    """``/api/health``: the verdict (``seen-worker health --json``'s), the banner's."""
    try:
        found = await verdict(request)
    except (CacheError, FleetTimeout) as exc:
        status, text = describe_failure(exc)
        return JSONResponse({"error": text}, status)
    return JSONResponse(found.model_dump(mode="json"), 200 if found.healthy else 503)


async def livez(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def metrics(request: Request) -> Response:
    """The fleet's series (``exporter``), behind ``dashboard.metrics_token`` when set."""
    token = context(request).metrics_token
    if token is not None:
        given = bearer(request.headers)
        if given is None or not same(given, token):
            return PlainTextResponse(
                "bearer token required\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}
            )
    body, content_type = await render_fleet_metrics(
        state(request).fleet, request.headers.get("accept")
    )
    return Response(body, media_type=content_type)
