"""Headless Chromium from the distribution's package, driven by Playwright for Python.

Never ``playwright install``: the browser is Debian's ``chromium`` at ``/usr/bin/chromium``
(``.ci/run`` installs it). Without it the tests are skipped with the reason, except in CI
(``CI=true``), where a missing browser fails them. Screenshots go to
``test-output/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.processes import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture
def chromium_path() -> Path:
    """The packaged browser; skipped when missing outside CI, failed when missing in CI."""
    if not CHROMIUM.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing in CI (apt-get install chromium chromium-driver)")
        pytest.skip(f"{CHROMIUM} not installed (Debian: apt-get install chromium chromium-driver)")
    return CHROMIUM


@pytest.fixture
async def chromium(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(chromium_path), args=ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
