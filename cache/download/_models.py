"""Download progress values: what producers send (``ProgressUpdate``), what readers get
(``DownloadProgress``) and what an apply did (``ApplyOutcome``, ``ApplyResult``,
``PublishOutcome``).

The stored form is a hash with short field names, the same names as the fields of an event in
the shard's stream, so one parser serves both (``progress_from_fields``). Numbers are stored as
integer strings; the percentage in basis points. docs/wire-format.md lists every field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_validator,
)

from cache.codec import as_text
from cache.errors import CorruptKeyError
from cache.keys import validate_id

MAX_INT = 2**53 - 1
"""Largest integer every producer language and both Lua versions hold exactly."""

StrictCount = Annotated[int, Field(strict=True, ge=0, le=MAX_INT)]


class DownloadStatus(StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Completed, failed and cancelled are final: no later update changes them."""
        return self in TERMINAL


TERMINAL = frozenset({DownloadStatus.COMPLETED, DownloadStatus.FAILED, DownloadStatus.CANCELLED})


class ApplyOutcome(IntEnum):
    """What the apply script did with one update (its integer return).

    ``CORRUPT`` is not a return of the script: it stands for its ``BADKEY`` error reply, a
    stored key of the download or of its shard it could not use (``ApplyResult.error`` names
    it). Nothing of the update was applied; the key was removed, so the update applies when it
    is sent again."""

    STALE = 0
    APPLIED = 1
    DUPLICATE = 2
    FINAL = 3
    REJECTED = 4
    EMPTY = 5
    CORRUPT = 6


@dataclass(frozen=True)
class ApplyResult:
    """One update's outcome, with the bad key's error when the outcome is ``CORRUPT``."""

    outcome: ApplyOutcome
    error: CorruptKeyError | None = None


def apply_results(replies: Sequence[Any]) -> list[ApplyResult]:
    """The apply script's replies (from ``ScriptRunner.run_many``) as results: a
    ``CorruptKeyError`` in a call's place is a ``CORRUPT`` outcome carrying it."""
    return [
        ApplyResult(ApplyOutcome.CORRUPT, r)
        if isinstance(r, CorruptKeyError)
        else ApplyResult(ApplyOutcome(int(r)))
        for r in replies
    ]


class PublishOutcome(IntEnum):
    """What a coalescing put did (first element of the put script's return).

    ``CORRUPT`` stands for the put script's ``BADKEY`` error reply: a stored key it reads was
    unusable, the update was not stored (``PutResult.error`` names the key, which was removed),
    and putting it again goes through."""

    IGNORED = 0
    COALESCED = 1
    SCHEDULED = 2
    RESCHEDULED = 3
    REJECTED = 4
    CORRUPT = 5

    @property
    def needs_enqueue(self) -> bool:
        """The caller must enqueue the drain job whose id the put returned."""
        return self in (PublishOutcome.SCHEDULED, PublishOutcome.RESCHEDULED)


class ProgressUpdate(BaseModel):
    """One progress report from the download pipeline: the ``update_progress`` payload.

    ``seq`` orders a download's updates (higher wins; equal is a duplicate). ``emitted_at_ms``
    is the producer's clock when it measured ``bytes_done``: speed is computed from it, so
    queueing and coalescing do not distort it. Unknown fields are rejected, not ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    user_id: str
    status: DownloadStatus
    seq: StrictCount
    bytes_done: StrictCount = 0
    bytes_total: StrictCount = 0
    emitted_at_ms: StrictCount | None = None
    error: str | None = Field(None, max_length=2000)

    @field_validator("job_id", "user_id")
    @classmethod
    def _check_id(cls, value: object, info: ValidationInfo) -> str:
        return validate_id(value, info.field_name or "id")


class DownloadProgress(BaseModel):
    """The applied state of one download, as readers and the live view see it."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    user_id: str
    status: DownloadStatus
    bytes_done: int = 0
    bytes_total: int = 0
    progress_percent: float = 0.0
    speed: int = Field(0, description="bytes per second, moving average")
    eta_seconds: int | None = None
    seq: int = 0
    updated_at: datetime
    error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def speed_mbps(self) -> float:
        """The compatibility view of ``speed`` for existing readers: megabits per second."""
        return round(self.speed * 8 / 1_000_000, 3)

    @property
    def terminal(self) -> bool:
        return self.status.terminal


def _int(fields: Mapping[str, str], name: str, default: int = 0) -> int:
    raw = fields.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


def progress_from_fields(
    fields: Mapping[bytes, bytes] | Mapping[str, str], job_id: str | None = None
) -> DownloadProgress | None:
    """Parse a progress hash (HGETALL) or an event entry; None when empty or unreadable."""
    try:
        return parse_progress(fields, job_id)
    except ValueError:
        return None


def parse_progress(
    fields: Mapping[bytes, bytes] | Mapping[str, str], job_id: str | None = None
) -> DownloadProgress | None:
    """Parse a progress hash or event entry: None when empty (expired); ``ValueError`` saying
    what is wrong when it holds something that is not a download's state."""
    if not fields:
        return None
    text = {as_text(k): as_text(v) for k, v in fields.items()}
    job = job_id or text.get("job")
    if not job:
        raise ValueError("no job id")
    if not text.get("status"):
        raise ValueError("no status")
    try:
        status = DownloadStatus(text["status"])
    except ValueError:
        raise ValueError(f"unknown status {text['status'][:40]!r}") from None
    eta = _int(text, "eta", -1)
    updated_ms = _int(text, "updated")
    try:
        updated_at = datetime.fromtimestamp(updated_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"updated time {updated_ms} ms is out of range") from None
    return DownloadProgress(
        job_id=job,
        user_id=text.get("user", ""),
        status=status,
        bytes_done=_int(text, "done"),
        bytes_total=_int(text, "total"),
        progress_percent=_int(text, "pct") / 100,
        speed=_int(text, "speed"),
        eta_seconds=eta if eta >= 0 else None,
        seq=_int(text, "seq"),
        updated_at=updated_at,
        error=text.get("error") or None,
    )
