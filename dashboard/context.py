"""``DashboardContext``: what every endpoint of one dashboard process needs, made once.

``create_app`` builds it from the settings (nothing connects here: the connections are the
lifespan's ``DashboardState``) and puts it on ``app.state.context``; the module-level
endpoints read it with ``context(request)`` and the connections with ``state(request)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from dashboard.notices import Notices
from dashboard.security import Guard
from dashboard.state import DashboardState
from jobs.wire.layout import QueueLayout
from worker.http.hosts import HostPolicy
from worker.job_modules import load_jobs
from worker.settings import DashboardSettings, Settings


@dataclass
class DashboardContext:
    settings: Settings
    actions: bool
    """Actions are allowed (``--allow-actions``)."""
    guard: Guard
    hosts: HostPolicy
    metrics_token: str | None
    layout: QueueLayout
    periodic: frozenset[str]
    """What "run now" may enqueue: the periodic jobs that claim slots."""
    functions: frozenset[str]
    """What a requeue may enqueue: every job this deployment runs."""
    max_tries: dict[str, int]
    """Tries of each function (the job page's "tries n of m")."""
    notices: Notices = field(default_factory=Notices)

    @property
    def cfg(self) -> DashboardSettings:
        return self.settings.dashboard

    @classmethod
    def of(cls, settings: Settings, allow_actions: bool | None) -> DashboardContext:
        cfg = settings.dashboard
        token = cfg.token.get_secret_value() if cfg.token is not None else None
        registry = load_jobs(settings)
        resolved = registry.resolve(settings)
        return cls(
            settings=settings,
            actions=cfg.allow_actions if allow_actions is None else allow_actions,
            guard=Guard(token),
            hosts=HostPolicy(cfg.host_port()[0], cfg.allowed_hosts, "dashboard.allowed_hosts"),
            metrics_token=cfg.metrics_token.get_secret_value() if cfg.metrics_token else None,
            layout=settings.queue.key_layout(),
            periodic=frozenset(registry.slot_periods(settings)),
            functions=frozenset(registry.names()),
            max_tries={
                j.name: j.max_tries if j.max_tries is not None else settings.worker.max_tries
                for j in resolved
            },
        )


def context(request: Request) -> DashboardContext:
    found: DashboardContext = request.app.state.context
    return found


def state(request: Request) -> DashboardState:
    found: DashboardState = request.app.state.dashboard
    return found


def who(request: Request) -> str:
    """The client address an action is logged with."""
    return request.client.host if request.client else "?"
