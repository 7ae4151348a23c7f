"""Sentry scrubbing and set-up, no server and no network."""

from __future__ import annotations

from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from worker.sentry import FILTERED, init_sentry, scrub, scrub_text, sentry_enabled
from worker.settings import load_settings


class CapturingTransport(Transport):
    """Keeps every event in memory instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == "event" and item.payload.json is not None:
                self.events.append(item.payload.json)


@pytest.fixture
def capture() -> Any:
    transport = CapturingTransport()
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # back to a disabled client


def test_scrub_by_name_and_by_content() -> None:
    event = {
        "message": "connect redis://app:s3cret@db:6379/0 failed, password=hunter2 token: abc",
        "extra": {"password": "p", "api_key": "k", "Authorization": "Bearer x", "user": "u1"},
        "contexts": {"settings": {"sentry_dsn": "https://k@o/1", "nested": [{"secret": "s"}]}},
        "breadcrumbs": {"values": [{"data": {"session_id": "sid", "count": 3}}]},
    }
    clean = scrub(event)
    text = str(clean)
    for secret in ("s3cret", "hunter2", "abc", "Bearer", "https://k@o/1", "sid"):
        assert secret not in text
    assert clean["extra"]["user"] == "u1"
    assert clean["breadcrumbs"]["values"][0]["data"]["count"] == 3
    assert clean["extra"]["password"] == FILTERED
    assert scrub_text("rediss://:pw@h/0") == f"rediss://:{FILTERED}@h/0"


def test_sentry_is_off_without_a_dsn(capture: CapturingTransport) -> None:
    assert not init_sentry(load_settings(), "w1", transport=capture)
    assert not sentry_enabled()


def _fail_with_secrets(secret: str) -> None:
    password = secret  # noqa: F841 - a frame variable Sentry would otherwise ship
    raise RuntimeError(f"login with password={secret} failed")


def test_sentry_on_with_a_dsn_scrubs_what_it_sends(
    capture: CapturingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEEN_SENTRY_DSN", "https://public@127.0.0.1/1")
    settings = load_settings()
    assert init_sentry(settings, "w1", transport=capture)
    assert init_sentry(settings, "w1", transport=capture)  # idempotent
    secret = "-".join(["not", "for", "sentry"])  # never literally in the source context
    with pytest.raises(RuntimeError) as info:
        _fail_with_secrets(secret)
    sentry_sdk.capture_exception(info.value)
    sentry_sdk.flush()
    (event,) = capture.events
    assert secret not in str(event)
    assert FILTERED in str(event)
    assert event["tags"]["worker_id"] == "w1"
