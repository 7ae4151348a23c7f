"""One error hierarchy for the jobs layer: callers catch ``JobError``.

Each error names the job id (or the download) it concerns, so a log line alone says what failed.
Store failures stay ``CacheError``s inside the cache layer; the jobs layer wraps them where a
producer needs one type to catch (``PublishError``).
"""

from __future__ import annotations


class JobError(Exception):
    """Base of every error raised by the jobs layer."""

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(f"{message} (job={job_id})" if job_id is not None else message)


class InvalidPayloadError(JobError, ValueError):
    """A job's arguments failed validation; the job fails without retries and the payload is
    kept in the dead-letter list (``jobs.deadletter``)."""

    def __init__(self, message: str, *, job_id: str | None = None, reason: str = "") -> None:
        self.reason = reason or message
        super().__init__(message, job_id=job_id)


class StoredStateError(JobError):
    """A job's valid payload could not be applied because a stored key it needs holds the
    wrong type or an unusable value (``cache.errors.CorruptKeyError``). The job fails without
    retries and the payload is dead-lettered with the reason naming the key; the key was
    removed, so the same payload applies when it is sent again."""

    def __init__(self, message: str, *, job_id: str | None = None, reason: str = "") -> None:
        self.reason = reason or message
        super().__init__(message, job_id=job_id)


class PublishError(JobError):
    """A producer could not hand an update or a job to the store (it is safe to retry)."""


class JobFailedError(JobError):
    """The job ran and failed (or was aborted): ``error`` is the exception's type name and
    ``detail`` its message, as the worker stored them in the result record."""

    def __init__(self, error: str, detail: str, *, job_id: str | None = None) -> None:
        self.error = error
        self.detail = detail
        super().__init__(f"job failed: {error}: {detail}" if detail else error, job_id=job_id)


class JobAbortedError(JobFailedError):
    """The job was cancelled (``JobHandle.abort``, or its timeout) before it finished."""


class JobNotFoundError(JobError):
    """Neither queued, running nor finished with a kept result (its result expired, it was
    never enqueued, or its function keeps no result)."""


class JobTimeoutError(JobError, TimeoutError):
    """No result within the caller's deadline; the job may still finish later."""
