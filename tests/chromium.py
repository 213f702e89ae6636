"""Headless Chromium for tests that drive a real browser over CDP (skipped without one)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


@contextlib.contextmanager
def chromium(window: tuple[int, int] = (640, 480)) -> Iterator[int]:
    """Headless Chromium (fresh profile, ``window`` size); yields its DevTools port."""
    if CHROMIUM is None:
        pytest.skip("needs chromium (apt-get install chromium; see .ci/apt-packages)")
    profile = tempfile.mkdtemp(prefix="hud-test-chromium-")
    proc = subprocess.Popen(
        [
            *(CHROMIUM, *FLAGS, f"--window-size={window[0]},{window[1]}"),
            *(f"--user-data-dir={profile}", "about:blank"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        active = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        port = None
        while time.monotonic() < deadline and proc.poll() is None:
            lines = active.read_text().splitlines() if active.exists() else []
            if len(lines) >= 2:
                port = int(lines[0])
                break
            time.sleep(0.05)
        assert port is not None, f"Chromium did not start (exit {proc.poll()})"
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def load(port: int, html: str) -> tuple[int, int]:
    """Show ``html`` in the browser's first page; returns the viewport size (screenshot px)."""
    from urllib.parse import quote

    from hud.capabilities import Capability
    from hud.clients.cdp_client import CDPClient

    async with await CDPClient.connect(Capability.cdp(f"ws://127.0.0.1:{port}")) as page:
        await page.navigate("data:text/html," + quote(html))
        return page.size


async def evaluate(port: int, expression: str) -> Any:
    """``expression`` evaluated in the browser's first page (promises awaited)."""
    from hud.capabilities import Capability
    from hud.clients.cdp_client import CDPClient

    async with await CDPClient.connect(Capability.cdp(f"ws://127.0.0.1:{port}")) as page:
        return await page.evaluate(expression)
