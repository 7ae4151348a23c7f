"""``SeenWorker``: ARQ's worker with its known gaps closed in our layer.

- A store error in the poll loop (the queue poll, cron enqueue, a job's bookkeeping) used to end
  the worker (python-arq/arq#435, #498). Here it is logged once per outage, the loop waits with
  capped exponential backoff and tries again; redis-py reconnects on the next command. Jobs the
  store kept are still queued when it comes back and run then.
- ARQ's ``start_jobs`` takes a concurrency slot before it talks to the store and leaks the slot
  when that round trip fails; after ``max_jobs`` such failures the worker would never take a
  job again. The override below gives the slot back.
- ``in_progress_timeout_s`` is the job lease (``worker.job_lease``), renewed by the runtime's
  beats, instead of the longest function timeout + 10 s (python-arq/arq#402).
- ARQ's shared health key is not written; each worker keeps its own heartbeat (#276, #291).
- ``close()`` finishes even when the store is gone, so SIGTERM still exits 0.

Start-up waits (with the same backoff) up to ``worker.startup_timeout`` for the queue store.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.exceptions import ResponseError, WatchError

from worker.outage import is_store_outage, wait_until_reachable
from worker.runtime import WorkerRuntime
from worker.settings import Settings

log = logging.getLogger("seen.worker")


class SeenWorker(Worker):
    """The worker ``seen-worker run`` starts. Needs ``ctx["settings"]`` and ``ctx["runtime"]``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings: Settings = self.ctx["settings"]
        self.runtime: WorkerRuntime = self.ctx["runtime"]
        self.in_progress_timeout_s = self.settings.worker.job_lease
        self.runtime.attach(self)

    async def main(self) -> None:
        if self._pool is not None:
            timeout = self.settings.worker.startup_timeout
            await wait_until_reachable(self._pool.ping, self.runtime.outage, timeout)
        await super().main()

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            delay = self.runtime.outage.failed(exc)
            await asyncio.sleep(delay)
        else:
            self.runtime.outage.recovered()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """ARQ's ``start_jobs``, giving the concurrency slot back when the store fails."""
        for job_id_b in job_ids:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            try:
                started = await self._claim_and_start(job_id_b.decode())
            except BaseException:
                self._release_sem_dec_counter_on_complete()
                raise
            if not started:
                self._release_sem_dec_counter_on_complete()

    async def _claim_and_start(self, job_id: str) -> bool:
        in_progress_key = in_progress_key_prefix + job_id
        async with self.pool.pipeline(transaction=True) as pipe:
            await pipe.watch(in_progress_key)
            ongoing = await pipe.exists(in_progress_key)
            score = await pipe.zscore(self.queue_name, job_id)
            if ongoing or not score or score > timestamp_ms():
                log.debug("job %s already running elsewhere, finished or deferred", job_id)
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.psetex(in_progress_key, int(self.in_progress_timeout_s * 1000), b"1")
            try:
                await pipe.execute()
            except (ResponseError, WatchError):
                log.debug("job %s started elsewhere meanwhile", job_id)
                return False
        task = self.loop.create_task(self.run_job(job_id, int(score)))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task
        return True

    def handle_sig_wait_for_completion(self, signum: signal.Signals) -> None:
        """SIGTERM/SIGINT: heartbeats say "stopping" while running jobs get their grace."""
        self.runtime.state = "stopping"
        super().handle_sig_wait_for_completion(signum)

    async def record_health(self) -> None:
        """Replaced by per-worker heartbeats (``worker.runtime``)."""

    async def close(self) -> None:
        """Wait for running jobs, run ``on_shutdown`` and close the pool, store or no store."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        results = await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("a job ended with an error during shutdown: %s", result)
        try:
            if self.on_shutdown:
                await self.on_shutdown(self.ctx)
        finally:
            await self.pool.aclose(close_connection_pool=True)
            self._pool = None
