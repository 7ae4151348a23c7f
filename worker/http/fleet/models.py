"""The values the fleet reader returns: frozen dataclasses of plain fields.

The dashboard renders them with Jinja2 and serves them as JSON (``dataclasses.asdict``), and the
exporter turns them into series, so they hold only str, int, float, bool, None and tuples or
lists of these values. Times are wall-clock milliseconds (``*_ms``) or ages in seconds
(``*_s``); a figure the reader could not know is None, and a count cut short by a bound says so
(``complete=False``), never silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SLOT_STATES = ("expected", "claimed", "done", "failed", "skipped", "missed")
"""What a periodic job's slot can be (``Schedule.slots``), in the order a slot goes through them:

- ``expected``: scheduled in the future, or started less than ``fleet.cron_grace`` ago and not
  yet claimed;
- ``claimed``: a run holds its claim (running, or its work owed to the next run);
- ``done``: closed by its own run or by a later run that did its work (``covered_by``);
- ``failed``: its run ended with an error and no later run did its work;
- ``skipped``: a run came (deferred, cancelled or skipped) but nothing did the work and the
  claim is gone;
- ``missed``: no worker claimed it within ``fleet.cron_grace`` (no worker up, or cron stuck).
"""

QUEUE_STATES = ("due", "deferred", "in_progress", "results")
"""Jobs of the queue by state: due and not started, scheduled for later, being run, results
kept (``arq:result:<id>``)."""

WORKER_STATES = ("alive", "stale")

UNREADABLE_KINDS = (
    "heartbeat",
    "download",
    "dead_letter",
    "lock",
    "lease",
    "cron_slot",
    "cron_history",
    "job_counter",
    "other",
)
"""Kinds of rows a fleet read skips when it cannot read them (``cache.unreadable``): the
exporter's ``kind`` label, a fixed set (a kind not listed here counts as ``other``)."""


@dataclass(frozen=True)
class WorkerView:
    """One worker as its heartbeat shows it."""

    worker_id: str
    host: str
    pid: int
    queue: str
    state: str
    """What the worker says (running, stopping, ...) or ``expired`` when its heartbeat is gone
    but its index entry is not yet (killed, or cut off from the store)."""
    heartbeat_age_s: float
    alive: bool
    """The heartbeat is at most ``health.stale_after`` old."""
    running: int
    done: int | None
    failed: int | None
    retried: int | None
    started_ms: int


@dataclass(frozen=True)
class QueueView:
    """One ARQ queue, by state (``QUEUE_STATES``)."""

    name: str
    due: int
    """Due now and not started by any worker (exact when ``counted``)."""
    deferred: int
    in_progress: int
    results: int
    """Results kept (a SCAN of ``arq:result:*``): at least this many when not
    ``results_complete``."""
    oldest_due_age_s: float | None
    """Age of the oldest due job no worker has started; None when there is none (or unknown)."""
    counted: bool
    """Every due job was checked for a running marker (else the oldest ``fleet.queue_scan``)."""
    results_complete: bool


@dataclass(frozen=True)
class JobTotals:
    """Fleet-wide job counters (``seen:jobs:stats``), and their rates since the previous read.
    None: that counter is not an integer in the store (unreadable, so unknown)."""

    done: int | None
    failed: int | None
    retried: int | None
    done_per_s: float | None = None
    failed_per_s: float | None = None
    retried_per_s: float | None = None


@dataclass(frozen=True)
class StoreView:
    """The cache store as INFO shows it; a field INFO did not give is None or 0."""

    ok: bool
    server: str = ""
    version: str = ""
    used_memory: int = 0
    max_memory: int = 0
    memory_ratio: float | None = None
    hit_rate: float | None = None
    keyspace_hits: int = 0
    keyspace_misses: int = 0
    evicted_keys: int = 0
    ops_per_sec: int = 0
    connected_clients: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Overview:
    """The fleet at one moment: workers, queue, job totals, cache store, dead letters."""

    at_ms: int
    workers: list[WorkerView]
    queue: QueueView
    jobs: JobTotals
    store: StoreView
    dead_letters: int
    stale_after_s: float
    alive: int = field(init=False)
    """Workers with a fresh heartbeat (computed from ``workers``)."""
    stale: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "alive", sum(w.alive for w in self.workers))
        object.__setattr__(self, "stale", sum(not w.alive for w in self.workers))


@dataclass(frozen=True)
class SlotView:
    """One scheduled slot of a periodic job."""

    slot: int
    start_ms: int
    state: str
    """One of ``SLOT_STATES``."""
    job_id: str | None = None
    """The run that claimed, closed or last tried it."""
    covered_by: str | None = None
    """The later run that did this slot's work, when not its own."""


@dataclass(frozen=True)
class RunView:
    """One recorded run of a periodic job (``seen:cronlog:<job>``)."""

    job_id: str
    slot: int | None
    outcome: str
    started_ms: int
    seconds: float | None
    worker: str | None
    job_try: int | None
    covered: tuple[int, ...] = ()


@dataclass(frozen=True)
class Schedule:
    """One periodic job: its period, recent slots (oldest first), run history (newest first)."""

    name: str
    period_s: int
    slots: list[SlotView]
    history: list[RunView]
    last_success_ms: int | None
    """When the newest successful run in the history finished."""
    counts: dict[str, int] = field(init=False)
    """Slots by state, every one of ``SLOT_STATES`` (computed from ``slots``)."""

    def __post_init__(self) -> None:
        counts = dict.fromkeys(SLOT_STATES, 0)
        for slot in self.slots:
            counts[slot.state] = counts.get(slot.state, 0) + 1
        object.__setattr__(self, "counts", counts)

    def count(self, state: str) -> int:
        """Slots in ``state`` (``counts[state]``; 0 for a state no slot can have)."""
        return self.counts.get(state, 0)


@dataclass(frozen=True)
class DeadLetterView:
    """One dead letter, its payload cut to the page's size."""

    id: str
    """``jobs.deadletter.letter_id`` of the stored text: the same entry always has the same id,
    and the dashboard's requeue action finds the entry by it."""
    at_ms: int
    job_id: str | None
    function: str
    reason: str
    kind: str
    """A bounded class of the reason (``DEAD_LETTER_KINDS``), the exporter's label."""
    payload: str
    truncated: bool
    """The payload shown is not whole (cut here, or already when it was dead-lettered)."""
    job_try: int | None
    stored_truncated: bool
    """The payload was already cut when dead-lettered, so the entry cannot be requeued."""


@dataclass(frozen=True)
class ReasonGroup:
    reason: str
    kind: str
    count: int
    newest_ms: int


@dataclass(frozen=True)
class DeadLetters:
    """The newest dead letters (at most the asked limit), grouped by reason (biggest first)."""

    total: int
    """Entries in the list (``LLEN``), not only those read."""
    groups: list[ReasonGroup]
    entries: list[DeadLetterView]
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LockView:
    """A lock, a maintenance run guard or a job lease, as the store holds it now."""

    kind: str
    """``lock`` (cache store), ``guard`` (maintenance run guard) or ``lease`` (job lease)."""
    name: str
    """Lock name, maintenance job name, or job id of a lease."""
    holder: str
    """Who holds it, without the secret part of its token: a lease's worker id, a guard's job
    id; a lock's random token is never shown whole (first 8 characters)."""
    fencing_token: int | None
    ttl_s: float | None
    """Time left on the lease; None when the key has no TTL (a lock that never expires)."""
    store: str


@dataclass(frozen=True)
class ShardView:
    """One download shard (``{dl:<n>}``)."""

    shard: int
    active: int
    """Downloads in the shard's active index (queued, downloading, paused)."""
    pending: int
    """Coalesced updates not yet applied."""
    events: int
    """Entries in the shard's event stream (capped at ``download.events_maxlen``, about)."""
    newest_event_age_s: float | None
    """Age of the newest progress event; None when the stream is empty."""
