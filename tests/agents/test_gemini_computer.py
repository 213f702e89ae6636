"""GeminiAgent's ``computer_use`` tool on a real screen (Xvfb + x11vnc) and a real browser (CDP).

The only fake is the Gemini server (`FakeProvider`, driven through google-genai). Screen tests
skip without Xvfb/x11vnc/xset; the click/type test also needs Tk (a tiny X app that logs the
clicks and text it receives); the CDP test needs Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hud import Environment
from hud.agents.gemini import GeminiAgent, GeminiConfig
from hud.agents.tools.base import ToolError
from hud.agents.tools.gemini_computer import BROWSER_ONLY, denormalize, x11_combo
from hud.capabilities import Capability
from hud.eval.trace import ToolStep
from tests.agents.conftest import SECRET, run_task
from tests.agents.fakes import Call, FakeProvider, Reply
from tests.chromium import chromium as start_chromium
from tests.screens import caps_lock, stop

WIDTH, HEIGHT = 320, 240


def gemini(fake: FakeProvider) -> GeminiAgent:
    return GeminiAgent(GeminiConfig(base_url=fake.url, api_key=SECRET, retry_base_delay=0.01))


# A full-screen Tk window with a text field at y 40..80 that logs what it receives.
TK_APP = r"""
import sys
import tkinter as tk

log = open(sys.argv[1], "a", buffering=1)
root = tk.Tk()
root.overrideredirect(True)
root.geometry("320x240+0+0")
root.configure(background="white")
entry = tk.Entry(root)
entry.place(x=10, y=40, width=300, height=40)
root.bind_all("<ButtonPress>", lambda e: log.write(f"click {e.num} {e.x_root} {e.y_root}\n"))
entry.bind("<Return>", lambda e: log.write(f"enter {entry.get()}\n"))
root.bind("<Map>", lambda e: log.write("ready\n"))
root.mainloop()
"""


def _wait_for(path: Path, lines: list[str], seconds: float = 30.0) -> list[str]:
    """The lines of ``path`` once it holds all of ``lines`` (or when ``seconds`` ran out)."""
    deadline = time.monotonic() + seconds
    while True:
        got = path.read_text().splitlines() if path.exists() else []
        if all(line in got for line in lines) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.fixture
def tk_app(display: tuple[str, int], tmp_path: Path) -> Iterator[Path]:
    """The event log of `TK_APP` running full screen on ``display``."""
    probe = subprocess.run([sys.executable, "-c", "import tkinter"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("needs tkinter in this Python (apt-get install python3-tk)")
    log = tmp_path / "events.log"
    log.touch()
    app = subprocess.Popen(
        [sys.executable, "-c", TK_APP, str(log)],
        env={**os.environ, "DISPLAY": display[0]},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert "ready" in _wait_for(log, ["ready"]), f"Tk app did not start (exit {app.poll()})"
        yield log
    finally:
        stop(app)


def _key(data: dict[str, Any], camel: str) -> Any:
    """``data[camel]`` or its snake_case spelling (google-genai sends both forms)."""
    if camel in data:
        return data[camel]
    return data["".join(f"_{c.lower()}" if c.isupper() else c for c in camel)]


def _b64(data: str) -> bytes:
    """Standard or URL-safe base64 (google-genai sends bytes URL-safe)."""
    return base64.b64decode(data, altchars=b"-_")


def _png_size(data: str) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(_b64(data))).size


def _responses(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The function responses of the last (user) turn of a request."""
    last = body["contents"][-1]
    assert last["role"] == "user"
    return [_key(p, "functionResponse") for p in last["parts"]]


def _screenshot(response: dict[str, Any]) -> tuple[int, int]:
    (part,) = response["parts"]
    blob = _key(part, "inlineData")
    assert _key(blob, "mimeType") == "image/png"
    return _png_size(blob["data"])


# == a real screen =================================================================================
async def test_computer_use_clicks_and_types_on_a_screen(
    fake: FakeProvider, display: tuple[str, int], tk_app: Path
) -> None:
    _, port = display
    env = Environment(name="desk")
    env.add_capability(Capability.rfb(f"127.0.0.1:{port}"))
    expected = ["click 1 160 180", "click 1 160 60", "enter hello world", "click 1 319 0"]

    @env.template()
    async def form():
        answer = yield "Type 'hello world' into the text field and press Enter."
        events = _wait_for(tk_app, expected, 10)
        yield 1.0 if all(e in events for e in expected) and answer == "typed" else 0.0

    safety = {"decision": "require_confirmation", "explanation": "types into a form"}
    fake.script = [
        Reply(calls=[Call("click_at", {"x": 500, "y": 750}, id="c1")]),
        Reply(
            calls=[
                Call(
                    "type_text_at",
                    {
                        "x": 500,
                        "y": 250,
                        "text": "hello world",
                        "press_enter": True,
                        "clear_before_typing": True,
                        "safety_decision": safety,
                    },
                    id="t1",
                )
            ]
        ),
        Reply(
            calls=[
                Call("click_at", {"x": 5000, "y": -20}, id="c2"),  # clamped to (319, 0)
                Call("long_press_at", {"x": 1, "y": 1}, id="u1"),  # not a function we know
            ]
        ),
        Reply(text="typed"),
    ]
    run = await run_task(env, gemini(fake), "form")
    assert run.reward == 1.0, (run.trace.error, tk_app.read_text())
    assert run.status == "completed" and run.trace.content == "typed"

    first, second, third, fourth = fake.bodies(":generateContent")
    # one computer_use tool (desktop: browser-only functions excluded), no function declarations
    (tool,) = first["tools"]
    use = _key(tool, "computerUse")
    assert use["environment"] == "ENVIRONMENT_BROWSER"
    assert sorted(_key(use, "excludedPredefinedFunctions")) == sorted(BROWSER_ONLY)
    # the prompt goes out with the screen as it is
    prompt = first["contents"][0]["parts"]
    assert prompt[0]["text"].startswith("Type 'hello world'")
    image = _key(prompt[1], "inlineData")
    assert _key(image, "mimeType") == "image/png" and _png_size(image["data"]) == (WIDTH, HEIGHT)

    (click,) = _responses(second)
    assert (click["name"], click["id"], click["response"]) == ("click_at", "c1", {"url": ""})
    assert _screenshot(click) == (WIDTH, HEIGHT)
    (typed,) = _responses(third)
    assert typed["response"] == {"url": "", "safety_acknowledgement": "true"}
    assert _screenshot(typed) == (WIDTH, HEIGHT)
    clamped, unknown = _responses(fourth)
    assert clamped["name"] == "click_at" and clamped["response"] == {"url": ""}
    assert unknown["name"] == "long_press_at"
    assert unknown["response"] == {"error": "unknown tool: 'long_press_at'"}
    assert "parts" not in unknown

    steps = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert [(s.call.id, s.call.name) for s in steps] == [
        ("c1", "click_at"),
        ("t1", "type_text_at"),
        ("c2", "click_at"),
        ("u1", "long_press_at"),
    ]
    assert steps[1].call.arguments["safety_decision"] == safety
    assert steps[1].result.structuredContent == {"url": "", "safety_acknowledgement": "true"}
    assert [b["type"] for b in steps[0].result.content] == ["text", "image"]
    assert steps[3].result.isError and not steps[2].result.isError


async def test_key_combination_and_browser_only_functions_on_a_desktop(
    fake: FakeProvider, display: tuple[str, int]
) -> None:
    name, port = display
    env = Environment(name="desk")
    env.add_capability(Capability.rfb(f"127.0.0.1:{port}"))

    @env.template()
    async def press():
        yield "Turn caps lock on."
        yield 1.0 if caps_lock(name) else 0.0

    fake.script = [
        Reply(
            calls=[
                Call("navigate", {"url": "example.com"}, id="n1"),
                Call("key_combination", {"keys": "CapsLock"}, id="k1"),
                Call("scroll_at", {"x": 500, "y": 500, "direction": "down", "magnitude": 400}),
                Call("scroll_at", {"x": 500, "y": 500, "direction": "left"}),
                Call("scroll_document", {"direction": "sideways"}, id="s1"),
                Call("hover_at", {"x": 10, "y": 10}),
                Call("drag_and_drop", {"x": 1, "y": 2, "destination_x": 900, "destination_y": 9}),
            ]
        ),
        Reply(text="done"),
    ]
    run = await run_task(env, gemini(fake), "press")
    assert run.reward == 1.0, run.trace.error
    navigate, key, scroll, sideways, bad_scroll, hover, drag = _responses(fake.bodies()[1])
    assert "not available" in navigate["response"]["error"]
    for ok in (key, scroll, sideways, hover, drag):
        assert ok["response"] == {"url": ""} and _screenshot(ok) == (WIDTH, HEIGHT)
    assert "'direction' must be up, down, left or right" in bad_scroll["response"]["error"]
    steps = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert [s.result.isError for s in steps] == [True, False, False, False, True, False, False]


# == a real browser ================================================================================
PAGE = b"""<!doctype html><html><head><title>Gemini page</title></head><body style="margin:0">
<form action="/done"><input name="q" style="position:fixed;left:0;top:0;width:100%;height:50%">
</form></body></html>"""


@pytest.fixture
def site() -> Iterator[tuple[str, list[str]]]:
    """(URL of `PAGE`, the paths the server was asked for)."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/page", paths
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def page_url() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/page"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def chromium() -> Iterator[int]:
    """Headless Chromium with a 400x300 window; yields its DevTools port."""
    with start_chromium(window=(400, 300)) as port:
        yield port


async def test_navigate_and_type_in_a_browser(
    fake: FakeProvider, chromium: int, site: tuple[str, list[str]]
) -> None:
    url, paths = site
    env = Environment(name="web")
    env.add_capability(Capability.cdp(f"ws://127.0.0.1:{chromium}"))

    @env.template()
    async def search():
        answer = yield "Search the page for 'hi there'."
        deadline = time.monotonic() + 10
        while "/done?q=hi+there" not in paths and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        yield 1.0 if "/done?q=hi+there" in paths and answer == "searched" else 0.0

    fake.script = [
        Reply(calls=[Call("navigate", {"url": url}, id="n1")]),
        Reply(calls=[Call("type_text_at", {"x": 500, "y": 200, "text": "hi there"}, id="t1")]),
        Reply(text="searched"),
    ]
    run = await run_task(env, gemini(fake), "search")
    assert run.reward == 1.0, (run.trace.error, paths)
    first, second, _ = fake.bodies()
    use = _key(first["tools"][0], "computerUse")
    assert use == {"environment": "ENVIRONMENT_BROWSER"}  # a browser: nothing excluded
    (visited,) = _responses(second)
    assert (visited["name"], visited["response"]) == ("navigate", {"url": url})
    (part,) = visited["parts"]
    assert _b64(_key(_key(part, "inlineData"), "data")).startswith(b"\x89PNG")


# == the action mapping ============================================================================
def test_key_names_become_x11_combos() -> None:
    assert x11_combo("Control+A") == "control_l+a"
    assert x11_combo("Enter") == "Return"
    assert x11_combo("Meta+Shift+T") == "super_l+shift_l+t"
    assert x11_combo(["ArrowDown"]) == "Down"
    assert x11_combo("Control+PageUp") == "control_l+Page_Up"
    assert x11_combo("F5") == "F5"
    with pytest.raises(ToolError):
        x11_combo(" + ")


def test_coordinates_are_denormalized_and_clamped() -> None:
    assert denormalize(500, 320, "x") == 160
    assert denormalize(999, 320, "x") == 319
    assert (denormalize(5000, 240, "y"), denormalize(-7, 240, "y")) == (239, 0)
    assert denormalize("250", 240, "y") == 60
    with pytest.raises(ToolError, match="'x' must be a number"):
        denormalize("left", 320, "x")
    with pytest.raises(ToolError, match="missing 'y'"):
        denormalize(None, 240, "y")
