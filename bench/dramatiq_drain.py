"""Dramatiq's drain of N no-op messages in a process of its own (as each worker of the bench):
``python -m bench.dramatiq_drain <url> <jobs> <threads>`` enqueues them, starts one Dramatiq
worker with ``threads`` worker threads and prints the probe's JSON report (``bench.probe``: the
window from the first message's start to the last one's end, process CPU and store INFO over
it).

Dramatiq runs with its Redis broker and its default middleware (Prometheus left out, as it
starts an HTTP server); the messages are enqueued before the worker starts, as every queue's
are; its no-op ticks the probe under a lock (its actors run on threads).
"""

from __future__ import annotations

import json
import sys
import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import default_middleware

from bench.probe import Probe

WITHIN_S = 600.0


def main(url: str, jobs: int, threads: int) -> dict[str, object]:
    middleware = [m() for m in default_middleware]
    broker = RedisBroker(url=url, middleware=middleware)  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)
    probe = Probe(jobs, url)
    done = threading.Event()
    lock = threading.Lock()

    @dramatiq.actor(broker=broker, queue_name="bench", max_retries=0)
    def noop() -> None:
        with lock:
            probe.tick()
            if probe.count >= jobs:
                done.set()

    for _ in range(jobs):
        noop.send()
    worker = dramatiq.Worker(broker, worker_threads=threads)
    worker.start()
    if not done.wait(WITHIN_S):
        raise SystemExit(f"dramatiq ran only {probe.count} of {jobs} in {WITHIN_S:.0f} s")
    worker.stop()
    broker.close()
    return {**probe.report(), "threads": threads}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
