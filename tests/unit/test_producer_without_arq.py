"""The producer API needs no ARQ (the base install has none): what it took from ARQ is written
in ``jobs`` and checked here against the pinned ARQ, and the whole API imports with ARQ (and the
worker's and dashboard's packages, and OpenTelemetry) made unimportable."""

from __future__ import annotations

import subprocess
import sys

import arq.constants
import pytest
from arq.jobs import DeserializationError, SerializationError, serialize_job

from jobs.client import job_record
from jobs.serializer import InvalidJobRecordError, deserialize, serialize
from jobs.wire.layout import DEFAULT_QUEUE_NAME, JOB_EXPIRY_EXTRA_MS
from tests.support.imports import ROOT


@pytest.mark.parametrize(
    "args", [(), (1, "two", {"three": [3]}), ({"job_id": "dl-1", "seq": 4},)], ids=str
)
def test_the_job_record_is_byte_for_byte_arqs(args: tuple[object, ...]) -> None:
    ours = job_record("update_progress", args, 1_700_000_000_123)
    theirs = serialize_job(
        "update_progress", args, {}, None, 1_700_000_000_123, serializer=serialize
    )
    assert ours == theirs


def test_arqs_numbers_are_ours() -> None:
    assert arq.constants.default_queue_name == DEFAULT_QUEUE_NAME
    assert arq.constants.expires_extra_ms == JOB_EXPIRY_EXTRA_MS


def test_with_arq_installed_record_errors_are_arqs() -> None:
    with pytest.raises(InvalidJobRecordError) as info:
        deserialize(b'{"f": 1}')
    assert isinstance(info.value, DeserializationError | SerializationError)
    assert isinstance(info.value, ValueError)


BLOCKED = (
    "arq",
    "uvloop",
    "sentry_sdk",
    "rich",
    "prometheus_client",
    "pydantic_settings",
    "starlette",
    "uvicorn",
    "jinja2",
    "opentelemetry",
)
PROBE = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # "import name" now raises ImportError
import jobs, cache
from jobs import (ProgressPublisher, JobHandle, JobStatus, QueueLayout, enqueue, enqueue_job,
                  enqueue_jobs, enqueue_update, enqueue_update_batch, job, periodic,
                  JobContext, JobError, JobFailedError)
from jobs.serializer import InvalidJobRecordError, deserialize
from cache import CacheManager

@job(timeout=5)
async def hello(ctx: JobContext) -> str:
    return "hi"

from jobs.wire.trace import current_trace_context
assert current_trace_context() is None  # no OpenTelemetry: records carry no trace context

try:
    deserialize(b"[]")
except InvalidJobRecordError as exc:
    assert isinstance(exc, ValueError)
loaded = sorted(
    m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in {BLOCKED!r}
)
print("ok", loaded)
"""


@pytest.mark.timeout(30)
def test_the_producer_api_imports_without_the_worker_packages() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=25
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok []"
