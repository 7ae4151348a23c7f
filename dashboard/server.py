"""Running the dashboard: the bind rules, then uvicorn on the current event loop.

Bind rules (``check_bind``), checked before anything listens:

- a loopback address (127.0.0.0/8, ::1, localhost) needs nothing;
- any other address refuses to start without ``dashboard.token`` (>= 32 bytes) **and** without
  ``dashboard.metrics_token``: ``/metrics`` is never silently left open.

``DashboardServer`` is the one owner of the listening server: ``start()`` returns once it
listens (bounded), ``aclose()`` ends the live streams, then stops it within
``dashboard.shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

import uvicorn

from dashboard.app import create_app
from worker.http.server import is_loopback
from worker.settings import Settings, load_settings

log = logging.getLogger("seen.dashboard")

START_WITHIN_S = 30.0


class DashboardConfigError(ValueError):
    """The dashboard refuses to start with this configuration; the message says why."""


class DashboardStartError(RuntimeError):
    """The server did not start: the address is taken, or the stores did not answer."""


def check_bind(settings: Settings) -> None:
    cfg = settings.dashboard
    host, _port = cfg.host_port()
    if is_loopback(host):
        return
    if cfg.token is None:
        raise DashboardConfigError(
            f"dashboard.addr {cfg.addr} is not a loopback address: set a token "
            "(SEEN_DASHBOARD_TOKEN or --token-file; make one with "
            "`seen-worker dashboard --new-token`) or bind 127.0.0.1"
        )
    if cfg.metrics_token is None:
        raise DashboardConfigError(
            f"dashboard.addr {cfg.addr} is not a loopback address: set "
            "SEEN_DASHBOARD_METRICS_TOKEN for /metrics (it is never left open off loopback)"
        )


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal capture: the caller owns SIGINT/SIGTERM
    (``run_dashboard``, the demo, tests), and stops it with ``DashboardServer.aclose``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DashboardServer:
    def __init__(self, settings: Settings, *, allow_actions: bool | None = None) -> None:
        check_bind(settings)
        self.settings = settings
        self.app = create_app(settings, allow_actions=allow_actions)
        host, port = settings.dashboard.host_port()
        self.config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            lifespan="on",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=max(1, round(settings.dashboard.shutdown_timeout)),
        )
        self.server = _Server(self.config)
        self.port: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host, _ = self.settings.dashboard.host_port()
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    async def start(self) -> None:
        """Listen; raises when the server (or its lifespan: the store) fails to start."""
        self._task = asyncio.create_task(self._serve(), name="dashboard-server")
        async with asyncio.timeout(START_WITHIN_S):
            while not self.server.started:
                if self._task.done():
                    task, self._task = self._task, None
                    await task  # raises DashboardStartError
                    raise DashboardStartError("dashboard server ended during start-up")
                await asyncio.sleep(0.02)
        sockets = [s for srv in self.server.servers for s in srv.sockets]
        self.port = sockets[0].getsockname()[1]
        log.info("dashboard on %s", self.url)

    async def _serve(self) -> None:
        """uvicorn's ``serve``, with its ``sys.exit`` on a failed start turned into an error
        (a SystemExit escaping a task would end the whole event loop)."""
        try:
            await self.server.serve()
        except SystemExit:
            raise DashboardStartError(
                f"dashboard did not start on {self.settings.dashboard.addr} "
                "(address in use, or the stores did not answer: see the log above)"
            ) from None

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        state = getattr(self.app.state, "dashboard", None)
        if state is not None:
            state.hub.end_streams()
        self.server.should_exit = True
        limit = self.settings.dashboard.shutdown_timeout + 2.0
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, SystemExit):
            async with asyncio.timeout(limit):
                await task
        if not task.done():
            task.cancel()


async def start_beside(settings: Settings, say: Callable[[str], None]) -> DashboardServer | None:
    """A dashboard beside ``seen-worker demo`` on its store: ``dashboard.addr``, else any free
    loopback port; None (said why) when neither starts."""
    for addr in (settings.dashboard.addr, "127.0.0.1:0"):
        local = load_settings(cache={"addr": settings.cache.addr}, dashboard={"addr": addr})
        server = DashboardServer(local)
        try:
            await server.start()
        except (OSError, RuntimeError) as exc:
            say(f"[dim]dashboard not on {addr}: {exc}[/dim]")
            await server.aclose()
            continue
        say(f"dashboard: [bold]{server.url}[/bold] (live downloads: {server.url}downloads)")
        return server
    return None


async def run_dashboard(settings: Settings, *, allow_actions: bool | None = None) -> int:
    """``seen-worker dashboard``: serve until SIGINT/SIGTERM; 0 after a clean stop."""
    import signal

    server = DashboardServer(settings, allow_actions=allow_actions)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        print(f"seen dashboard: {server.url}", flush=True)
        waiter = asyncio.create_task(stop.wait())
        runner = asyncio.create_task(server.wait())
        await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.aclose()
    return 0
