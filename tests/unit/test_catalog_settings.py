"""The [catalog] settings section: settings.toml matches the model, env overrides it."""

from __future__ import annotations

import tomllib

import pytest

from cache.config import CatalogSettings
from tests.conftest import ROOT
from worker.settings import load_settings


def test_settings_toml_lists_every_catalog_default() -> None:
    section = tomllib.loads((ROOT / "settings.toml").read_text())["catalog"]
    assert section == CatalogSettings().model_dump()


def test_env_overrides_catalog_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEN_CATALOG_XFETCH_BETA", "2.5")
    monkeypatch.setenv("SEEN_CATALOG_WAIT_TIMEOUT", "3")
    settings = load_settings(ROOT / "settings.toml")
    assert settings.catalog.xfetch_beta == 2.5
    assert settings.catalog.wait_timeout == 3.0
    assert settings.catalog.fill_lock_ttl == 5.0
