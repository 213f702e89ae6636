"""ClaudeAgent's ``computer`` tool on an ``rfb`` capability (Xvfb + x11vnc, skipped without)."""

from __future__ import annotations

from hud import Environment
from hud.agents.claude import ClaudeAgent, ClaudeConfig
from hud.capabilities import Capability
from hud.eval.trace import ToolStep
from tests.agents.conftest import run_task
from tests.agents.fakes import Call, FakeProvider, Reply
from tests.screens import caps_lock


async def test_computer_tool_drives_the_screen(fake: FakeProvider, display) -> None:
    name, port = display
    env = Environment(name="desk")
    env.add_capability(Capability.rfb(f"127.0.0.1:{port}"))
    pressed: list[bool] = []

    @env.template()
    async def press():
        yield "Turn caps lock on."
        pressed.append(caps_lock(name))
        yield 1.0 if pressed[-1] else 0.0

    fake.script = [
        Reply(calls=[Call("computer", {"action": "screenshot"}, id="s1")]),
        Reply(calls=[Call("computer", {"action": "key", "text": "caps_lock"}, id="k1")]),
        Reply(text="done"),
    ]
    agent = ClaudeAgent(ClaudeConfig(base_url=fake.url, api_key="k"))
    run = await run_task(env, agent, "press")
    assert run.reward == 1.0, run.trace.error
    first, second, _ = fake.bodies()
    assert first["tools"] == [
        {
            "type": "computer_20250124",
            "name": "computer",
            "display_width_px": 320,
            "display_height_px": 240,
        }
    ]
    assert "computer-use-2025-01-24" in fake.requests[0].headers.get("anthropic-beta", "")
    (result,) = second["messages"][-1]["content"]
    image = result["content"][0]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/webp"
    tools = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert [s.call.arguments["action"] for s in tools] == ["screenshot", "key"]


# -- the same tool on a cdp capability (headless Chromium) ---------------------------------------
PAGE = """<!doctype html><html><head><style>
body { margin: 0; height: 3000px; }
#inp { position: absolute; left: 20px; top: 20px; width: 200px; height: 30px; }
#btn { position: absolute; left: 20px; top: 80px; width: 100px; height: 40px; }
</style></head><body>
<input id="inp">
<button id="btn" onclick="window.sent = document.getElementById('inp').value">Send</button>
<script>window.sent = null;</script>
</body></html>"""


async def test_computer_tool_drives_a_browser_page(fake: FakeProvider) -> None:
    from tests.chromium import chromium, evaluate, load

    with chromium() as port:
        width, height = await load(port, PAGE)
        env = Environment(name="web")
        env.add_capability(Capability.cdp(f"ws://127.0.0.1:{port}"))

        @env.template()
        async def send():
            answer = yield "Type 'ok' into the box and press Send."
            sent = await evaluate(port, "window.sent")
            yield 1.0 if sent == "ok" and answer == "done" else 0.0

        def act(call_id: str, action: str, **args: object) -> Reply:
            return Reply(calls=[Call("computer", {"action": action, **args}, id=call_id)])

        fake.script = [
            act("a1", "left_click", coordinate=[120, 35]),
            act("a2", "type", text="oops"),
            act("a3", "key", text="ctrl+a BackSpace"),
            act("a4", "type", text="ok"),
            act("a5", "left_click", coordinate=[70, 100]),
            act("a6", "scroll", coordinate=[300, 200], scroll_direction="down", scroll_amount=2),
            act("a7", "cursor_position"),
            Reply(text="done"),
        ]
        agent = ClaudeAgent(ClaudeConfig(base_url=fake.url, api_key="k", stream=False))
        run = await run_task(env, agent, "send")
        assert run.reward == 1.0, run.trace.error
        scrolled = (
            "new Promise(r => { const p = () => scrollY ? r(scrollY) : setTimeout(p, 9); p(); })"
        )
        assert await evaluate(port, scrolled) == 200

    first, second, *_ = fake.bodies("/messages")
    assert first["tools"] == [
        {
            "type": "computer_20250124",
            "name": "computer",
            "display_width_px": width,
            "display_height_px": height,
        }
    ]
    assert "computer-use-2025-01-24" in fake.requests[0].headers.get("anthropic-beta", "")
    (result,) = second["messages"][-1]["content"]
    assert result["tool_use_id"] == "a1" and result["content"][0]["source"]["media_type"] == (
        "image/webp"
    )
    tools = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert not [s for s in tools if s.result.isError]
    assert tools[-1].result.text == "X=300,Y=200"


DRAG_PAGE = """<!doctype html><html><body style="margin:0;height:400px">
<script>
window.log = [];
const note = e => window.log.push(`${e.type} ${e.clientX},${e.clientY} ${e.buttons}`);
addEventListener("mousedown", note);
addEventListener("mouseup", note);
addEventListener("mousemove", e => { if (e.buttons) note(e); });
addEventListener("keydown", e => window.log.push(`keydown ${e.key}`));
addEventListener("keyup", e => window.log.push(`keyup ${e.key}`));
</script></body></html>"""


async def test_mouse_down_move_up_and_hold_key(fake: FakeProvider) -> None:
    """Claude's low-level actions: a drag made of left_mouse_down, mouse_move and
    left_mouse_up (buttons stay held while moving), and hold_key."""
    from tests.chromium import chromium, evaluate, load

    with chromium() as port:
        await load(port, DRAG_PAGE)
        env = Environment(name="drag")
        env.add_capability(Capability.cdp(f"ws://127.0.0.1:{port}"))

        @env.template()
        async def drag():
            yield "Drag from (40, 40) to (160, 70), then hold shift."
            yield 1.0

        def act(call_id: str, action: str, **args: object) -> Reply:
            return Reply(calls=[Call("computer", {"action": action, **args}, id=call_id)])

        fake.script = [
            act("d1", "mouse_move", coordinate=[40, 40]),
            act("d2", "left_mouse_down"),
            act("d3", "mouse_move", coordinate=[100, 55]),
            act("d3b", "mouse_move", coordinate=[160, 70]),
            act("d4", "left_mouse_up"),
            act("d5", "hold_key", text="shift", duration=0.1),
            act("d6", "hold_key"),
            Reply(text="done"),
        ]
        agent = ClaudeAgent(ClaudeConfig(base_url=fake.url, api_key="k", stream=False))
        run = await run_task(env, agent, "drag")
        assert run.reward == 1.0, run.trace.error
        log = await evaluate(port, "window.log")

    assert log == [
        "mousedown 40,40 1",
        "mousemove 100,55 1",
        "mousemove 160,70 1",
        "mouseup 160,70 0",
        "keydown Shift",
        "keyup Shift",
    ]
    tools = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert [s.result.isError for s in tools] == [False] * 6 + [True]
    assert "hold_key needs 'text'" in tools[-1].result.text
