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
- Any other error of a poll iteration (one job's bookkeeping, surfacing from ARQ's
  ``t.result()``) is logged with its traceback, counted in ``poll_errors`` and backed off;
  it never ends the worker.
- A job record ARQ cannot run (refused by ``jobs.serializer`` or naming an unknown function)
  fails its job as in ARQ and is also dead-lettered with the reason (``finish_failed_job``).

Start-up waits (with the same backoff) up to ``worker.startup_timeout`` for the queue store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import Any

from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.exceptions import ResponseError, WatchError

from jobs.deadletter import letter_for_record, push_dead_letters
from worker.outage import Backoff, is_store_outage, wait_until_reachable
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
        self.poll_errors = 0
        self._poll_backoff = Backoff(
            self.settings.worker.backoff_base, self.settings.worker.backoff_cap
        )

    async def main(self) -> None:
        if self._pool is not None:
            timeout = self.settings.worker.startup_timeout
            await wait_until_reachable(self._pool.ping, self.runtime.outage, timeout)
        await super().main()

    async def _poll_iteration(self) -> None:
        try:
            self._reap_done_tasks()
            await super()._poll_iteration()
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # this worker is being stopped
            self._poll_failed(exc)  # a cancelled job task's result, re-raised by ARQ
            await asyncio.sleep(self._poll_backoff.next())
        except Exception as exc:
            if is_store_outage(exc):
                delay = self.runtime.outage.failed(exc)
            else:
                self._poll_failed(exc)
                delay = self._poll_backoff.next()
            await asyncio.sleep(delay)
        else:
            self.runtime.outage.recovered()
            self._poll_backoff.reset()

    def _reap_done_tasks(self) -> None:
        """Read finished job tasks before ARQ polls. ARQ reads them (``t.result()``) only after
        its store calls, so during an outage a failed task stayed unread until a new run of
        the same job replaced it, and its error surfaced as asyncio's "Task exception was
        never retrieved". Here each one is read, and a non-outage error is logged with the id."""
        for job_id, task in list(self.tasks.items()):
            if not task.done():
                continue
            del self.tasks[job_id]
            exc = None if task.cancelled() else task.exception()
            if exc is None:
                continue
            if is_store_outage(exc):
                self.runtime.outage.note(exc)
            else:
                self._poll_failed(exc, job_id)

    def _poll_failed(self, exc: BaseException, job_id: str | None = None) -> None:
        """Log (with traceback) and count an error that is not an outage."""
        self.poll_errors += 1
        log.error(
            "%s failed (%s: %s; poll error %d); the worker goes on",
            "poll iteration" if job_id is None else f"bookkeeping of job {job_id}",
            type(exc).__name__,
            exc,
            self.poll_errors,
            exc_info=exc,
        )

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
            except (ResponseError, WatchError) as exc:
                if is_store_outage(exc):  # e.g. out of memory: back off, do not spin
                    raise
                log.debug("job %s started elsewhere meanwhile", job_id)
                return False
        task = self.loop.create_task(self.run_job(job_id, int(score)))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task
        return True

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """ARQ's, after dead-lettering a job record ARQ could not run."""
        await self._dead_letter_record(job_id, result_data)
        await super().finish_failed_job(job_id, result_data)

    async def _dead_letter_record(self, job_id: str, result_data: bytes | None) -> None:
        """Dead-letter the record of a job ARQ fails before running it, when the record is
        invalid or names an unknown function (expired, aborted and retried-out jobs are not).

        A store outage propagates: the job is then neither finished nor lost, and the next
        attempt (after ``job_lease``) dead-letters it. Any other error only loses the letter.
        """
        manager = self.ctx.get("cache")
        if manager is None:
            return
        raw = await self.pool.get(job_key_prefix + job_id)
        if raw is None:
            return
        try:
            job_try = json.loads(result_data or b"null").get("t")
        except (ValueError, AttributeError):
            job_try = None
        letter = letter_for_record(
            manager, job_id, raw, self.functions, job_try if isinstance(job_try, int) else None
        )
        if letter is None:
            return
        log.warning("job %s failed and dead-lettered: %s", job_id, letter.reason)
        try:
            await push_dead_letters(manager, [letter])
        except Exception as exc:
            if is_store_outage(exc):
                raise
            log.exception("job %s: dead letter not written; the job fails all the same", job_id)

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
