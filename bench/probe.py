"""The probe every drain of the bench uses, whatever the queue: jobs/s, worker CPU and store cost
over one window, from the first job's start to the last job's end, measured inside the worker.

The no-op job of each queue calls ``Probe.tick()`` (BullMQ's Node script does the same in
JavaScript, bench/node/bullmq_bench.mjs). The first tick marks the window's start (wall clock,
process CPU) and reads the store's INFO; every tick moves the window's end; the tick that
reaches ``expect`` jobs closes it (process CPU, INFO). So start-up, the enqueue before it and
shutdown after it are outside for every queue alike. The INFO reads are blocking calls taken
outside the window's clock readings (before the first mark, after the last one).

With ``expect`` 0 (several worker processes share one queue and none knows its share) the
window ends at the last tick and the CPU and store figures are left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis as SyncRedis

from bench.store_stats import StoreSample, sample_sync


@dataclass
class Probe:
    """Counts no-op jobs and marks the window (module docstring)."""

    expect: int
    store_url: str | None = None
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    cpu_first: float = 0.0
    cpu_last: float | None = None
    store_before: StoreSample | None = None
    store_after: StoreSample | None = None
    on_first: Callable[[], None] | None = None
    """Called at the first job (a profiler starts then)."""
    on_done: Callable[[], None] | None = None
    """Called once ``expect`` jobs have run (ours stops then: see bench.worker_proc)."""

    def tick(self) -> None:
        self.count += 1
        if self.count == 1:
            self.store_before = self._store()
            self.cpu_first = time.process_time()
            self.first = time.time()
            if self.on_first is not None:
                self.on_first()
        self.last = time.time()
        if self.count == self.expect:
            self.cpu_last = time.process_time()
            self.store_after = self._store()
            if self.on_done is not None:
                self.on_done()

    def _store(self) -> StoreSample | None:
        if self.store_url is None or self.expect <= 0:
            return None
        client = SyncRedis.from_url(self.store_url)
        try:
            return sample_sync(client)
        finally:
            client.close()

    def report(self) -> dict[str, Any]:
        """What the harness reads (one JSON line on the worker's stdout)."""
        out: dict[str, Any] = {"jobs": self.count, "first": self.first, "last": self.last}
        if self.cpu_last is not None:
            out["cpu_s"] = self.cpu_last - self.cpu_first
        if self.store_before is not None and self.store_after is not None:
            out["store_before"] = self.store_before.as_dict()
            out["store_after"] = self.store_after.as_dict()
        return out
