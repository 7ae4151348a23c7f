"""Download progress: the public API of ``manager.download``.

``DownloadCache`` applies updates (``set_progress``, ``bulk_update_progress``, ``apply_many``
whose ``ApplyResult`` carries a bad key's ``CorruptKeyError``), coalesces them
for the job queue (``publish``/``publish_many`` store pending updates and name the drain job to
enqueue; ``drain`` is that job's body; ``schedule_drains`` repairs lost drains), reads state
(``get_progress``, ``get_many``, ``get_active_downloads``, ``get_user_downloads``), follows live
events (``follower``), caches users' lists and removes stale downloads (``cleanup_stale``).
``member`` is the ``<job>:<user>`` form of the download indexes; ``now_ms`` their time base.

Private modules behind it (import them only to test their internals): ``_models`` (values),
``_layout`` (shards and keys), ``_calls`` (key and argument lists of each download script,
in its header's order), ``_pending`` (coalescing), ``_events`` (event streams), ``_cache``
(``DownloadCache``).
"""

from cache.download._cache import DownloadCache
from cache.download._events import EventFollower, ProgressEvent
from cache.download._layout import member, now_ms
from cache.download._models import (
    MAX_INT,
    TERMINAL,
    ApplyOutcome,
    ApplyResult,
    DownloadProgress,
    DownloadStatus,
    ProgressUpdate,
    PublishOutcome,
    progress_from_fields,
)
from cache.download._pending import DrainIdFactory, DrainReport, PutResult, new_drain_id

__all__ = [
    "MAX_INT",
    "TERMINAL",
    "ApplyOutcome",
    "ApplyResult",
    "DownloadCache",
    "DownloadProgress",
    "DownloadStatus",
    "DrainIdFactory",
    "DrainReport",
    "EventFollower",
    "ProgressEvent",
    "ProgressUpdate",
    "PublishOutcome",
    "PutResult",
    "member",
    "new_drain_id",
    "now_ms",
    "progress_from_fields",
]
