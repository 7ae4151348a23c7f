"""The Starlette app: the routes (the table of pages, the actions, the stream, the probes), the
middlewares, and the lifespan that owns the connections.

Pages are rendered on the server (``render``: Jinja2, autoescaped), each with a JSON twin under
``/api/`` (``pages.PAGES``); the live downloads page is fed by ``/events/downloads`` (SSE,
``stream.py``). Actions are POST only and go through ``actions.allowed`` (enabled, same origin,
CSRF token). Every endpoint is a module-level function; what it needs is made once here
(``DashboardContext`` on ``app.state.context``) and the connections by the lifespan
(``DashboardState`` on ``app.state.dashboard``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from cache.ratelog import RateLimitedLog
from dashboard import actions, endpoints
from dashboard.context import DashboardContext
from dashboard.pages import PAGES
from dashboard.render import HERE
from dashboard.security import AllowedHosts, RequireToken, SecurityHeaders
from dashboard.state import DashboardState
from worker.settings import Settings

log = logging.getLogger("seen.dashboard")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    context: DashboardContext = app.state.context
    dashboard = await DashboardState.create(context.settings)
    app.state.dashboard = dashboard
    try:
        yield
    finally:
        await dashboard.aclose()


def routes() -> list[BaseRoute]:
    found: list[BaseRoute] = []
    for page in PAGES:
        found.append(Route(page.path, page.endpoint, methods=["GET"], name=page.name))
        if page.api is not None:
            found.append(Route(page.api, page.endpoint, methods=["GET"]))
    post = ["POST"]
    return [
        *found,
        Route("/events/downloads", endpoints.events),
        Route("/api/history", endpoints.history, methods=["GET"]),
        Route("/api/health", endpoints.health, methods=["GET"]),
        Route("/login", endpoints.login_form, methods=["GET"]),
        Route("/login", endpoints.login, methods=post),
        Route("/logout", endpoints.logout, methods=post),
        Route("/actions/requeue", actions.requeue, methods=post),
        Route("/actions/run", actions.run, methods=post),
        Route("/actions/jobs/{action}", actions.job_action, methods=post),
        Route("/actions/queue/{action}", actions.queue_action, methods=post),
        Route("/livez", endpoints.livez),
        Route("/metrics", endpoints.metrics),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def create_app(settings: Settings, *, allow_actions: bool | None = None) -> Starlette:
    """The ASGI app of ``seen-worker dashboard``; connections are made by its lifespan."""
    context = DashboardContext.of(settings, allow_actions)
    app = Starlette(routes=routes(), lifespan=lifespan)
    app.state.context = context
    app.add_middleware(RequireToken, guard=context.guard)
    app.add_middleware(AllowedHosts, policy=context.hosts, log=RateLimitedLog(log))
    app.add_middleware(SecurityHeaders)
    return app
