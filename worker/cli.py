"""The ``seen-worker`` command.

``run``     the ARQ worker (``--embedded`` starts a private local server first)
``health``  exit 0 when healthy, 1 when not; ``--json`` prints the verdict and reasons
``watch``   live progress bars of the active downloads (``--user U``; Ctrl-C to quit)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from cache.errors import CacheError
from cache.manager import CacheManager
from worker.embedded import EmbeddedServer, EmbeddedServerError
from worker.settings import Settings, SettingsError, load_settings

log = logging.getLogger("seen.cli")


def configure_logging(settings: Settings) -> None:
    fmt = (
        '{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":%(message)r}'
        if settings.log.json_lines
        else "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.basicConfig(level=settings.log.level, format=fmt, stream=sys.stderr, force=True)


def run_async(coro: Coroutine[Any, Any, int], use_uvloop: bool = True) -> int:
    """Run ``coro`` on uvloop when available and wanted."""
    if use_uvloop:
        try:
            import uvloop

            return uvloop.run(coro)
        except ImportError:  # pragma: no cover - uvloop is a hard dependency
            pass
    return asyncio.run(coro)


async def run_worker(settings: Settings) -> int:
    """Run the ARQ worker until a signal stops it."""
    from arq.worker import Worker

    from worker.app import build_worker_settings

    worker = Worker(**build_worker_settings(settings))
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await worker.async_run()
    finally:
        await worker.close()
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if not args.embedded:
        return run_async(run_worker(settings), settings.worker.uvloop)
    with EmbeddedServer() as server:
        log.info("embedded server %s on %s", server.binary, server.addr)
        local = load_settings(cache={"addr": server.addr})
        return run_async(run_worker(local), settings.worker.uvloop)


async def health_verdict(settings: Settings) -> dict[str, Any]:
    """The store's health; the worker-fleet checks are added by the health module."""
    try:
        manager = await CacheManager.connect(settings, verify=False)
    except CacheError as exc:
        return {"healthy": False, "reasons": [str(exc)]}
    async with manager:
        report = await manager.health_check()
    reasons = [] if report.ok else [f"store: {report.error}"]
    return {"healthy": report.ok, "reasons": reasons, "store": report.model_dump()}


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    verdict = run_async(_print_health(settings, args.json), settings.worker.uvloop)
    return verdict


async def _print_health(settings: Settings, as_json: bool) -> int:
    verdict = await health_verdict(settings)
    if as_json:
        print(json.dumps(verdict, indent=2, default=str))
    else:
        print("healthy" if verdict["healthy"] else "UNHEALTHY: " + "; ".join(verdict["reasons"]))
    return 0 if verdict["healthy"] else 1


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    from worker.watch import run_watch

    try:
        return run_async(run_watch(settings, args.user, once=args.once), settings.worker.uvloop)
    except KeyboardInterrupt:
        return 0
    except (CacheError, ValueError) as exc:
        print(f"seen-worker watch: {exc}", file=sys.stderr)
        return 2


Command = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seen-worker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the worker")
    run.add_argument("--embedded", action="store_true", help="start a private local server")
    run.set_defaults(handler=cmd_run)
    health = sub.add_parser("health", help="exit 0 when healthy, 1 otherwise")
    health.add_argument("--json", action="store_true", help="print the verdict as JSON")
    health.set_defaults(handler=cmd_health)
    watch = sub.add_parser("watch", help="live progress of the active downloads")
    watch.add_argument("--user", help="only this user's downloads")
    watch.add_argument("--once", action="store_true", help="print the current table and exit")
    watch.set_defaults(handler=cmd_watch)
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
    except EmbeddedServerError as exc:
        print(f"seen-worker: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
