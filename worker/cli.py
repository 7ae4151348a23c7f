"""The ``seen-worker`` command.

``run``     the ARQ worker (``--embedded`` starts a private local server first)
``health``  exit 0 when healthy, 1 when not; ``--json`` prints the verdict and reasons
``stats``   the figures ``log_cache_stats`` logs, as a table or ``--json``
``watch``   live progress bars of the active downloads (``--user U``; Ctrl-C to quit)
``demo``    embedded server + worker + simulated downloads, live until Ctrl-C (``--duration S``:
            headless, ends when every download did)
``check``   a non-destructive smoke test of the configured store (exit 1 on failure)
``dashboard`` the web dashboard (``--addr``, ``--token-file``, ``--allow-actions``, ``--new-token``)
``migrate-queue`` move queued jobs and results between ARQ's layout and the sharded one
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from cache.client import create_client
from cache.errors import CacheError
from cache.manager import CacheManager
from cache.numbers import seconds_arg
from worker.embedded import EmbeddedServer, EmbeddedServerError
from worker.outage import StartupTimeout
from worker.settings import Settings, SettingsError, load_settings

log = logging.getLogger("seen.cli")

Command = Callable[[argparse.Namespace, Settings], int]
Subparsers = Any  # argparse's _SubParsersAction is private


def configure_logging(settings: Settings) -> None:
    fmt = (
        '{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":%(message)r}'
        if settings.log.json_lines
        else "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.basicConfig(level=settings.log.level, format=fmt, stream=sys.stderr, force=True)


def seconds(text: str) -> float:
    """argparse type of a duration: a finite number of seconds above zero."""
    try:
        return seconds_arg(float(text), "seconds")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def run_async(coro: Coroutine[Any, Any, int], use_uvloop: bool = True) -> int:
    """Run ``coro`` on uvloop when available and wanted."""
    if use_uvloop:
        try:
            import uvloop

            return uvloop.run(coro)
        except ImportError:  # pragma: no cover - uvloop is a hard dependency
            pass
    return asyncio.run(coro)


# -- run ------------------------------------------------------------------------------------
async def run_worker(settings: Settings) -> int:
    """Run the worker until SIGTERM/SIGINT; 0 after a graceful stop, 1 if start-up failed.

    The first signal stops the worker gracefully (running jobs get ``worker.shutdown_grace``)
    and arms a thread-backed exit deadline (grace + ``STOP_MARGIN_S``) that ends the process
    whatever happens; a second signal is logged and changes nothing."""
    from worker.app import SeenWorker
    from worker.exit_deadline import STOP_MARGIN_S, ExitDeadline
    from worker.queue_store import QueueStoreError
    from worker.runtime import WorkerRuntime
    from worker.sentry import init_sentry

    runtime = WorkerRuntime(settings)
    init_sentry(settings, runtime.worker_id)
    worker = SeenWorker(settings, runtime=runtime)
    deadline = ExitDeadline()
    grace = settings.worker.shutdown_grace

    def on_signal(signum: signal.Signals) -> None:
        if deadline.armed:
            log.info("stop already under way (%s again)", signum.name)
            return
        log.info("%s: stopping; running jobs get %.1fs", signum.name, grace)
        deadline.arm(grace + STOP_MARGIN_S)
        worker.stop()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await worker.run()
    except (StartupTimeout, QueueStoreError) as exc:
        log.error("start-up failed: %s", exc)
        return 1
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if not args.embedded:
        return run_async(run_worker(settings), settings.worker.uvloop)
    with EmbeddedServer() as server:
        log.info("embedded server %s on %s", server.binary, server.addr)
        local = load_settings(cache={"addr": server.addr})
        return run_async(run_worker(local), settings.worker.uvloop)


def add_run(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="run the worker")
    run.add_argument("--embedded", action="store_true", help="start a private local server")
    run.set_defaults(handler=cmd_run)


# -- health ---------------------------------------------------------------------------------
async def _health(settings: Settings, args: argparse.Namespace) -> int:
    from worker.health import check, unreadable_heartbeats

    verdict = await check(
        settings,
        worker_id=args.worker_id,
        host=socket.gethostname() if args.this_host else None,
        max_queue_age=args.max_queue_age,
        stale_after=args.stale_after,
    )
    if args.json:
        print(verdict.model_dump_json(indent=2))
    else:
        alive = sum(1 for w in verdict.workers if w.get("fresh"))
        bad = verdict.unreadable.get("heartbeat", 0)
        note = f"; {unreadable_heartbeats(bad)} skipped" if bad else ""
        print(
            f"healthy ({alive} worker(s){note})"
            if verdict.healthy
            else "UNHEALTHY: " + "; ".join(verdict.reasons)
        )
    return 0 if verdict.healthy else 1


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    return run_async(_health(settings, args), settings.worker.uvloop)


def add_health(sub: Subparsers) -> None:
    health = sub.add_parser("health", help="exit 0 when healthy, 1 otherwise")
    health.add_argument("--json", action="store_true", help="print the verdict as JSON")
    which = health.add_mutually_exclusive_group()
    which.add_argument("--worker-id", help="require this worker's heartbeat to be fresh")
    which.add_argument(
        "--this-host",
        action="store_true",
        help="require a fresh heartbeat from a worker on this host (Docker HEALTHCHECK)",
    )
    health.add_argument(
        "--max-queue-age", type=seconds, help="seconds the oldest waiting job may wait"
    )
    health.add_argument("--stale-after", type=seconds, help="seconds after which a beat is stale")
    health.set_defaults(handler=cmd_health)


# -- stats ----------------------------------------------------------------------------------
async def _stats(settings: Settings, as_json: bool) -> int:
    from jobs.stats import collect

    manager = await CacheManager.connect(settings, verify=False)
    queue = create_client(settings.queue_cache_settings())
    try:
        snapshot = await collect(manager, queue, settings.queue.key_layout())
    except CacheError as exc:
        print(f"seen-worker: cannot read stats: {exc}", file=sys.stderr)
        return 1
    finally:
        await queue.aclose()
        await manager.aclose()
    figures = snapshot.flat()
    if snapshot.unreadable_records:
        print(
            f"seen-worker stats: {snapshot.unreadable_records} unreadable record(s) skipped "
            "(the log lines above name their keys); their figures show as -",
            file=sys.stderr,
        )
    if as_json:
        print(json.dumps(figures, indent=2))
    else:
        width = max(len(k) for k in figures)
        for name, value in figures.items():
            print(f"{name:<{width}}  {'-' if value is None else value}")
    return 0


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    return run_async(_stats(settings, args.json), settings.worker.uvloop)


def add_stats(sub: Subparsers) -> None:
    stats = sub.add_parser("stats", help="cache, queue and job figures")
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    stats.set_defaults(handler=cmd_stats)


# -- watch ----------------------------------------------------------------------------------
def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    from worker.watch import run_watch

    try:
        return run_async(run_watch(settings, args.user, once=args.once), settings.worker.uvloop)
    except KeyboardInterrupt:
        return 0
    except (CacheError, ValueError) as exc:
        print(f"seen-worker watch: {exc}", file=sys.stderr)
        return 2


def add_watch(sub: Subparsers) -> None:
    watch = sub.add_parser("watch", help="live progress of the active downloads")
    watch.add_argument("--user", help="only this user's downloads")
    watch.add_argument("--once", action="store_true", help="print the current table and exit")
    watch.set_defaults(handler=cmd_watch)


# -- check ----------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    return run_async(_check(settings), settings.worker.uvloop)


async def _check(settings: Settings) -> int:
    from worker.check import render, run_checks, run_queue_check

    results = await run_checks(settings)
    queue = create_client(settings.queue_cache_settings())
    try:
        results += await run_queue_check(queue, settings.queue.key_layout())
    finally:
        await queue.aclose()
    print(render(results))
    return 0 if all(r.ok for r in results) else 1


def add_check(sub: Subparsers) -> None:
    check = sub.add_parser("check", help="non-destructive smoke test of the configured store")
    check.set_defaults(handler=cmd_check)


# -- demo -----------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from worker.demo import run_demo

    headless = args.duration is not None
    coro = run_demo(
        downloads=args.downloads,
        duration=args.duration or 20.0,
        workers=args.workers,
        headless=headless,
        seed=args.seed,
        with_dashboard=not args.no_dashboard,
    )
    # SIGTERM before the demo's own handlers are in place (start-up) ends it like Ctrl-C: the
    # embedded server and worker processes are stopped on the way out, never orphaned
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_async(coro, settings.worker.uvloop)
    except KeyboardInterrupt:
        return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def add_demo(sub: Subparsers) -> None:
    demo = sub.add_parser(
        "demo", help="embedded server + worker + simulated download pipeline, live"
    )
    demo.add_argument(
        "--downloads",
        type=int,
        default=24,
        help="simulated downloads (at a time: without --duration new ones start as others end)",
    )
    demo.add_argument("--workers", type=int, default=1, help="worker processes")
    demo.add_argument(
        "--duration", type=seconds, help="run headless for about S seconds and print a summary"
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed of the simulation")
    demo.add_argument(
        "--no-dashboard", action="store_true", help="do not serve the dashboard beside the demo"
    )
    demo.set_defaults(handler=cmd_demo)


# -- dashboard ------------------------------------------------------------------------------
def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from worker.http.dashboard.security import new_token
    from worker.http.dashboard.server import (
        DashboardConfigError,
        DashboardStartError,
        run_dashboard,
    )

    if args.new_token:
        print(new_token())
        return 0
    overrides: dict[str, Any] = {}
    if args.addr:
        overrides["addr"] = args.addr
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                overrides["token"] = fh.read()  # settings strip it (a file's newline)
        except OSError as exc:
            print(f"seen-worker dashboard: cannot read token file: {exc}", file=sys.stderr)
            return 2
    if overrides:
        settings = load_settings(dashboard=overrides)
    allow = True if args.allow_actions else None
    try:
        return run_async(run_dashboard(settings, allow_actions=allow), settings.worker.uvloop)
    except DashboardConfigError as exc:
        print(f"seen-worker dashboard: {exc}", file=sys.stderr)
        return 2
    except (CacheError, DashboardStartError) as exc:
        print(f"seen-worker dashboard: {exc}", file=sys.stderr)
        return 1


def add_dashboard(sub: Subparsers) -> None:
    dash = sub.add_parser("dashboard", help="the web dashboard (loopback unless given a token)")
    dash.add_argument("--addr", help="host:port to bind (default dashboard.addr)")
    dash.add_argument("--token-file", help="file holding the access token (>= 32 bytes)")
    dash.add_argument(
        "--allow-actions", action="store_true", help="allow requeue / run-now (POST + CSRF)"
    )
    dash.add_argument("--new-token", action="store_true", help="print a fresh token and exit")
    dash.set_defaults(handler=cmd_dashboard)


# -- migrate-queue --------------------------------------------------------------------------
def cmd_migrate_queue(args: argparse.Namespace, settings: Settings) -> int:
    from worker.migrate_queue import migrate_queue

    return run_async(migrate_queue(settings, args), settings.worker.uvloop)


def add_migrate_queue(sub: Subparsers) -> None:
    from worker.migrate_queue import add_arguments

    move = sub.add_parser(
        "migrate-queue",
        help="move queued jobs and results between ARQ's layout and the sharded one",
    )
    add_arguments(move, seconds)
    move.set_defaults(handler=cmd_migrate_queue)


SUBCOMMANDS: list[Callable[[Subparsers], None]] = [
    add_run,
    add_health,
    add_stats,
    add_watch,
    add_check,
    add_demo,
    add_dashboard,
    add_migrate_queue,
]
"""Each entry adds one subcommand; a new command is one function and one line here."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seen-worker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"seen-worker: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    handler: Command = args.handler
    try:
        return handler(args, settings)
    except SettingsError as exc:  # a command that loads settings again (run --embedded)
        print(f"seen-worker: configuration error: {exc}", file=sys.stderr)
        return 2
    except EmbeddedServerError as exc:
        print(f"seen-worker: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
