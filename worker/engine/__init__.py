"""The job engine: a worker loop of its own over ARQ's job format (docs/architecture.md).

``Engine`` (``engine``) composes the parts: ``poll`` (which due ids to try, fairly across
shards), ``claim`` and ``finish`` (one script call per shard for a batch), ``runners`` (a fixed
set of long-lived runners instead of a Task per job), ``run`` (ARQ's rules for how a job ends),
``leases`` (tokened leases, renewed in batches), ``watchdog`` (one timer for every deadline),
``schedule`` (periodic jobs) and ``functions`` (the job table). Keys come from the queue's layout
(``jobs.wire.layout``), scripts from the project's one runner (``cache.scripts``).
"""

from worker.engine.engine import Engine, EngineConfig

__all__ = ["Engine", "EngineConfig"]
