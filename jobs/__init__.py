"""Jobs and the producer API. Imports ``cache``, never ``worker``.

What a producer or a job author uses, importable with the base install (no ARQ, no worker)::

    from jobs import ProgressPublisher, QueueLayout, enqueue, JobHandle   # producers
    from jobs import job, periodic, JobContext                            # job authors

- enqueue: ``enqueue`` (returns a ``JobHandle``), ``enqueue_job``, ``enqueue_jobs``,
  ``enqueue_update``, ``enqueue_update_batch``, ``ProgressPublisher``; the queue's keys:
  ``QueueLayout`` (``Settings.queue.key_layout()`` in the worker; docs/wire-format.md).
- follow a job: ``JobHandle`` (``status``, ``info``, ``result``, ``abort``), ``JobStatus``,
  ``JobInfo``.
- write a job: ``job``, ``periodic``, ``JobContext``
  (docs/write-your-own-job.md).
- errors: ``JobError`` and its kinds.

The names are loaded on first use (PEP 562), so ``import jobs`` alone loads nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.client import (
        ProgressPublisher,
        enqueue,
        enqueue_job,
        enqueue_jobs,
        enqueue_update,
        enqueue_update_batch,
    )
    from jobs.context import JobContext
    from jobs.errors import (
        InvalidPayloadError,
        JobAbortedError,
        JobError,
        JobFailedError,
        JobNotFoundError,
        JobTimeoutError,
        PublishError,
    )
    from jobs.handle import JobHandle, JobInfo, JobStatus
    from jobs.registry import job, periodic
    from jobs.wire.layout import QueueLayout

_API = {
    "InvalidPayloadError": "jobs.errors",
    "JobAbortedError": "jobs.errors",
    "JobContext": "jobs.context",
    "JobError": "jobs.errors",
    "JobFailedError": "jobs.errors",
    "JobHandle": "jobs.handle",
    "JobInfo": "jobs.handle",
    "JobNotFoundError": "jobs.errors",
    "JobStatus": "jobs.handle",
    "JobTimeoutError": "jobs.errors",
    "ProgressPublisher": "jobs.client",
    "PublishError": "jobs.errors",
    "QueueLayout": "jobs.wire.layout",
    "enqueue": "jobs.client",
    "enqueue_job": "jobs.client",
    "enqueue_jobs": "jobs.client",
    "enqueue_update": "jobs.client",
    "enqueue_update_batch": "jobs.client",
    "job": "jobs.registry",
    "periodic": "jobs.registry",
}
"""Public name -> the module that defines it."""

__all__ = [
    "InvalidPayloadError",
    "JobAbortedError",
    "JobContext",
    "JobError",
    "JobFailedError",
    "JobHandle",
    "JobInfo",
    "JobNotFoundError",
    "JobStatus",
    "JobTimeoutError",
    "ProgressPublisher",
    "PublishError",
    "QueueLayout",
    "enqueue",
    "enqueue_job",
    "enqueue_jobs",
    "enqueue_update",
    "enqueue_update_batch",
    "job",
    "periodic",
]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'jobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
