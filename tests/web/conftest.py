"""Browser fixture for the web page tests: Playwright for Python driving Debian's Chromium
through ``executable_path`` (no browser download). Skips with the reason when either is missing
(``make venv`` installs the dev extra with Playwright; ``.ci/apt-packages`` lists chromium)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def launch_browser() -> tuple[Any, Any]:
    """(playwright, browser), or `pytest.skip` with the reason."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs playwright (the dev extra: pip install -e '.[dev]')")
    if CHROMIUM is None:
        pytest.skip("needs chromium (apt-get install chromium; see .ci/apt-packages)")
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
    except Exception as exc:
        pw.stop()
        pytest.skip(f"chromium at {CHROMIUM} did not start under Playwright: {exc}")
    return pw, browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module."""
    pw, browser = launch_browser()
    try:
        yield browser
    finally:
        browser.close()
        pw.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page per test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20000)
    try:
        yield tab
    finally:
        context.close()
