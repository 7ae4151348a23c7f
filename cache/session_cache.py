"""Sessions, user profiles and refresh-token lookup (``manager.session``).

A session is stored at ``seen:session:<id>`` for ``min(ttl.session, expires_at - now)``. Two
indexes point at it, each written in the same MULTI/EXEC as the session:

- ``seen:session:refresh:<sha256(token)>`` -> session id: the refresh-token lookup. Keys and
  logs only ever hold the hash; ``SessionData.refresh_token`` is a ``SecretStr`` (masked in
  reprs and plain dumps) and only the stored value holds the token itself.
- ``seen:user:<id>:sessions``: a sorted set of the user's session ids scored by their end
  (ms), so ``invalidate_user_sessions`` never scans the keyspace. Its TTL is reset to
  ``ttl.session`` on every write, so it outlives every session it lists.

The compatibility calls (``acquire_lock``, ``release_lock``, ``rate_limit_check``: the simple
signatures existing callers use) are here too and delegate to ``manager.locks`` and
``manager.ratelimit``.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from cache import codec
from cache.clock import utc_now, wall_ms
from cache.config import TTLSettings
from cache.coordination import LockService, RateLimiter, Window
from cache.counts import ReadCounts
from cache.errors import CacheError, InvalidKeyError, SerializationError, translate_errors
from cache.keys import KeyBuilder, validate_id
from cache.service import TTL, CacheService

REVEAL = {"reveal_secrets": True}
"""Serialization context under which ``SessionData`` writes the raw refresh token."""

INDEX_PRUNE_GRACE_MS = 5 * 60 * 1000
"""Index entries are pruned this long after their session ended (tolerates clock skew
between API servers: pruning a live entry would hide it from invalidation)."""


class ExpiredSessionError(CacheError, ValueError):
    """A session whose ``expires_at`` has already passed cannot be stored."""


class SessionData(BaseModel):
    """One login session. ``metadata`` holds whatever the API adds (device, IP, ...)."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    user_id: str
    refresh_token: SecretStr | None = None
    expires_at: AwareDatetime
    created_at: AwareDatetime = Field(default_factory=utc_now)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("session_id", "user_id")
    @classmethod
    def _safe_id(cls, value: str, info: ValidationInfo) -> str:
        return validate_id(value, info.field_name or "id")

    @field_validator("refresh_token")
    @classmethod
    def _non_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("refresh_token must not be empty (use None for no token)")
        return value

    @field_serializer("refresh_token", when_used="json")
    def _dump_token(self, value: SecretStr | None, info: SerializationInfo) -> str | None:
        if value is None:
            return None
        context = info.context if isinstance(info.context, dict) else {}
        return value.get_secret_value() if context.get("reveal_secrets") else str(value)

    def token_matches(self, token: str) -> bool:
        """Constant-time comparison with a presented refresh token."""
        if self.refresh_token is None:
            return False
        return hmac.compare_digest(
            self.refresh_token.get_secret_value().encode(), token.encode("utf-8")
        )


class UserProfile(BaseModel):
    """A cached user profile; unknown fields from the API are kept as they are."""

    model_config = ConfigDict(extra="allow")

    user_id: str
    username: str | None = None
    email: str | None = None
    display_name: str | None = None
    avatar_url: str | None = None
    preferences: dict[str, Any] = Field(default_factory=dict)

    @field_validator("user_id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        return validate_id(value, "user_id")


class SessionCache:
    """Sessions and profiles, plus the compatibility lock and rate-limit calls."""

    def __init__(
        self,
        service: CacheService,
        keys: KeyBuilder,
        ttl: TTLSettings,
        locks: LockService,
        limiter: RateLimiter,
        reads: ReadCounts | None = None,
    ) -> None:
        """``reads`` counts reads by kind and result (the manager's, shared by its caches)."""
        self.service = service
        self.keys = keys
        self.ttl = ttl
        self.locks = locks
        self.limiter = limiter
        self.reads = reads or ReadCounts()

    # -- sessions ----------------------------------------------------------------------
    def _decode(self, key: str, raw: bytes | None) -> SessionData | None:
        if raw is None:
            return None
        try:
            return SessionData.model_validate_json(codec.unpack(raw))
        except ValueError as exc:
            raise SerializationError(f"stored session is invalid: {exc}", key=key) from exc

    async def _read(self, session_id: str) -> SessionData | None:
        key = self.keys.session(session_id)
        return self._decode(key, await self.service.get_bytes(key))

    async def set_session(self, session: SessionData) -> float:
        """Store (or replace) a session; returns its TTL in seconds.

        Raises ``ExpiredSessionError`` when ``expires_at`` has passed. Replacing a session
        with a new refresh token drops the old token's lookup in the same transaction.
        """
        key = self.keys.session(session.session_id)
        index = self.keys.user_sessions(session.user_id)
        left_ms = int((session.expires_at - utc_now()) / timedelta(milliseconds=1))
        if left_ms <= 0:
            raise ExpiredSessionError(
                f"session expired at {session.expires_at.isoformat()}", key=key
            )
        ttl_ms = min(self.ttl.session * 1000, left_ms)
        try:
            previous = await self._read(session.session_id)
        except SerializationError:
            previous = None  # overwritten below
        data = self.service.encode_json(key, session.model_dump(mode="json", context=REVEAL))
        now_ms = wall_ms()
        with translate_errors(key, operation="set_session"):
            async with self.service.client.pipeline(transaction=True) as pipe:
                pipe.set(key, data, px=ttl_ms)
                if previous is not None:
                    old = previous.refresh_token
                    if old is not None and not session.token_matches(old.get_secret_value()):
                        pipe.delete(self.keys.session_by_refresh_token(old.get_secret_value()))
                    if previous.user_id != session.user_id:
                        pipe.zrem(self.keys.user_sessions(previous.user_id), session.session_id)
                if session.refresh_token is not None:
                    token_key = self.keys.session_by_refresh_token(
                        session.refresh_token.get_secret_value()
                    )
                    pipe.set(token_key, session.session_id, px=ttl_ms)
                pipe.zadd(index, {session.session_id: now_ms + ttl_ms})
                pipe.zremrangebyscore(index, "-inf", f"({now_ms - INDEX_PRUNE_GRACE_MS}")
                pipe.pexpire(index, self.ttl.session * 1000)
                await pipe.execute()
        return ttl_ms / 1000

    def _counted(self, kind: str, session: SessionData | None) -> SessionData | None:
        """Count one read of ``kind``: a session past ``expires_at`` is a ``stale`` read."""
        if session is None:
            self.reads.add(kind, "miss")
            return None
        if session.expires_at <= utc_now():
            self.reads.add(kind, "stale")
            return None
        self.reads.add(kind, "hit")
        return session

    async def get_session(self, session_id: str) -> SessionData | None:
        """The session, or None when missing or past ``expires_at``."""
        key = self.keys.session(session_id)
        with self.reads.errors("session"):
            session = self._decode(key, await self.service.get_bytes(key))
        return self._counted("session", session)

    async def get_session_by_refresh_token(self, refresh_token: str) -> SessionData | None:
        """The session a refresh token belongs to, or None (unknown, rotated or expired)."""
        token_key = self.keys.session_by_refresh_token(refresh_token)
        with self.reads.errors("refresh_token"):
            session_id = await self.service.get(token_key)
            try:
                key = None if session_id is None else self.keys.session(session_id)
            except InvalidKeyError:
                key = None
            session = None if key is None else self._decode(key, await self.service.get_bytes(key))
        if session is not None and not session.token_matches(refresh_token):
            session = None
        return self._counted("refresh_token", session)

    async def delete_session(self, session_id: str) -> bool:
        """Remove a session with its refresh-token lookup and index entry; False if missing."""
        key = self.keys.session(session_id)
        try:
            session = await self._read(session_id)
        except SerializationError:
            session = None  # still removed below
        with translate_errors(key, operation="delete_session"):
            async with self.service.client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if session is not None:
                    if session.refresh_token is not None:
                        pipe.delete(
                            self.keys.session_by_refresh_token(
                                session.refresh_token.get_secret_value()
                            )
                        )
                    pipe.zrem(self.keys.user_sessions(session.user_id), session_id)
                results = await pipe.execute()
        return bool(results[0])

    async def invalidate_user_sessions(self, user_id: str) -> int:
        """Remove every session of ``user_id`` (from its index, no SCAN); returns how many."""
        index = self.keys.user_sessions(user_id)
        with translate_errors(index, operation="ZRANGE"):
            members = await self.service.client.zrange(index, 0, -1)
        ids: list[str] = []
        for member in members:
            try:
                ids.append(validate_id(member.decode("utf-8", errors="replace")))
            except InvalidKeyError:
                continue
        if not ids:
            return 0
        session_keys = [self.keys.session(i) for i in ids]
        doomed: list[str] = []
        for key, raw in zip(session_keys, await self.service.mget_bytes(session_keys), strict=True):
            try:
                session = self._decode(key, raw)
            except SerializationError:
                doomed.append(key)  # unreadable, but listed as this user's: remove it
                continue
            if session is None or session.user_id != user_id:
                continue  # gone already, or the id now belongs to someone else
            doomed.append(key)
            if session.refresh_token is not None:
                doomed.append(
                    self.keys.session_by_refresh_token(session.refresh_token.get_secret_value())
                )
        with translate_errors(index, operation="invalidate_user_sessions"):
            async with self.service.client.pipeline(transaction=True) as pipe:
                for key in session_keys:
                    pipe.exists(key)
                if doomed:
                    pipe.unlink(*doomed)
                pipe.zrem(index, *ids)
                results = await pipe.execute()
        existing = {k for k, e in zip(session_keys, results[: len(ids)], strict=True) if e}
        return sum(1 for key in doomed if key in existing)

    async def invalidate_user(self, user_id: str) -> int:
        """``manager.invalidate_user`` hook: all sessions (counted) and the cached profile."""
        removed = await self.invalidate_user_sessions(user_id)
        await self.delete_user_profile(user_id)
        return removed

    # -- profiles --------------------------------------------------------------------
    async def set_user_profile(self, profile: UserProfile, ttl: TTL | None = None) -> None:
        """Cache a profile for ``ttl`` (default ``ttl.user_profile``, 15 min)."""
        key = self.keys.user_profile(profile.user_id)
        await self.service.set_json(key, profile, self.ttl.user_profile if ttl is None else ttl)

    async def get_user_profile(self, user_id: str) -> UserProfile | None:
        key = self.keys.user_profile(user_id)
        with self.reads.errors("profile"):
            profile = await self.service.get_json(key, UserProfile)
        self.reads.add("profile", "miss" if profile is None else "hit")
        return profile

    async def delete_user_profile(self, user_id: str) -> bool:
        return await self.service.delete(self.keys.user_profile(user_id)) == 1

    # -- the compatibility coordination calls ------------------------------------------
    async def acquire_lock(self, name: str, ttl: TTL | None = None) -> tuple[str, bool]:
        """``(lock_id, acquired)``; ``lock_id`` is ``""`` when not acquired."""
        lock = await self.locks.try_acquire(name, ttl)
        return (lock.token, True) if lock is not None else ("", False)

    async def release_lock(self, name: str, lock_id: str) -> bool:
        """Release with the id from ``acquire_lock``; False for a wrong or expired id."""
        return await self.locks.release(name, lock_id)

    async def rate_limit_check(self, user_id: str, action: str, limit: int, window: Window) -> bool:
        """True when allowed (GCRA, burst = limit; see ``cache.coordination._ratelimit``)."""
        return await self.limiter.allow(user_id, action, limit, window)
