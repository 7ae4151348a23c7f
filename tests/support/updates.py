"""Progress updates for the tests."""

from __future__ import annotations

from cache.download import DownloadStatus, ProgressUpdate


def upd(
    job: str,
    seq: int,
    status: DownloadStatus | str = DownloadStatus.DOWNLOADING,
    *,
    user: str = "u1",
    done: int | None = None,
    total: int = 1_000_000,
    emitted: int | None = None,
    error: str | None = None,
) -> ProgressUpdate:
    """An update; ``done`` defaults to ``seq`` bytes so states are easy to tell apart."""
    return ProgressUpdate(
        job_id=job,
        user_id=user,
        status=DownloadStatus(status),
        seq=seq,
        bytes_done=seq if done is None else done,
        bytes_total=total,
        emitted_at_ms=emitted,
        error=error,
    )
