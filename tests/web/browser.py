"""Playwright against Debian's Chromium (browsers cannot be downloaded here)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One headless Chromium per test module (skipped locally when not installed).

    Module scope, not session: Playwright's sync API keeps an event loop running in this
    thread while it is open, and later tests that call ``asyncio.run`` must not see it.
    """
    from playwright.sync_api import sync_playwright

    from tests.conftest import unavailable

    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        unavailable("Chromium", f"{CHROMIUM} not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: object, name: str) -> None:
    """Save a full-page screenshot under docs/screenshots/ for review."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
