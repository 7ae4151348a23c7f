"""``SeenWorker``: ARQ's worker with its known gaps closed in our layer.

- A store error in the poll loop (the queue poll, cron enqueue, a job's bookkeeping) used to end
  the worker (python-arq/arq#435, #498). Here it is logged once per outage, the loop waits with
  capped exponential backoff and tries again; redis-py reconnects on the next command. Jobs the
  store kept are still queued when it comes back and run then.
- ARQ's ``start_jobs`` takes a concurrency permit before it talks to the store and leaks the permit
  when that round trip fails; after ``max_jobs`` such failures the worker would never take a
  job again. The override below gives the permit back.
- ``in_progress_timeout_s`` is the job lease (``worker.job_lease``), renewed by the runtime's
  beats, instead of the longest function timeout + 10 s (python-arq/arq#402).
- ARQ's shared health key is not written; each worker keeps its own heartbeat (#276, #291).
- Jobs are claimed and finished in batches (``worker.engine``): one script claims every due
  id a poll read, one script finishes every job that ended while the last finish was on its
  way; ARQ's keys, records and results are unchanged.
- Each claimed job carries a lease token (``worker.leases``): leases are renewed only by their
  holder, a job whose lease is lost is cancelled here, and finishing a job (result, queue
  removal) is applied only while its lease still holds the token. A stale owner can neither
  extend nor finish a job another worker has taken over.
- Every stop path is bounded: SIGTERM gives running jobs ``worker.shutdown_grace``, then
  cancels them (re-cancelling, bounded), then shuts down (bounded); a thread-backed exit
  deadline ends the process at grace + ``STOP_MARGIN_S`` whatever happens.
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
from asyncio import FIRST_COMPLETED
from typing import Any

from arq.constants import job_key_prefix
from arq.utils import timestamp_ms, to_ms
from arq.worker import Worker

from cache.backoff import Backoff
from cache.cancellation import cancel_and_wait, wait_bounded
from jobs.deadletter import letter_for_record, push_dead_letters
from worker.engine.claim import Claimed, claim_batch
from worker.engine.finish import Finish, Finisher
from worker.engine.run import RUN_TOKEN, run_claimed
from worker.exit_deadline import (
    CANCEL_JOBS_WITHIN_S,
    SHUTDOWN_WITHIN_S,
    STOP_MARGIN_S,
    ExitDeadline,
)
from worker.leases import JobLease, in_progress_key
from worker.outage import is_store_outage, wait_until_reachable
from worker.runtime import WorkerRuntime
from worker.settings import Settings

log = logging.getLogger("seen.worker")

CLAIM_ROUNDS = 4
"""Most claim calls per poll (each a batch of up to the free concurrency)."""


class SeenWorker(Worker):
    """The worker ``seen-worker run`` starts. Needs ``ctx["settings"]`` and ``ctx["runtime"]``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stale_job_ids: set[str] = set()
        """Jobs whose finish was refused (lease lost), until ``after_job_end`` counts them."""
        self.settings: Settings = self.ctx["settings"]
        self.runtime: WorkerRuntime = self.ctx["runtime"]
        self.in_progress_timeout_s = self.settings.worker.job_lease
        self.runtime.attach(self)
        self.exit_deadline = ExitDeadline()
        self.runtime.leases.body_of = self.job_tasks.get
        self._stopping = False
        self._finisher: Finisher | None = None
        self.stale_finishes = 0
        """Finishes refused because this worker no longer held the job's lease."""
        self.poll_errors = 0
        self._poll_backoff = Backoff(
            self.settings.worker.backoff_base, self.settings.worker.backoff_cap
        )

    @property
    def finisher(self) -> Finisher:
        """The batch finish on the queue store (created with the pool, on first use)."""
        if self._finisher is None or self._finisher.client is not self.pool:
            self._finisher = Finisher(self.pool, self.queue_name)
        return self._finisher

    async def main(self) -> None:
        if self._pool is not None:
            timeout = self.settings.worker.startup_timeout
            await wait_until_reachable(self._pool.ping, self.runtime.outage, timeout)
        await super().main()

    async def _poll_iteration(self) -> None:
        try:
            await self._await_free_slot()
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

    async def _await_free_slot(self) -> None:
        """With every slot busy, wait (up to ``poll_delay``) for a job to end before polling.

        ARQ's poll skips its read when no slot is free and then sleeps a whole ``poll_delay``:
        slots that free during that sleep stayed idle until it ended, which left a busy worker
        idle for a large share of the time. Waiting here instead lets the poll read and claim
        as soon as a slot frees; the poll (heartbeat, aborts, cron) still runs once per
        ``poll_delay`` at least, as ARQ's loop then sleeps only what is left of it."""
        if not self.allow_pick_jobs or self._stopping or self.job_counter < self.max_jobs:
            return
        await self._wait_for_a_job_to_end(self.poll_delay_s)

    async def _wait_for_a_job_to_end(self, within_s: float) -> None:
        """Until one running job ends, at most ``within_s`` seconds."""
        running = [t for t in self.tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=within_s, return_when=FIRST_COMPLETED)

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
        """Claim as many of ``job_ids`` as there is free concurrency for (``_claim_ids``).

        While jobs keep coming (a round claimed as many as it had room for), this poll goes
        on for up to ``poll_delay``: when a slot frees, it is filled at once instead of left
        idle until the next poll. The ids a read returned beyond the free slots are tried
        first (one round trip, the claim, instead of a read and a claim: the claim checks
        each id's score, lease and record, so an id that ran, finished or was deferred since
        the read is simply not claimed); only when they cannot fill the free slots are due
        ids read again. They are at most ``poll_delay`` old. ARQ's poll loop sleeps only what
        is left of ``poll_delay``, so a busy worker stays busy; aborts, cron and the burst
        check still run at least once per ``2 * poll_delay``."""
        full, rest = await self._claim_ids(job_ids)
        if self.burst and self.max_burst_jobs >= 0:
            return  # ARQ counts burst jobs per poll read
        deadline = self.loop.time() + self.poll_delay_s
        while full and self.allow_pick_jobs and not self._stopping:
            left = deadline - self.loop.time()
            if left <= 0:
                return
            if self.job_counter >= self.max_jobs:
                await self._wait_for_a_job_to_end(left)
                self._reap_done_tasks()
                if self.job_counter >= self.max_jobs:
                    continue
            if rest:
                full, rest = await self._claim_ids(rest)
                if full or self._stopping:
                    continue
            now = timestamp_ms()
            due = await self.pool.zrangebyscore(
                self.queue_name, min=float("-inf"), max=now, start=0, num=self.queue_read_limit
            )
            full, rest = await self._claim_ids(due)

    async def _claim_ids(self, job_ids: list[bytes]) -> tuple[bool, list[bytes]]:
        """Claim as many of ``job_ids`` as there is free concurrency for, in batches of one
        script call each (``worker.engine.claim``), and start a run for each claimed one;
        returns (every free slot was filled, so more work is likely waiting; the ids not
        tried, for the next free slots).

        Ids of jobs running here are skipped (they stay queued until finished). When ids of a
        batch are held elsewhere (other workers read the same oldest ids), the next ids are
        tried at once, up to ``CLAIM_ROUNDS`` calls. Permits of ids not claimed, and of a
        whole batch when the store fails, are given back."""
        running = self.tasks
        ids = [i for i in (b.decode() for b in job_ids) if i not in running]
        position = 0
        for _round in range(CLAIM_ROUNDS):
            free = min(len(ids) - position, self.max_jobs - self.job_counter)
            if free <= 0:
                break
            batch = ids[position : position + free]
            position += free
            claimed, sent_at = await self._claim(batch)
            for job in claimed:
                self._start_claimed(job, sent_at)
        full = bool(ids) and self.job_counter >= self.max_jobs
        return full, [i.encode() for i in ids[position:]]

    async def _claim(self, batch: list[str]) -> tuple[list[Claimed], float]:
        taken = 0
        try:
            for _ in batch:
                await self.sem.acquire()
                taken += 1
                self.job_counter += 1
            leases = self.runtime.leases
            sent_at = self.loop.time()
            claimed = await claim_batch(
                self.pool,
                self.queue_name,
                [(job_id, leases.new_token()) for job_id in batch],
                now_ms=timestamp_ms(),
                lease_ms=leases.lease_ms,
                honour_aborts=self.allow_abort_jobs,
            )
        except BaseException:
            for _ in range(taken):
                self._release_sem_dec_counter_on_complete()
            raise
        for _ in range(taken - len(claimed)):
            self._release_sem_dec_counter_on_complete()
        return claimed, sent_at

    def _start_claimed(self, job: Claimed, sent_at: float) -> None:
        job_id = job.job_id
        leases = self.runtime.leases
        lease = leases.granted(job_id, job.token, sent_at)
        task = self.loop.create_task(run_claimed(self, job))
        lease.task = task
        task.add_done_callback(lambda _: self._run_ended(lease))
        self.tasks[job_id] = task

    def _run_ended(self, lease: JobLease) -> None:
        self.runtime.leases.ended(lease.job_id, lease)
        self._release_sem_dec_counter_on_complete()

    # -- finishing: only the lease holder may --------------------------------------------
    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """ARQ's ``finish_job`` through the batch finish: it commits only while we hold the
        lease (``worker.engine.finish``)."""
        # A scheduled run cancelled by our stop hands its slot back and deletes its own marker
        # (``jobs.slotrun``) so its retry starts at once: nothing is left to finish here.
        if (
            not finish
            and keep_in_progress is not None
            and self._stopping
            and self.runtime.leases.token(job_id)
            and not await self.pool.exists(in_progress_key(job_id))
        ):
            log.debug("job %s: handed back at shutdown", job_id)
            return
        ttl = None if keep_result_forever or result_timeout_s is None else to_ms(result_timeout_s)
        await self._finish_as_holder(
            job_id,
            keep_lease_ms=None if keep_in_progress is None else to_ms(keep_in_progress),
            over=finish,
            result=result_data if finish else None,
            result_ttl_ms=ttl,
            incr_score=incr_score,
        )

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """ARQ's ``finish_failed_job``, committed only while we hold the lease, after
        dead-lettering a job record ARQ could not run."""
        if self.runtime.leases.token(job_id) is not None:
            await self._dead_letter_record(job_id, result_data)
        if self.runtime.metrics is not None:  # failed before it ran: no job hooks
            try:
                function = json.loads(result_data or b"null").get("f")
            except (ValueError, AttributeError):
                function = None
            self.runtime.metrics.job_ended(function, "failed")
        keep_result = self.keep_result_forever or self.keep_result_s > 0
        await self._finish_as_holder(
            job_id,
            keep_lease_ms=None,
            over=True,
            result=result_data if keep_result else None,
            result_ttl_ms=None if self.keep_result_forever else to_ms(self.keep_result_s),
        )

    async def _finish_as_holder(
        self,
        job_id: str,
        *,
        keep_lease_ms: int | None,
        over: bool,
        result: bytes | None,
        result_ttl_ms: int | None,
        incr_score: int | None = None,
    ) -> None:
        leases = self.runtime.leases
        token = leases.token(job_id)  # None: lost, or never claimed through this worker
        run = RUN_TOKEN.get()
        if run is not None and run[0] == job_id and run[1] != token:
            token = None  # a newer run of the job holds it here now: this run is stale
        if token is not None:
            finish = Finish(job_id, token, keep_lease_ms, over, result, result_ttl_ms, incr_score)
            if await self.finisher.submit(finish):
                leases.ended(job_id)  # finished: a renewal now on its way must not count as lost
                return
        self.stale_finishes += 1
        self.stale_job_ids.add(job_id)
        log.warning(
            "job %s: not finishing it here, this worker no longer holds its lease (%s)",
            job_id,
            getattr(leases.held.get(job_id), "reason", "") or "it expired or was taken over",
        )

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

    # -- stopping: every step bounded --------------------------------------------------
    def handle_sig_wait_for_completion(self, signum: signal.Signals) -> None:
        """SIGTERM/SIGINT: heartbeats say "stopping" while running jobs get their grace."""
        if self._stopping:
            log.info("stop already under way (%s again)", signal.Signals(signum).name)
            return
        self._begin_stop()
        super().handle_sig_wait_for_completion(signum)

    def handle_sig(self, signum: signal.Signals) -> None:
        """A stop without grace (``shutdown_grace = 0``): cancel at once, bounded."""
        if self._stopping:
            return
        self._begin_stop()
        self.allow_pick_jobs = False
        self.loop.create_task(self._cancel_and_stop(signal.Signals(signum)))

    def _begin_stop(self) -> None:
        self._stopping = True
        self.runtime.state = "stopping"
        if self._handle_signals:  # the worker owns the process (not embedded, e.g. in tests)
            self.exit_deadline.arm(self.settings.worker.shutdown_grace + STOP_MARGIN_S)

    async def _wait_for_tasks_to_complete(self, signum: signal.Signals) -> None:
        """Running jobs get ``shutdown_grace``; then they are cancelled, bounded."""
        pending = await wait_bounded(self.tasks.values(), self._job_completion_wait)
        log.info(
            "shutdown on %s, grace over: %d jobs complete, %d failed, %d retried, %d to cancel",
            signum.name,
            self.jobs_complete,
            self.jobs_failed,
            self.jobs_retried,
            len(pending),
        )
        await self._cancel_and_stop(signum)

    async def _cancel_and_stop(self, signum: signal.Signals) -> None:
        await cancel_and_wait(
            list(self.tasks.values()), CANCEL_JOBS_WITHIN_S, "jobs cancelled at shutdown"
        )
        if self.main_task is not None:
            await cancel_and_wait([self.main_task], CANCEL_JOBS_WITHIN_S, "poll loop")
        if self.on_stop:
            self.on_stop(signum)

    async def record_health(self) -> None:
        """Replaced by per-worker heartbeats (``worker.runtime``)."""

    async def close(self) -> None:
        """Wait for running jobs (bounded), run ``on_shutdown`` and close the pool, store or
        no store. Never takes longer than ``SHUTDOWN_WITHIN_S`` beyond the job cancellation."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        tasks = list(self.tasks.values())
        await cancel_and_wait(
            await wait_bounded(tasks, CANCEL_JOBS_WITHIN_S), 0.5, "jobs still running at close"
        )
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.warning("a job ended with an error during shutdown: %s", task.exception())
        try:
            async with asyncio.timeout(SHUTDOWN_WITHIN_S):
                if self.on_shutdown:
                    await self.on_shutdown(self.ctx)
        except TimeoutError:
            log.warning("shutdown hooks did not finish within %.1fs", SHUTDOWN_WITHIN_S)
        finally:
            pool, self._pool = self._pool, None
            try:
                async with asyncio.timeout(0.5):
                    await pool.aclose(close_connection_pool=True)
            except TimeoutError:
                log.warning("queue store connections not closed cleanly")
