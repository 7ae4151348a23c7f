"""The whole fleet as the stores show it, for ``seen-worker dashboard`` and its ``/metrics``.

``FleetReader`` (``reader``) builds each view with one module: ``workers`` (heartbeats),
``queue`` (ARQ's queue by state), ``store`` (cache INFO), ``schedules`` (periodic jobs' slots
and history), ``deadletters``, ``locks`` (locks, run guards, job leases), ``downloads``
(per shard). ``bounds`` holds the deadline and the bounded SCAN walks every read keeps to;
``models`` the values (frozen dataclasses of plain fields). The ``seen_fleet_*`` series are
the dashboard's (``dashboard.exporter``).
"""

from worker.fleet.bounds import FleetTimeout
from worker.fleet.models import (
    QUEUE_STATES,
    SLOT_STATES,
    DeadLetters,
    DeadLetterView,
    JobTotals,
    LockView,
    Overview,
    QueueView,
    ReasonGroup,
    RunView,
    Schedule,
    ShardView,
    SlotView,
    StoreView,
    WorkerView,
)
from worker.fleet.reader import FleetReader

__all__ = [
    "QUEUE_STATES",
    "SLOT_STATES",
    "DeadLetterView",
    "DeadLetters",
    "FleetReader",
    "FleetTimeout",
    "JobTotals",
    "LockView",
    "Overview",
    "QueueView",
    "ReasonGroup",
    "RunView",
    "Schedule",
    "ShardView",
    "SlotView",
    "StoreView",
    "WorkerView",
]
