"""One benchmark worker process: ``SeenWorker`` (ours) or ARQ's ``Worker`` running a no-op job.

``python -m bench.worker_proc --kind ours|arq --addr HOST:PORT [--layout arq|sharded]
[--expect N] [--serve] [--cprofile FILE] [--set section.name=value ...]`` prints ``ready``
once started and then runs:

- with ``--expect N`` (a one-process drain): ours until its N-th job has run, then it stops as
  on SIGTERM (the last finishes are sent), so the drain sees the engine as production runs it;
  ARQ in its burst mode (one ZCARD per ``poll_delay``);
- without (several processes share the queue): in burst mode, until the queue is empty (ours
  then also counts the queue after each fill: one more round trip, the same for 1, 2 and 4
  processes);
- with ``--serve``: until SIGTERM (pickup latency).

It then prints one JSON line: the probe's window (``bench.probe``), the engine's round trips
and counts (ours), the settings it ran with.

Ours runs at the project's defaults (``settings.toml`` through the settings model: ``max_jobs``,
``poll_delay``, leases, heartbeats, metrics, ``log.jobs``, the queue's name and shard count)
with three exceptions a bench needs: the queue layout it measures, ``/metrics`` on any free port
(several workers run at once) and no periodic jobs (``cron=False``: a maintenance run landing in
one drain and not another would be noise). ARQ 0.28 runs the same no-op with the same
``max_jobs``, ``poll_delay`` and ``keep_result`` (its own defaults, 10 jobs and 0.5 s, are
slower), the JSON serializer our records need, its own connection pool and no hooks. Both run
on uvloop (``worker.uvloop``, default true).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import signal
from collections.abc import Sequence
from typing import Any, Literal

import uvloop
from arq.connections import RedisSettings
from arq.worker import Worker, func

from bench.probe import Probe
from jobs import serializer
from worker.app import SeenWorker
from worker.settings import Settings, load_settings

PROBE = Probe(0)
"""The probe of this process (its no-op job ticks it); replaced in ``main``."""

READY_WITHIN_S = 60.0


async def noop(ctx: dict[str, Any]) -> None:
    PROBE.tick()


def bench_settings(
    addr: str, layout: Literal["arq", "sharded"] = "arq", overrides: Sequence[str] = ()
) -> Settings:
    """The defaults, but for the queue's layout and a free ``/metrics`` port (module
    docstring); ``overrides`` are ``section.name=value`` (value as JSON, else a string)."""
    sections: dict[str, dict[str, Any]] = {
        "cache": {"addr": addr},
        "queue": {"layout": layout},
        "http": {"addr": "127.0.0.1:0"},
    }
    for item in overrides:
        name, _, text = item.partition("=")
        section, _, key = name.partition(".")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        sections.setdefault(section, {})[key] = value
    return load_settings(None, **sections)


def defaults_in_force(settings: Settings) -> dict[str, Any]:
    w = settings.worker
    return {
        "max_jobs": w.max_jobs,
        "poll_delay": w.poll_delay,
        "keep_result": w.keep_result,
        "job_lease": w.job_lease,
        "heartbeat_interval": w.heartbeat_interval,
        "uvloop": w.uvloop,
        "log_jobs": settings.log.jobs,
        "layout": settings.queue.layout,
        "shards": settings.queue.shards if settings.queue.layout == "sharded" else 1,
    }


def plain_arq(settings: Settings, burst: bool) -> Worker:
    """ARQ's worker as its docs set it up (its own connection pool from ``RedisSettings``),
    with our ``max_jobs``, ``poll_delay`` and ``keep_result`` and the JSON records."""
    w = settings.worker

    async def started(ctx: dict[str, Any]) -> None:
        print("ready", flush=True)

    return Worker(
        functions=[func(noop, name="noop")],
        queue_name=settings.queue.name,
        redis_settings=RedisSettings.from_dsn(settings.queue_cache_settings().url()),
        max_jobs=w.max_jobs,
        poll_delay=w.poll_delay,
        keep_result=w.keep_result,
        job_serializer=serializer.serialize,
        job_deserializer=serializer.deserialize,
        handle_signals=False,
        burst=burst,
        on_startup=started,
    )


async def _until_term() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


async def run_ours(
    settings: Settings, serve: bool, profile: cProfile.Profile | None = None
) -> dict[str, Any]:
    burst = not serve and PROBE.expect <= 0
    worker = SeenWorker(
        settings, extra_functions=[func(noop, name="noop")], burst=burst, cron=False
    )
    if not serve and not burst:

        def done() -> None:
            if profile is not None:
                profile.disable()
            worker.stop()

        PROBE.on_done = done
        if profile is not None:
            PROBE.on_first = profile.enable
    main = asyncio.create_task(worker.run())
    for _ in range(round(READY_WITHIN_S / 0.005)):  # SeenWorker has no start-up hook
        if worker.runtime.state == "running" or main.done():
            break
        await asyncio.sleep(0.005)
    print("ready", flush=True)
    if serve:
        term = asyncio.create_task(_until_term())
        await asyncio.wait([main, term], return_when=asyncio.FIRST_COMPLETED)
        worker.stop(0)
        term.cancel()
    await main
    engine = worker.engine
    if engine is None:
        return {}
    trips, counts = engine.trips, engine.counts
    return {
        "trips": {
            "reads": trips.reads,
            "claims": trips.claims,
            "claimed": trips.claimed,
            "finishes": trips.finishes,
            "finished": trips.finished,
        },
        "counts": {
            "complete": counts.complete,
            "failed": counts.failed,
            "retried": counts.retried,
            "cancelled": counts.cancelled,
            "stale": counts.stale,
        },
    }


async def run_arq(settings: Settings, serve: bool) -> dict[str, Any]:
    worker = plain_arq(settings, burst=not serve)
    main = asyncio.create_task(worker.async_run())
    if serve:
        term = asyncio.create_task(_until_term())
        await asyncio.wait([main, term], return_when=asyncio.FIRST_COMPLETED)
        main.cancel()
        await asyncio.gather(main, return_exceptions=True)
    else:
        await main
    await worker.close()
    return {}


def main(argv: list[str] | None = None) -> None:
    global PROBE
    parser = argparse.ArgumentParser(prog="python -m bench.worker_proc")
    parser.add_argument("--kind", choices=("ours", "arq"), required=True)
    parser.add_argument("--addr", required=True)
    parser.add_argument("--layout", choices=("arq", "sharded"), default="arq")
    parser.add_argument("--expect", type=int, default=0, help="jobs of a one-process drain")
    parser.add_argument("--serve", action="store_true", help="run until SIGTERM")
    parser.add_argument("--cprofile", help="ours with --expect: cProfile the window into this file")
    parser.add_argument("--set", action="append", default=[], help="section.name=value")
    args = parser.parse_args(argv)
    settings = bench_settings(args.addr, args.layout, args.set)
    PROBE = Probe(args.expect, settings.queue_cache_settings().url())
    if args.kind == "ours":
        profile = cProfile.Profile() if args.cprofile else None
        extra = uvloop.run(run_ours(settings, args.serve, profile))
        if profile is not None:
            profile.dump_stats(args.cprofile)
    else:
        extra = uvloop.run(run_arq(settings, args.serve))
    report = {**PROBE.report(), **extra, "settings": defaults_in_force(settings)}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
