"""Dramatiq's drain of N no-op messages, as a subprocess of ``bench_worker`` (its own process,
like each worker of ours): ``python -m bench.dramatiq_drain <url> <jobs> <threads>`` prints
one JSON object: jobs/s, and store commands and CPU per job over the worker's run.

Dramatiq runs with its Redis broker and its default middleware (Prometheus left out, as it
starts an HTTP server); the messages are enqueued before the worker starts, as ours are.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import default_middleware
from redis import Redis

from bench.store_stats import sample_sync


def main(url: str, jobs: int, threads: int) -> dict[str, float]:
    middleware = [m() for m in default_middleware]
    broker = RedisBroker(url=url, middleware=middleware)  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)
    done = threading.Event()
    lock = threading.Lock()
    count = [0]

    @dramatiq.actor(broker=broker, queue_name="bench", max_retries=0)
    def noop() -> None:
        with lock:
            count[0] += 1
            if count[0] >= jobs:
                done.set()

    for _ in range(jobs):
        noop.send()
    client = Redis.from_url(url)
    before = sample_sync(client)
    worker = dramatiq.Worker(broker, worker_threads=threads)
    start = time.perf_counter()
    worker.start()
    if not done.wait(300):
        raise SystemExit(f"dramatiq drained only {count[0]} of {jobs} in 300 s")
    elapsed = time.perf_counter() - start
    after = sample_sync(client)
    worker.stop()
    broker.close()
    client.close()
    return {"jobs_s": round(jobs / elapsed), **before.per_job(after, jobs)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
