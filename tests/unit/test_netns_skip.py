"""The partition tests skip where namespaces cannot be made, and fail instead under CI=true."""

from __future__ import annotations

import pytest

from tests.support.netns import cannot_run


def test_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        cannot_run("creating network namespaces needs root")


def test_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI=true.*no ip"):
        cannot_run("no ip")
