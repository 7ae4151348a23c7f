"""``Engine``: the worker's own loop over its parts (poll, claim, run, finish, leases, stop).

One engine per worker process. Its collaborators are passed in at construction (the queue
store's client and script runner, the key layout, the job functions, the periodic schedules,
the job context, an observer for metrics, where dead letters go, the outage log) and it owns
the tasks it starts: one poll loop, ``max_jobs`` runners, one finisher, one lease keeper and one
timer. Nothing per job but the job itself (``worker.engine.job.Job``) and its context dict.

How a job flows (docs/architecture.md, "The engine"):

1. **poll** (``poll.Picker``): each ``poll_delay`` one round trip reads every shard's due ids,
   the pause flag and, while jobs run here, the abort sets; periodic jobs due soon are
   enqueued. When slots free up between ticks, only shards that had due jobs are read again.
2. **claim** (``claim``): free slots are shared among shards in turn; one script call per shard,
   all in one round trip, claims each id with a lease holding a fresh token.
3. **run** (``run.JobRun`` on ``runners``): a free runner takes the job and awaits its function
   in a context of its own; its timeout, its lease deadline and aborts cancel it through the
   one timer (``watchdog``).
4. **finish** (``finish``): the finisher sends every finish that came in while the last was on
   its way, one script call per shard, each applied only while the job's lease holds its token.
5. **leases** (``leases``): every ``heartbeat_interval`` one round trip renews every held lease;
   a refused renewal or a passed deadline loses the lease and cancels the job here.
6. **outage**: a store error in the poll, claim or finish is logged once per outage and backed
   off; finishes are kept and sent again while their leases last.
7. **stop** (``stop``): claimed jobs not started yet are handed back at once (their lease
   released, their try given back); running jobs get ``shutdown_grace``, then are cancelled
   (retried elsewhere); the last finishes are sent; every step is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from cache.backoff import Backoff
from cache.cancellation import cancel_and_wait
from cache.clock import wall_ms, wall_ns
from cache.errors import CacheResponseError
from cache.ratelog import RateLimitedLog
from cache.scripts import Replicas, ScriptRunner
from jobs.client import enqueue_jobs
from jobs.outcome import JobCounts, Outcome
from jobs.wire.layout import QueueLayout, QueueShard
from worker.engine.claim import ClaimRequest, claim
from worker.engine.finish import Finish, Finished, finish
from worker.engine.functions import JobFunction
from worker.engine.job import Cancel, Job, Phase
from worker.engine.leases import Leases
from worker.engine.poll import Picker
from worker.engine.run import DeadLetters, EngineObserver, JobRun
from worker.engine.runners import ReadyQueue, Runner
from worker.engine.schedule import Periodic, due_now
from worker.engine.tracing import JobTracing
from worker.engine.watchdog import Watchdog
from worker.outage import OutageLog, is_store_outage

log = logging.getLogger("seen.worker")

CLAIM_ROUNDS = 4
"""Most claim round trips per fill (ids held by other workers are skipped for the next ones)."""
FINISH_BACKLOG = 4
MAX_FINISH_BATCH = 1000
CANCEL_JOBS_WITHIN_S = 2.0
"""After the grace: how long running jobs are re-cancelled before they are abandoned."""
FLUSH_WITHIN_S = 2.5
"""After the jobs: how long the last finishes may take."""
RECANCEL_S = 0.1
CRON_AHEAD_S = 1.0
"""Periodic jobs are enqueued up to this long before they are due (ARQ: 2 x max(poll, 0.5))."""


@dataclass(slots=True)
class RoundTrips:
    """How many round trips the engine made and what they carried (batch sizes in the bench
    and ``/metrics``)."""

    reads: int = 0
    claims: int = 0
    claimed: int = 0
    finishes: int = 0
    finished: int = 0


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The engine's settings (from ``[worker]``; tests and the bench set their own)."""

    max_jobs: int
    poll_delay_s: float
    job_lease_s: float
    renew_every_s: float
    shutdown_grace_s: float
    failed_result_ms: int | None
    """Result TTL of jobs that fail before they run (ARQ: ``keep_result``); None: forever."""
    backoff_base_s: float
    backoff_cap_s: float
    burst: bool = False
    """Stop once the queue is empty (tests, the bench, ``arq --burst``)."""
    max_burst_jobs: int = -1
    honour_aborts: bool = True
    log_successes: bool = False
    lease_replicas: int = 0
    """Replicas that must confirm a claim's and a renewal's lease writes (``WAIT``) before they
    count: with 1 or more a failover of the queue store never loses a running job's lease, so
    no job runs twice at once; 0 trusts the primary (at least once across a failover)."""
    replica_timeout_ms: int = 500


class Engine:
    """Runs the jobs of one queue; ``run()`` until ``stop()`` (or, in burst mode, until the
    queue is empty)."""

    def __init__(
        self,
        *,
        layout: QueueLayout,
        client: Redis,
        scripts: ScriptRunner,
        functions: Mapping[str, JobFunction],
        periodic: Sequence[Periodic],
        config: EngineConfig,
        context: Mapping[str, Any],
        observer: EngineObserver,
        dead_letters: DeadLetters | None,
        worker_id: str,
        outage: OutageLog,
        on_stopping: Callable[[], None] = lambda: None,
        tracing: JobTracing | None = None,
    ) -> None:
        self.layout = layout
        self.client = client
        self.scripts = scripts
        self.functions = functions
        self.periodic = list(periodic)
        self.config = config
        self.observer = observer
        self.outage = outage
        self.on_stopping = on_stopping
        self.tracing = tracing
        """Spans of traced jobs (``worker.engine.tracing``); None: tracing is off."""
        self.single_hashtag = layout.kind == "sharded"
        self.refusals = RateLimitedLog(log, burst=5, window_s=60.0)
        """Claims and finishes the store refused, per shard: a store at its memory limit refuses
        every poll (20 a second), which must not become 20 ERROR lines a second."""
        self.replicas = (
            Replicas(config.lease_replicas, config.replica_timeout_ms)
            if config.lease_replicas > 0
            else None
        )
        self.leases = Leases(worker_id, config.job_lease_s, self.replicas)
        self.counts = JobCounts()
        self.trips = RoundTrips()
        self.poll_errors = 0
        self.paused = False
        self.ready = ReadyQueue()
        self.runners = [Runner(i) for i in range(config.max_jobs)]
        self.picker = Picker(layout.shards, config.poll_delay_s)
        self.read_limit = max(2 * config.max_jobs, 20)
        self.loop = asyncio.get_running_loop()
        self.watchdog = Watchdog(self._check_deadlines)
        self.jobs = JobRun(
            functions=functions,
            context=context,
            observer=observer,
            settle=self._settle,
            dead_letters=dead_letters,
            queue_name=layout.name,
            failed_result_ms=config.failed_result_ms,
            log_successes=config.log_successes,
            arm=self.watchdog.arm,
            store_full_delay=self._store_full_delay,
            tracing=tracing,
        )
        self._poll_backoff = Backoff(config.backoff_base_s, config.backoff_cap_s)
        self._full_backoff = Backoff(config.backoff_base_s, config.backoff_cap_s)
        self._finishes: list[tuple[Job, Outcome | None, Finish]] = []
        self._finisher_wake: asyncio.Future[None] | None = None
        self._poll_wake: asyncio.Future[None] | None = None
        self._wake_on_slot = False
        self._stopping = False
        self._stop_grace: float = config.shutdown_grace_s
        self._claimed_total = 0
        self._active = 0
        """Jobs claimed whose run has not ended (waiting for a runner, or running)."""
        self._tasks: list[asyncio.Task[Any]] = []
        self._finisher: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._closing_finisher = False

    # -- what the rest of the worker reads ----------------------------------------------
    @property
    def running(self) -> int:
        """Jobs whose function runs now."""
        return sum(1 for r in self.runners if r.job is not None)

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until ``stop()`` (or the end of a burst), then stop, bounded."""
        for runner in self.runners:
            runner.task = self.loop.create_task(self._runner(runner), name=f"runner-{runner.index}")
        self._finisher = self.loop.create_task(self._finisher_loop(), name="finisher")
        self._keeper = self.loop.create_task(self._keeper_loop(), name="lease-keeper")
        try:
            await self._poll_loop()
        finally:
            await self._shutdown()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop taking jobs; running jobs get ``grace_s`` (default ``shutdown_grace``)."""
        if self._stopping:
            return
        self._stopping = True
        if grace_s is not None:
            self._stop_grace = grace_s
        self.on_stopping()
        self._wake_poll()

    # -- poll -----------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        next_tick = self.loop.time()
        while not self._stopping:
            now = self.loop.time()
            tick = now >= next_tick
            full = False
            try:
                if tick:
                    next_tick = now + self.config.poll_delay_s
                    await self._tick(now)
                full = await self._fill()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self._poll_failed(exc)
                await self._sleep(delay)
                next_tick = self.loop.time()
                continue
            self.outage.recovered()
            self._poll_backoff.reset()
            if self.config.burst and await self._burst_over():
                return
            timeout = max(0.0, next_tick - self.loop.time())
            await self._sleep(timeout, on_slot=full and not self.paused)

    def _poll_failed(self, exc: Exception) -> float:
        if is_store_outage(exc):
            return self.outage.failed(exc)
        self.poll_errors += 1
        log.error(
            "poll iteration failed (%s: %s; poll error %d); the worker goes on",
            type(exc).__name__,
            exc,
            self.poll_errors,
            exc_info=exc,
        )
        return self._poll_backoff.next()

    async def _sleep(self, seconds: float, *, on_slot: bool = False) -> None:
        """Wait ``seconds``, or less when stopped (or, with ``on_slot``, when a slot frees)."""
        if self._stopping or seconds <= 0:
            return
        wake = self.loop.create_future()
        self._poll_wake = wake
        self._wake_on_slot = on_slot
        timer = self.loop.call_later(seconds, _resolve, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._poll_wake = None
            self._wake_on_slot = False

    def _wake_poll(self) -> None:
        if self._poll_wake is not None:
            _resolve(self._poll_wake)

    @property
    def _free(self) -> int:
        """Slots to claim for: a slot is a job claimed and not yet run to its end (its finish
        may still be on its way: a finishing job holds no runner). While more finishes than
        ``FINISH_BACKLOG`` x ``max_jobs`` wait for the store, nothing more is claimed."""
        if len(self.leases) - self._active > FINISH_BACKLOG * self.config.max_jobs:
            return 0
        free = self.config.max_jobs - self._active
        if self.config.burst and self.config.max_burst_jobs >= 0:
            free = min(free, self.config.max_burst_jobs - self._claimed_total)
        return free

    async def _tick(self, now: float) -> None:
        """Once per ``poll_delay``: pause flag, every shard's due ids, aborts, periodic jobs."""
        read = self.picker.to_read(now, tick=True) if self._free > 0 else []
        aborts = (
            [s for s in self.layout.shards if any(j.shard is s for j in self.leases)]
            if self.config.honour_aborts and len(self.leases)
            else []
        )
        now_ms = wall_ms()
        self.trips.reads += 1
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.layout.paused_key)
            for shard in read:
                pipe.zrangebyscore(shard.queue, "-inf", now_ms, start=0, num=self.read_limit)
            for shard in aborts:
                pipe.zrange(shard.abort, 0, -1)
            replies = await pipe.execute()
        paused = replies[0] is not None
        if paused != self.paused:
            log.warning("queue %s %s", self.layout.name, "paused" if paused else "resumed")
            self.paused = paused
        for shard, ids in zip(read, replies[1 : 1 + len(read)], strict=True):
            self.picker.store(shard, [_text(i) for i in ids], now)
        aborted = {_text(i) for reply in replies[1 + len(read) :] for i in reply}
        if aborted:
            self._abort(aborted)
        if self.periodic and not self.paused:
            await self._enqueue_periodic(now_ms)

    async def _fill(self) -> bool:
        """Claim as many due jobs as there are free slots; True when every slot is taken (more
        work is likely waiting)."""
        read_again = True
        for _ in range(CLAIM_ROUNDS):
            free = self._free
            if free <= 0:
                return True
            if self.paused or self._stopping:
                return False
            now = self.loop.time()
            picks = self.picker.allocate(free, now, self.leases.held)
            if not picks:
                if not read_again:
                    return False
                read_again = False
                shards = self.picker.to_read(now, tick=False)
                if not shards:
                    return False
                await self._read(shards, now)
                continue
            await self._claim(picks)
        return self._free <= 0

    async def _read(self, shards: Sequence[QueueShard], now: float) -> None:
        self.trips.reads += 1
        now_ms = wall_ms()
        async with self.client.pipeline(transaction=False) as pipe:
            for shard in shards:
                pipe.zrangebyscore(shard.queue, "-inf", now_ms, start=0, num=self.read_limit)
            replies = await pipe.execute()
        for shard, ids in zip(shards, replies, strict=True):
            self.picker.store(shard, [_text(i) for i in ids], now)

    async def _claim(self, picks: Sequence[tuple[QueueShard, list[str]]]) -> None:
        new_token = self.leases.new_token
        requests = [ClaimRequest(s, ids, [new_token() for _ in ids]) for s, ids in picks]
        sent_at = self.loop.time()
        sent_ns = wall_ns() if self.tracing is not None else 0
        self.trips.claims += 1
        result = await claim(
            self.scripts,
            requests,
            now_ms=wall_ms(),
            lease_ms=self.leases.lease_ms,
            honour_aborts=self.config.honour_aborts,
            single_hashtag=self.single_hashtag,
            replicas=self.replicas,
        )
        if result.unconfirmed:
            log.warning(
                "%d claimed job(s) handed back: no replica confirmed their leases within %d ms",
                len(result.unconfirmed),
                self.config.replica_timeout_ms,
            )
            for job in result.unconfirmed:
                self.leases.grant(job, sent_at)
            self._active += len(result.unconfirmed)
            self._hand_back(result.unconfirmed)
        for shard, error in result.failed:
            self.poll_errors += 1
            self.refusals.error(
                "claim on queue shard %d refused by the store: %s",
                shard.index,
                error,
                topic=f"claim:{shard.index}",
            )
        if not result.claimed:
            return
        if self.tracing is not None:
            self.tracing.claimed(result.claimed, sent_ns)
        for job in result.claimed:
            self.leases.grant(job, sent_at)
        self._active += len(result.claimed)
        self.trips.claimed += len(result.claimed)
        self._claimed_total += len(result.claimed)
        self.watchdog.arm(sent_at + self.leases.valid_for)
        self.ready.push(result.claimed)

    async def _burst_over(self) -> bool:
        if len(self.leases) or self._finishes:
            return False
        if 0 <= self.config.max_burst_jobs <= self._claimed_total:
            return True
        async with self.client.pipeline(transaction=False) as pipe:
            for shard in self.layout.shards:
                pipe.zcard(shard.queue)
            sizes = await pipe.execute()
        return not any(sizes)

    async def _enqueue_periodic(self, now_ms: int) -> None:
        for schedule, due in due_now(self.periodic, now_ms, round(CRON_AHEAD_S * 1000)):
            await enqueue_jobs(
                self.client,
                [(schedule.name, (), schedule.job_id(due))],
                layout=self.layout,
                defer_until_ms=due if due > wall_ms() else None,
                scripts=self.scripts,
            )

    # -- run ------------------------------------------------------------------------------
    async def _runner(self, runner: Runner) -> None:
        while True:
            job = await self.ready.get()
            if job is None:
                return
            try:
                await self.jobs.run(job, runner)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in the bookkeeping: this job is lost, not the runner
                self.poll_errors += 1
                log.error("bookkeeping of job %s failed: %s", job.job_id, exc, exc_info=exc)
                self._end(job, Outcome.FAILED)

    def _abort(self, ids: set[str]) -> None:
        """``Job.abort()`` was asked for these ids: cancel those that run here."""
        for job_id in ids:
            job = self.leases.held.get(job_id)
            if job is None or job.cancelled is not None:
                continue
            if job.phase is Phase.CLAIMED:
                job.aborted = True
            elif job.phase is Phase.BODY:
                job.cancelled = Cancel.ABORT
                self._cancel_body(job)

    def _cancel_body(self, job: Job) -> None:
        for runner in self.runners:
            if runner.job is job:
                runner.cancel_body()
                runner.deadline = self.loop.time() + RECANCEL_S  # again, until it ends
                self.watchdog.arm(runner.deadline)
                return

    def _check_deadlines(self, now: float) -> float | None:
        """The one timer: time out bodies, lose leases past their deadline; next deadline."""
        following = math.inf
        for runner in self.runners:
            job = runner.job
            if job is None:
                continue
            if runner.deadline <= now:
                if job.cancelled is None:
                    job.cancelled = Cancel.TIMEOUT
                runner.cancel_body()
                runner.deadline = now + RECANCEL_S
            following = min(following, runner.deadline)
        for job in self.leases.expired(now):
            self._lose(job, f"no renewal was confirmed within the {self.leases.lease_s:g}s lease")
        earliest = self.leases.earliest()
        if earliest is not None:
            following = min(following, earliest)
        return following if following < math.inf else None

    def _lose(self, job: Job, reason: str) -> None:
        if not self.leases.lose(job, reason):
            return
        if job.phase is Phase.CLAIMED:
            if self.ready.remove(job):
                self._end(job, Outcome.STALE)
        elif job.phase is Phase.BODY and job.cancelled is None:
            job.cancelled = Cancel.LEASE
            self._cancel_body(job)

    def _store_full_delay(self) -> float:
        return self._full_backoff.next()

    # -- finish ---------------------------------------------------------------------------
    def _settle(self, job: Job, outcome: Outcome | None, finish_: Finish | None) -> None:
        """A run ended (``outcome``; None for a job handed back unrun): send its finish."""
        self._run_ended(job)
        if finish_ is None:
            self._end(job, outcome)
            return
        if outcome is not Outcome.RETRIED:
            self._full_backoff.reset()
        self._finishes.append((job, outcome, finish_))
        wake = self._finisher_wake
        if wake is not None:
            _resolve(wake)

    async def _finisher_loop(self) -> None:
        backoff = Backoff(self.config.backoff_base_s, self.config.backoff_cap_s)
        while True:
            if not self._finishes:
                if self._closing_finisher:
                    return
                wake = self.loop.create_future()
                self._finisher_wake = wake
                try:
                    await wake
                finally:
                    self._finisher_wake = None
                continue
            batch = self._finishes[:MAX_FINISH_BATCH]
            del self._finishes[:MAX_FINISH_BATCH]
            self.trips.finishes += 1
            self.trips.finished += len(batch)
            sent_ns = wall_ns() if self.tracing is not None else 0
            try:
                done, refused = await finish(
                    self.scripts, [f for _, _, f in batch], single_hashtag=self.single_hashtag
                )
            except asyncio.CancelledError:
                self._finishes[:0] = batch
                raise
            except Exception as exc:
                self._finish_failed(batch, exc)
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            if self.tracing is not None:
                self.tracing.finished((job for job, _, _ in batch), sent_ns, len(batch))
            self._finished(batch, done, refused)

    def _finished(
        self,
        batch: list[tuple[Job, Outcome | None, Finish]],
        done: list[Finished],
        refused: list[tuple[list[Finish], CacheResponseError]],
    ) -> None:
        by_finish = {id(f): (job, outcome) for job, outcome, f in batch}
        for item in done:
            job, outcome = by_finish[id(item.finish)]
            if item.result_error is not None:
                log.warning(
                    "job %s: finished, result not written: %s", job.job_id, item.result_error
                )
            if item.done:
                self._end(job, outcome)
            else:
                self._end(job, Outcome.STALE)
        for group, error in refused:
            self.refusals.error(
                "finish of %d job(s) refused by the store: %s", len(group), error, topic="finish"
            )
            for f in group:
                job, _ = by_finish[id(f)]
                self._end(job, Outcome.STALE)

    def _finish_failed(
        self, batch: list[tuple[Job, Outcome | None, Finish]], exc: Exception
    ) -> None:
        """The store did not take a finish batch: keep the finishes whose leases still hold
        (sent again after a backoff); the others are another worker's to run now."""
        if is_store_outage(exc):
            self.outage.note(exc)
        else:
            self.poll_errors += 1
            log.error("finish failed (%s: %s); sent again", type(exc).__name__, exc, exc_info=exc)
        now = self.loop.time()
        keep = []
        for job, outcome, f in batch:
            if job.valid_until > now and job.lost is None:
                keep.append((job, outcome, f))
            else:
                self.leases.lose(job, "its finish could not be sent before the lease ran out")
                self._end(job, Outcome.STALE)
        self._finishes[:0] = keep

    def _run_ended(self, job: Job) -> None:
        """The job's run is over (its finish may still be on its way): its slot is free."""
        if job.phase is not Phase.FINISHING:
            job.phase = Phase.FINISHING
            self._active -= 1
            if self._wake_on_slot:
                self._wake_poll()

    def _end(self, job: Job, outcome: Outcome | None) -> None:
        """The job is no longer ours: count it."""
        if self.tracing is not None and job.trace is not None:
            self.tracing.ended(job, outcome)
        if self.leases.held.get(job.job_id) is not job:
            return
        self._run_ended(job)
        self.leases.release(job)
        if outcome is not None:
            self.counts.add(outcome)
            self.observer.job_ended(job.function, outcome)
            if outcome is Outcome.STALE:
                log.warning(
                    "job %s: not finishing it here, this worker no longer holds its lease (%s)",
                    job.job_id,
                    job.lost or "it expired or was taken over",
                )

    # -- leases ---------------------------------------------------------------------------
    async def _keeper_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.renew_every_s)
            sent_at = self.loop.time()
            try:
                refused = await self.leases.renew(self.scripts, sent_at)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_store_outage(exc):
                    log.exception("lease renewal failed")
                else:
                    self.outage.note(exc)
                continue
            for job, reason in refused:
                self._lose(job, reason)
            earliest = self.leases.earliest()
            if earliest is not None:
                self.watchdog.arm(earliest)

    # -- stop -----------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        """Hand back unstarted jobs, give running ones the grace, cancel the rest, send the
        last finishes; every step bounded."""
        self._stopping = True
        self.on_stopping()
        self._hand_back(self.ready.take_all())
        self.ready.close()
        running = [r.task for r in self.runners if r.task is not None and not r.task.done()]
        busy = [r for r in self.runners if r.job is not None]
        if busy and self._stop_grace > 0:
            log.info("stopping: %d job(s) running get %.1fs", len(busy), self._stop_grace)
            await asyncio.wait(running, timeout=self._stop_grace)
        for runner in self.runners:
            job = runner.job
            if job is not None and job.cancelled is None:
                job.cancelled = Cancel.STOP
        await cancel_and_wait_bodies(self.runners, CANCEL_JOBS_WITHIN_S)
        self._hand_back(self.ready.take_all())
        await cancel_and_wait(
            [r.task for r in self.runners if r.task is not None], 0.5, "runners at shutdown"
        )
        if self._keeper is not None:
            await cancel_and_wait([self._keeper], 0.5, "lease keeper")
        self._closing_finisher = True
        if self._finisher is not None:
            if self._finisher_wake is not None:
                _resolve(self._finisher_wake)
            done, _ = await asyncio.wait([self._finisher], timeout=FLUSH_WITHIN_S)
            if not done:
                log.warning("last finishes not sent within %.1fs; leases expire", FLUSH_WITHIN_S)
                await cancel_and_wait([self._finisher], 0.5, "finisher")
        self.watchdog.close()
        log.info(
            "engine stopped: %d complete, %d failed, %d retried, %d cancelled, %d stale",
            self.counts.complete,
            self.counts.failed,
            self.counts.retried,
            self.counts.cancelled,
            self.counts.stale,
        )

    def _hand_back(self, jobs: list[Job]) -> None:
        """Claimed jobs that will not run here: release their leases and give their tries back
        so another worker runs them at once, as if this one never claimed them."""
        for job in jobs:
            if job.lost is not None:
                self._end(job, None)
                continue
            give_back = Finish(
                job.job_id, job.shard, job.token, None, False, retry_to=max(0, job.job_try - 1)
            )
            self._settle(job, None, give_back)


async def cancel_and_wait_bodies(runners: Sequence[Runner], within: float) -> None:
    """Cancel every running body (again every ``RECANCEL_S``) until none runs, or ``within``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        busy = [r for r in runners if r.job is not None and r.task is not None]
        if not busy:
            return
        left = deadline - loop.time()
        if left <= 0:
            log.warning("%d job(s) still running after %.1fs; abandoned", len(busy), within)
            return
        for runner in busy:
            runner.cancel_body()
        tasks = [r.task for r in busy if r.task is not None]
        await asyncio.wait(tasks, timeout=min(RECANCEL_S, left))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
