"""Sentry error reporting: on when ``sentry.dsn`` (``SEEN_SENTRY_DSN``) is set, off otherwise.

Every job function is wrapped so an exception is captured with the job's name, id and try as
tags (and an ``arq_job`` context); ARQ's control-flow exceptions (``Retry``) are not errors. The
ARQ integration adds a transaction per job and spans for enqueues. Before an event leaves the
process, ``scrub`` replaces the value of anything named like a secret (password, token,
authorization, dsn, cookie, key ...) and masks credentials inside URLs and ``name=value`` text,
everywhere in the event: messages, exception values, frame variables, extra, contexts, tags,
breadcrumbs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import sentry_sdk
from arq.cron import CronJob
from arq.worker import Function, Retry, RetryJob
from sentry_sdk.integrations.arq import ArqIntegration
from sentry_sdk.integrations.logging import ignore_logger
from sentry_sdk.transport import Transport

from worker.engine.functions import JobFunction
from worker.settings import Settings

FILTERED = "[Filtered]"
JOB_LOGGER = "seen.worker.jobs"
"""The engine's per-job log (``worker.engine.run``)."""
_SECRET_NAME = re.compile(
    r"pass(word|wd)?|secret|token|authorization|^auth$|api[_-]?key|dsn|cookie|credential"
    r"|private[_-]?key|session[_-]?id",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.-]*://)([^/\s:@]*):([^/\s@]+)@", re.IGNORECASE)
_INLINE_SECRET = re.compile(
    r"\b(password|passwd|secret|token|authorization|api[_-]?key|dsn)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)",
    re.IGNORECASE,
)
_CONTROL_FLOW = (Retry, RetryJob)

J = TypeVar("J", Function, CronJob)


def scrub_text(text: str) -> str:
    """Mask ``scheme://user:password@`` and ``password=...`` inside free text."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}:{FILTERED}@", text)
    return _INLINE_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{FILTERED}", text)


def scrub(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with secrets replaced (dict keys by name, strings by content)."""
    if depth > 20:
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            k: FILTERED if isinstance(k, str) and _SECRET_NAME.search(k) else scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(scrub(v, depth + 1) for v in value)
    return value


def before_send(event: Any, hint: Any) -> Any:
    """Sentry ``before_send``: the event with every secret scrubbed."""
    return scrub(event)


def sentry_enabled() -> bool:
    """Whether this process reports to Sentry (a client with a DSN is set up)."""
    client = sentry_sdk.get_client()
    return client.is_active() and bool(client.options.get("dsn"))


def init_sentry(
    settings: Settings, worker_id: str | None = None, *, transport: Transport | None = None
) -> bool:
    """Initialise Sentry once per process when a DSN is configured; True when it is on."""
    dsn = settings.sentry.dsn
    if dsn is None:
        return False
    if sentry_enabled():
        return True  # already on in this process (``seen-worker run`` inits before ARQ)
    options: dict[str, Any] = {
        "dsn": dsn.get_secret_value(),
        "environment": settings.sentry.environment,
        "traces_sample_rate": settings.sentry.traces_sample_rate,
        "before_send": before_send,
        "before_send_transaction": before_send,
        "integrations": [ArqIntegration()],
    }
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
    # a failed job is sent once, by its wrapper (with the job's tags); the engine's log line
    # about the same failure must not become a second event
    ignore_logger(JOB_LOGGER)
    if worker_id:
        sentry_sdk.set_tag("worker_id", worker_id)
    return True


def _wrap(name: str, coroutine: Any) -> Any:
    async def job(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        with sentry_sdk.isolation_scope() as scope:
            job_id, job_try = ctx.get("job_id"), ctx.get("job_try")
            scope.set_tag("job_name", name)
            scope.set_tag("job_id", job_id)
            scope.set_tag("job_try", job_try)
            scope.set_context(
                "arq_job",
                {
                    "name": name,
                    "id": job_id,
                    "try": job_try,
                    "enqueued": str(ctx.get("enqueue_time")),
                },
            )
            try:
                return await coroutine(ctx, *args, **kwargs)
            except _CONTROL_FLOW:
                raise
            except Exception as exc:
                sentry_sdk.capture_exception(exc)
                raise

    job.__qualname__ = getattr(coroutine, "__qualname__", name)
    job.__name__ = name
    job.__wrapped__ = coroutine  # type: ignore[attr-defined]
    return job


def instrument(jobs: Sequence[J]) -> list[J]:
    """Copies of ARQ functions / cron jobs whose coroutines report to Sentry."""
    return [dataclasses.replace(j, coroutine=_wrap(j.name, j.coroutine)) for j in jobs]


def instrument_table(table: Mapping[str, JobFunction]) -> dict[str, JobFunction]:
    """The engine's job table with every coroutine reporting to Sentry."""
    return {
        name: dataclasses.replace(j, coroutine=_wrap(j.name, j.coroutine))
        for name, j in table.items()
    }
