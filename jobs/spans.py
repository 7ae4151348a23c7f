"""Spans around a job's store writes, when the worker traces the job (docs/tracing.md).

A traced job's context holds ``spans`` (``jobs.context.StoreSpans``; the worker's is
``worker.engine.tracing.StoreSpans``);
``store_write(ctx, name, **attributes)`` is a span there, a child of the job's span, and a
shared no-op context manager otherwise (tracing off, the job not traced, plain ARQ, a context
built by hand): one dict lookup. Attributes must be bounded (sizes, shard indexes), never ids
or payloads.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from jobs.context import JobContext

_UNTRACED: AbstractContextManager[None] = nullcontext()

BATCH_SIZE = "seen.batch_size"
"""Items one store write carries (updates, dead letters)."""
DOWNLOAD_SHARD = "seen.download.shard"
"""The progress shard (``download.shards``) a drain applies."""


def store_write(
    ctx: JobContext, name: str, **attributes: int | str
) -> AbstractContextManager[None]:
    """A span named ``name`` around one store write of the job (``with store_write(...)``)."""
    spans = ctx.get("spans")
    return _UNTRACED if spans is None else spans.store_write(name, attributes)
