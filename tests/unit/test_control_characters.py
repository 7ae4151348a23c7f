"""Every id and name validator refuses control characters (\\x00-\\x1f, \\x7f) at the start, in
the middle and at the end; a trailing newline in particular, which a regex ending in ``$``
lets through. The validators are enumerated from the code: every KeyBuilder method taking an
id, the settings and models holding ids or names, the queue's job ids."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from cache.config import CacheSettings
from cache.download import ProgressUpdate
from cache.errors import InvalidKeyError
from cache.keys import KeyBuilder, validate_id, validate_name
from cache.session_cache import SessionData, UserProfile
from worker.runtime import WorkerRuntime
from worker.settings import LogSettings, QueueSettings, load_settings

CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"]
K = KeyBuilder()

# KeyBuilder arguments that are free text by design: hashed into the key, never part of it.
HASHED = {
    ("session_by_refresh_token", "refresh_token"),
    ("catalog_search_entry", "canonical_query"),
}
# owns() is a predicate over any string, not a validator.
NOT_VALIDATORS = {"owns"}


def placements(good: str) -> Iterator[tuple[str, str]]:
    """``(label, bad value)``: each control character at the start, middle and end."""
    for char in CONTROL:
        yield f"start {char!r}", char + good
        yield f"middle {char!r}", good[:1] + char + good[1:]
        yield f"end {char!r}", good + char


def _good(method: str, param: str) -> str:
    if method == "catalog_fill_lock":
        return K.catalog_user_entry("dashboard", "u1", 1)
    return "ok1"


def keybuilder_cases() -> Iterator[tuple[str, Callable[[str], Any], str, str]]:
    """``(name, call taking the value, good value, field name)`` for every string parameter of
    every public KeyBuilder method."""
    for method_name, method in inspect.getmembers(K, inspect.ismethod):
        if method_name.startswith("_") or method_name in NOT_VALIDATORS:
            continue
        params = list(inspect.signature(method).parameters.values())
        for index, param in enumerate(params):
            if param.annotation != "str" or (method_name, param.name) in HASHED:
                continue

            def call(
                value: str, m: Any = method, ps: Any = params, i: int = index, n: str = method_name
            ) -> Any:
                args: list[Any] = []
                for j, p in enumerate(ps):
                    if p.kind is inspect.Parameter.VAR_POSITIONAL:
                        args.extend(["ok1", value] if j == i else ["ok1"])
                    elif j == i:
                        args.append(value)
                    else:
                        args.append(_good(n, p.name) if p.annotation == "str" else 1)
                return m(*args)

            yield f"KeyBuilder.{method_name}({param.name})", call, _good(method_name, ""), ""


def _session(**change: Any) -> SessionData:
    fields: dict[str, Any] = {
        "session_id": "s1",
        "user_id": "u1",
        "expires_at": datetime.now(UTC) + timedelta(hours=1),
    }
    return SessionData(**{**fields, **change})


def _update(**change: Any) -> ProgressUpdate:
    return ProgressUpdate(
        **{"job_id": "dl-1", "user_id": "u1", "status": "queued", "seq": 1, **change}
    )


def model_cases() -> Iterator[tuple[str, Callable[[str], Any], str, str]]:
    yield "validate_id", validate_id, "ok1", "id"
    yield "validate_name", validate_name, "ok1", "name"
    yield "KeyBuilder(namespace)", KeyBuilder, "seen", "namespace"
    yield "CacheSettings.namespace", lambda v: CacheSettings(namespace=v), "seen", "namespace"
    yield "QueueSettings.name", lambda v: QueueSettings(name=v), "arq:queue", "name"
    yield "LogSettings.level", lambda v: LogSettings(level=v), "INFO", "level"
    yield "ProgressUpdate.job_id", lambda v: _update(job_id=v), "dl-1", "job_id"
    yield "ProgressUpdate.user_id", lambda v: _update(user_id=v), "u1", "user_id"
    yield "SessionData.session_id", lambda v: _session(session_id=v), "s1", "session_id"
    yield "SessionData.user_id", lambda v: _session(user_id=v), "u1", "user_id"
    yield "UserProfile.user_id", lambda v: UserProfile(user_id=v), "u1", "user_id"
    settings = load_settings()
    yield "WorkerRuntime(worker_id)", lambda v: WorkerRuntime(settings, v), "w-1", "worker_id"


CASES = [*keybuilder_cases(), *model_cases()]


def test_every_keybuilder_id_parameter_is_covered() -> None:
    """A new KeyBuilder method taking a string is either validated here or listed as hashed."""
    covered = {name for name, *_ in keybuilder_cases()}
    assert len(covered) >= 25
    for expected in ("session", "lock", "rate_limit", "worker_heartbeat", "download_progress"):
        assert any(f".{expected}(" in name for name in covered)


@pytest.mark.parametrize(("name", "call", "good", "word"), CASES, ids=[c[0] for c in CASES])
def test_control_characters_are_refused(
    name: str, call: Callable[[str], Any], good: str, word: str
) -> None:
    call(good)  # the good value passes, so the refusals below are about the character
    problems = []
    for label, bad in placements(good):
        try:
            call(bad)
        except InvalidKeyError as exc:  # names what it refused, control character shown
            message, needle = str(exc), repr(bad)
        except ValidationError as exc:  # names the field
            message, needle = str(exc), word
        else:
            problems.append(f"accepted {label}")
            continue
        if needle not in message:
            problems.append(f"{label}: the error does not show {needle!r}: {message}")
    assert not problems, f"{name}: {problems}"
