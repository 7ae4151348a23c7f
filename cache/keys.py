"""KeyBuilder: the only place a key string is formed.

Layout: ``<namespace>:<kind>:...`` (namespace ``seen``). Caller-supplied ids are validated, never
escaped silently: an id with a glob character, a separator or a brace is rejected with
``InvalidKeyError``, so it can neither act as a SCAN pattern nor move a key into another
hashtag. Free text (search queries, refresh tokens) is hashed into the key instead.

Keys that one Lua script touches together share a ``{hashtag}``, so Dragonfly's
``--lock_on_hashtags`` (and Redis Cluster) see them as one unit:

- a lock and its fencing counter: ``seen:lock:{<name>}`` and ``seen:lock:{<name>}:fence``;
- one user's catalog: generation, entries and fill locks under ``{u:<user>}``;
- download state: every key of one shard under ``{dl:<shard>}`` (progress, active index,
  per-user index, event stream).
"""

from __future__ import annotations

import hashlib
import re
import zlib

from cache.errors import InvalidKeyError

MAX_ID_LENGTH = 128
# Matched with ``fullmatch``: ``$`` alone would also accept a trailing newline.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@=+-]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@=+/:-]*")
_GLOB = re.compile(r"([*?\[\]\\])")


def validate_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it is a safe id: 1-128 chars of ``[A-Za-z0-9._@=+-]``."""
    if not isinstance(value, str):
        raise InvalidKeyError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidKeyError(f"{what} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidKeyError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if not _ID.fullmatch(value):
        raise InvalidKeyError(
            f"{what} {value!r} has a character outside [A-Za-z0-9._@=+-] "
            "(no '*', '?', '[', ':', '{', '}', spaces or control characters)"
        )
    return value


def validate_name(value: object, what: str = "name") -> str:
    """Like ``validate_id`` but also allows ``:`` and ``/`` (lock and job names)."""
    if not isinstance(value, str):
        raise InvalidKeyError(f"{what} must be a string, got {type(value).__name__}")
    if not value or len(value) > MAX_ID_LENGTH or not _NAME.fullmatch(value):
        raise InvalidKeyError(
            f"{what} {value!r} must be 1-{MAX_ID_LENGTH} characters of [A-Za-z0-9._@=+/:-]"
        )
    return value


def escape_glob(text: str) -> str:
    """Escape SCAN/KEYS glob metacharacters so ``text`` matches only itself."""
    return _GLOB.sub(r"\\\1", text)


def digest(text: str) -> str:
    """A short, stable, collision-resistant digest for free text inside a key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def token_hash(token: str) -> str:
    """Full SHA-256 of a secret token: keys and logs never hold the raw token."""
    if not isinstance(token, str) or not token:
        raise InvalidKeyError("token must be a non-empty string")
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def shard_of(item_id: str, shards: int) -> int:
    """Stable shard number of an id in ``[0, shards)``, the same in every language.

    CRC-32 (IEEE 802.3 polynomial, as zlib ``crc32``, Go ``hash/crc32.ChecksumIEEE``, Java
    ``java.util.zip.CRC32``, Node ``zlib.crc32``) of the id's UTF-8 bytes as an unsigned 32-bit
    integer, modulo ``shards``. Example: ``shard_of("dl-1", 16) == 9``.
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    return zlib.crc32(item_id.encode("utf-8")) % shards


class KeyBuilder:
    """Forms every key of the system under one namespace."""

    def __init__(self, namespace: str = "seen") -> None:
        self.namespace = validate_id(namespace, "namespace")
        self._p = f"{self.namespace}:"

    def __repr__(self) -> str:
        return f"KeyBuilder({self.namespace!r})"

    # -- generic -----------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        """``<ns>:part:part...``; every part validated as an id."""
        if not parts:
            raise InvalidKeyError("a key needs at least one part")
        return self._p + ":".join(validate_id(p, "key part") for p in parts)

    def pattern(self, *parts: str) -> str:
        """A SCAN pattern for every key below ``<ns>:parts...:``; parts are literal."""
        return self._p + "".join(escape_glob(validate_id(p, "key part")) + ":" for p in parts) + "*"

    def all_pattern(self) -> str:
        """Every key of this namespace."""
        return self._p + "*"

    def owns(self, key_or_pattern: str) -> bool:
        """Whether a key or pattern lies inside this namespace."""
        return key_or_pattern.startswith(self._p)

    # -- sessions and profiles -------------------------------------------------------
    def session(self, session_id: str) -> str:
        return f"{self._p}session:{validate_id(session_id, 'session_id')}"

    def session_by_refresh_token(self, refresh_token: str) -> str:
        return f"{self._p}session:refresh:{token_hash(refresh_token)}"

    def user_sessions(self, user_id: str) -> str:
        return f"{self._p}user:{validate_id(user_id, 'user_id')}:sessions"

    def user_profile(self, user_id: str) -> str:
        return f"{self._p}user:{validate_id(user_id, 'user_id')}:profile"

    # -- catalog -----------------------------------------------------------------------
    # Per-user keys share the hashtag {u:<user>} (generation, entries, fill locks), so the
    # one-round-trip MGET of a generation and an entry stays in one hash slot.
    def catalog_user_generation(self, user_id: str) -> str:
        return f"{self._p}catalog:gen:{{u:{validate_id(user_id, 'user_id')}}}"

    def catalog_global_generation(self) -> str:
        return f"{self._p}catalog:gen:global"

    def catalog_user_entry(self, kind: str, user_id: str, generation: int) -> str:
        """Per-user catalog entry (dashboard, watch_later, continue_watching, ...)."""
        uid = validate_id(user_id, "user_id")
        return f"{self._p}catalog:{validate_id(kind, 'kind')}:{{u:{uid}}}:g{int(generation)}"

    def catalog_shared_entry(self, kind: str, item: str, generation: int) -> str:
        """Shared catalog entry (discover section, search digest) under the global generation."""
        return (
            f"{self._p}catalog:{validate_id(kind, 'kind')}:{{s:{validate_id(item, 'item')}}}"
            f":g{int(generation)}"
        )

    def catalog_search_entry(self, canonical_query: str, generation: int) -> str:
        """Search results: the (normalised) query text is hashed, so any length or character
        is safe and the key length is bounded."""
        return self.catalog_shared_entry("search", digest(canonical_query), generation)

    def catalog_fill_lock(self, entry_key: str) -> str:
        """Single-flight lock for filling one catalog entry (same hashtag as the entry)."""
        if not entry_key.startswith(f"{self._p}catalog:") or not entry_key.isprintable():
            raise InvalidKeyError(f"{entry_key!r} is not a catalog entry key")
        return f"{entry_key}:fill"

    def catalog_stats(self) -> str:
        return f"{self._p}catalog:stats"

    # -- downloads -----------------------------------------------------------------------
    def download_tag(self, shard: int) -> str:
        return f"{{dl:{int(shard)}}}"

    def download_progress(self, job_id: str, shard: int) -> str:
        return f"{self._p}{self.download_tag(shard)}:progress:{validate_id(job_id, 'job_id')}"

    def download_active(self, shard: int) -> str:
        return f"{self._p}{self.download_tag(shard)}:active"

    def download_user_index(self, user_id: str, shard: int) -> str:
        uid = validate_id(user_id, "user_id")
        return f"{self._p}{self.download_tag(shard)}:user:{uid}"

    def download_events(self, shard: int) -> str:
        return f"{self._p}{self.download_tag(shard)}:events"

    def download_stats(self, shard: int) -> str:
        return f"{self._p}{self.download_tag(shard)}:stats"

    def download_pending(self, job_id: str, shard: int) -> str:
        """Pending update: the newest published, not yet applied update of one download."""
        return f"{self._p}{self.download_tag(shard)}:pending:{validate_id(job_id, 'job_id')}"

    def download_pending_set(self, shard: int) -> str:
        """Downloads of one shard with a pending update (zset ``<job>:<user>`` -> first put ms)."""
        return f"{self._p}{self.download_tag(shard)}:pending"

    def download_drain(self, shard: int) -> str:
        """The shard's scheduled drain job (hash: id, at): at most one at a time."""
        return f"{self._p}{self.download_tag(shard)}:drain"

    def download_list(self, user_id: str) -> str:
        return f"{self._p}download:list:{validate_id(user_id, 'user_id')}"

    # -- coordination --------------------------------------------------------------------
    def lock(self, name: str) -> str:
        return f"{self._p}lock:{{{validate_name(name, 'lock name')}}}"

    def lock_fence(self, name: str) -> str:
        return f"{self._p}lock:{{{validate_name(name, 'lock name')}}}:fence"

    def rate_limit(self, user_id: str, action: str) -> str:
        uid = validate_id(user_id, "user_id")
        return f"{self._p}ratelimit:{uid}:{validate_id(action, 'action')}"

    def rate_limit_fixed(self, user_id: str, action: str) -> str:
        """Counter of the fixed-window limiter (kept apart from the GCRA state)."""
        return f"{self.rate_limit(user_id, action)}:fixed"

    # -- jobs and workers ----------------------------------------------------------------
    def dead_letter(self) -> str:
        return f"{self._p}jobs:dead"

    def job_stats(self) -> str:
        return f"{self._p}jobs:stats"

    def history_bucket(self, step_s: int, index: int) -> str:
        """The fleet's history of one time bucket (``jobs.history``): ``step_s`` seconds long
        (60: a minute, 600: ten minutes), the ``index``-th since the epoch."""
        return f"{self._p}history:{int(step_s)}:{int(index)}"

    def history_sampled(self, minute: int) -> str:
        """Taken (SET NX) by the one dashboard process that samples the queue this minute."""
        return f"{self._p}history:sampled:{int(minute)}"

    def cron_slot(self, job_name: str, slot: int) -> str:
        return f"{self._p}cron:{validate_name(job_name, 'job name')}:{int(slot)}"

    def cron_history(self, job_name: str) -> str:
        """Capped list of the last runs of a periodic job (who ran which slot, outcome)."""
        return f"{self._p}cronlog:{validate_name(job_name, 'job name')}"

    def maintenance_lock(self, job_name: str) -> str:
        """Guard that keeps a manual and a scheduled run of one maintenance job apart."""
        return self.lock(f"maintenance:{validate_name(job_name, 'job name')}")

    def worker_heartbeat(self, worker_id: str) -> str:
        return f"{self._p}worker:{validate_id(worker_id, 'worker_id')}"

    def worker_arq_health(self, worker_id: str) -> str:
        """ARQ's own health-check string, made per worker (ARQ shares one by default)."""
        return f"{self._p}worker:{validate_id(worker_id, 'worker_id')}:arq-health"

    def workers_index(self) -> str:
        return f"{self._p}workers"

    def health_probe(self, nonce: str) -> str:
        return f"{self._p}health:probe:{validate_id(nonce, 'nonce')}"
