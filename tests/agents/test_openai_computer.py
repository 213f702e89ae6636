"""OpenAIAgent's Responses computer tool (``computer_use_preview``) on real screens: a headless
Chromium page (``cdp``) and an Xvfb screen over VNC (``rfb``), against a fake Responses server."""

from __future__ import annotations

import base64
import io
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from hud import Environment
from hud.agents.openai_agent import OpenAIAgent, OpenAIConfig
from hud.agents.tools.base import ToolError
from hud.agents.tools.computer import x11_combo
from hud.capabilities import Capability
from hud.eval.trace import AgentStep, ToolStep
from tests.agents.conftest import SECRET, run_task
from tests.agents.fakes import Call, FakeProvider, Reply
from tests.chromium import chromium, evaluate, load
from tests.screens import caps_lock

PAGE = """<!doctype html><html><head><style>
body { margin: 0; height: 3000px; }
#inp { position: absolute; left: 20px; top: 20px; width: 200px; height: 30px; }
#btn { position: absolute; left: 20px; top: 80px; width: 100px; height: 40px; }
</style></head><body>
<input id="inp">
<button id="btn" onclick="window.sent = document.getElementById('inp').value">Send</button>
<script>window.sent = null;</script>
</body></html>"""
INPUT = (120, 35)
BUTTON = (70, 100)
CHECK = {"id": "sc_1", "code": "malicious_instructions", "message": "Check the page first."}


@pytest.fixture(scope="module")
def browser() -> Iterator[int]:
    """DevTools port of a headless Chromium shared by this module's tests."""
    with chromium() as port:
        yield port


def openai_agent(fake: FakeProvider, **kw: Any) -> OpenAIAgent:
    config = {"base_url": f"{fake.url}/v1", "api_key": SECRET, "retry_base_delay": 0.01}
    return OpenAIAgent(OpenAIConfig(**{**config, **kw}))


def computer(
    action: dict[str, Any], call_id: str, *, reasoning: str | None = None, **extra: Any
) -> Reply:
    """A model turn asking for one computer action (``extra``: ``pending_safety_checks``)."""
    return Reply(
        reasoning=reasoning, calls=[Call("computer_call", {**action, **extra}, id=call_id)]
    )


def screenshot_size(image_url: str) -> tuple[int, int]:
    from PIL import Image

    prefix = "data:image/png;base64,"
    assert image_url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(image_url[len(prefix) :]))).size


def outputs(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in body["input"] if i.get("type") == "computer_call_output"]


def browser_env(port: int, seen: dict[str, Any]) -> Environment:
    """``fill``: graded on what the page holds once the agent answers."""
    env = Environment(name="web")
    env.add_capability(Capability.cdp(f"ws://127.0.0.1:{port}"))

    @env.template()
    async def fill(text: str = "hello"):
        answer = yield f"Type {text!r} into the box and press Send."
        seen.update(
            await evaluate(
                port,
                "({value: document.getElementById('inp').value, sent: window.sent})",
            )
        )
        yield 1.0 if seen["sent"] == text and str(answer).strip() == "done" else 0.0

    return env


async def test_computer_calls_drive_a_browser_page(fake: FakeProvider, browser: int) -> None:
    width, height = await load(browser, PAGE)
    seen: dict[str, Any] = {}
    fake.script = [
        computer(
            {"type": "click", "button": "left", "x": INPUT[0], "y": INPUT[1]},
            "c1",
            reasoning="click the box",
            pending_safety_checks=[CHECK],
        ),
        computer({"type": "type", "text": "hello"}, "c2"),
        computer({"type": "click", "button": "left", "x": BUTTON[0], "y": BUTTON[1]}, "c3"),
        Reply(text="done"),
    ]
    run = await run_task(browser_env(browser, seen), openai_agent(fake), "fill")
    assert run.reward == 1.0, (run.trace.error, seen)
    assert seen["value"] == "hello"

    first, second, _, last = fake.bodies("/responses")
    assert first["tools"] == [
        {
            "type": "computer_use_preview",
            "display_width": width,
            "display_height": height,
            "environment": "browser",
        }
    ]
    assert first["truncation"] == "auto"
    # The call is replayed, then answered with a screenshot acknowledging its safety check.
    replayed = [i for i in second["input"] if i.get("type") == "computer_call"]
    assert replayed[0]["call_id"] == "c1" and replayed[0]["action"]["type"] == "click"
    assert replayed[0]["pending_safety_checks"] == [CHECK]
    (answer,) = outputs(second)
    assert answer["call_id"] == "c1" and answer["acknowledged_safety_checks"] == [CHECK]
    assert answer["output"]["type"] == "computer_screenshot"
    assert screenshot_size(answer["output"]["image_url"]) == (width, height)
    assert second["input"][-1] == answer  # no error note after a good action
    assert [o["call_id"] for o in outputs(last)] == ["c1", "c2", "c3"]
    assert "acknowledged_safety_checks" not in outputs(last)[1]

    turns = [s for s in run.trace.steps if isinstance(s, AgentStep)]
    assert [c.name for t in turns for c in t.tool_calls] == ["computer"] * 3
    assert turns[0].reasoning == "click the box"
    tools = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert [s.call.id for s in tools] == ["c1", "c2", "c3"]
    assert tools[0].call.arguments == {"type": "click", "button": "left", "x": 120, "y": 35}
    assert tools[1].call.arguments == {"type": "type", "text": "hello"}
    assert tools[0].extra == {"acknowledged_safety_checks": [CHECK]} and not tools[1].extra
    for step in tools:
        assert not step.result.isError
        assert [b["type"] for b in step.result.content] == ["image"]


async def test_keys_scroll_and_a_bad_action(fake: FakeProvider, browser: int) -> None:
    """An unknown action answers with a screenshot and the error; the rollout goes on."""
    await load(browser, PAGE)
    seen: dict[str, Any] = {}
    fake.script = [
        computer({"type": "double_click", "x": INPUT[0], "y": INPUT[1]}, "k1"),
        computer({"type": "type", "text": "wrong"}, "k2"),
        computer({"type": "keypress", "keys": ["CTRL", "A"]}, "k3"),
        computer({"type": "keypress", "keys": ["BACKSPACE"]}, "k4"),
        computer({"type": "teleport", "x": 1, "y": 1}, "k5"),
        computer({"type": "type", "text": "right"}, "k6"),
        computer({"type": "move", "x": BUTTON[0], "y": BUTTON[1]}, "k7"),
        computer({"type": "click", "button": "left", "x": BUTTON[0], "y": BUTTON[1]}, "k8"),
        computer({"type": "scroll", "x": 300, "y": 200, "scroll_x": 0, "scroll_y": 250}, "k9"),
        computer({"type": "screenshot"}, "k10"),
        Reply(text="done"),
    ]
    run = await run_task(
        browser_env(browser, seen), openai_agent(fake, max_steps=20), "fill", args={"text": "right"}
    )
    assert run.reward == 1.0, (run.trace.error, seen)
    assert run.status == "completed" and seen["value"] == "right"  # ctrl+a, BackSpace cleared

    bodies = fake.bodies("/responses")
    after_bad = bodies[5]["input"]
    assert after_bad[-2]["type"] == "computer_call_output" and after_bad[-2]["call_id"] == "k5"
    assert after_bad[-2]["output"]["image_url"].startswith("data:image/png;base64,")
    assert after_bad[-1] == {
        "role": "user",
        "content": [
            {
                "type": "input_text",
                "text": "computer action failed: unknown computer action 'teleport'",
            }
        ],
    }
    tools = {s.call.id: s for s in run.trace.steps if isinstance(s, ToolStep)}
    assert tools["k5"].result.isError
    assert "unknown computer action 'teleport'" in tools["k5"].result.text
    assert [k for k, s in tools.items() if s.result.isError] == ["k5"]
    scrolled = (
        "new Promise(r => { const p = () => scrollY ? r(scrollY) : setTimeout(p, 10); p(); })"
    )
    assert await evaluate(browser, scrolled) == 250


def test_key_names_become_x11_combos() -> None:
    assert x11_combo(["CTRL", "A"]) == "control_l+a"
    assert x11_combo(["ENTER"]) == "Return" and x11_combo(["ArrowLeft"]) == "Left"
    assert x11_combo(["CMD", "SHIFT", "+"]) == "super_l+shift_l+plus"
    assert x11_combo("ctrl++") == "control_l+plus" and x11_combo("Page_Down") == "Page_Down"
    with pytest.raises(ToolError):
        x11_combo([])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_computer_calls_on_a_vnc_screen(fake: FakeProvider, display) -> None:
    """On ``rfb`` the environment is ``linux``; a ``cdp`` capability next to it stays closed."""
    name, port = display
    env = Environment(name="desk")
    env.add_capability(Capability.rfb(f"127.0.0.1:{port}"))
    # Nothing listens here: opening it would fail the rollout.
    env.add_capability(Capability.cdp(f"ws://127.0.0.1:{_free_port()}"))

    @env.template()
    async def press():
        yield "Turn caps lock on."
        yield 1.0 if caps_lock(name) else 0.0

    fake.script = [
        computer({"type": "move", "x": 10, "y": 10}, "v1"),
        computer({"type": "scroll", "x": 10, "y": 10, "scroll_x": -100, "scroll_y": 200}, "v2"),
        computer({"type": "click", "button": "wheel", "x": 5, "y": 5}, "v3"),
        computer({"type": "drag", "path": [{"x": 1, "y": 1}, {"x": 30, "y": 40}]}, "v4"),
        computer({"type": "click", "button": "left", "x": 5, "y": 5, "keys": ["SHIFT"]}, "v5"),
        computer({"type": "keypress", "keys": ["CAPSLOCK"]}, "v6"),
        Reply(text="done"),
    ]
    run = await run_task(env, openai_agent(fake, truncation="disabled"), "press")
    assert run.reward == 1.0, run.trace.error
    first, *_, last = fake.bodies("/responses")
    assert first["tools"] == [
        {
            "type": "computer_use_preview",
            "display_width": 320,
            "display_height": 240,
            "environment": "linux",
        }
    ]
    assert first["truncation"] == "disabled"  # an explicit setting wins
    answers = outputs(last)
    assert [a["call_id"] for a in answers] == ["v1", "v2", "v3", "v4", "v5", "v6"]
    assert all(screenshot_size(a["output"]["image_url"]) == (320, 240) for a in answers)
    tools = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert [s.call.arguments["type"] for s in tools] == [
        "move",
        "scroll",
        "click",
        "drag",
        "click",
        "keypress",
    ]
    assert not [s for s in tools if s.result.isError]
