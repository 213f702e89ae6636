"""`CDPClient`'s screen interface (the `RFBClient` one) against a real headless Chromium."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from hud.capabilities import Capability
from hud.clients.cdp_client import CDPClient, key_info
from tests.chromium import chromium as start_chromium

PAGE = """<!doctype html><html><head><style>
body { margin: 0; height: 3000px; width: 3000px; }
#inp { position: absolute; left: 20px; top: 20px; width: 200px; height: 30px; }
#btn { position: absolute; left: 20px; top: 80px; width: 100px; height: 40px; }
#area { position: absolute; left: 300px; top: 20px; width: 200px; height: 100px; }
</style></head><body>
<form id="form"><input id="inp"><button id="btn" type="button">Go</button></form>
<textarea id="area"></textarea>
<script>
window.log = [];
window.submitted = null;
const record = (e) => log.push({
  type: e.type, key: e.key, code: e.code, button: e.button, buttons: e.buttons,
  detail: e.detail, ctrl: e.ctrlKey, shift: e.shiftKey, alt: e.altKey, meta: e.metaKey,
  x: e.clientX, y: e.clientY, dy: e.deltaY, dx: e.deltaX, target: e.target.id || e.target.tagName,
});
for (const t of ["mousedown", "mouseup", "mousemove", "click", "dblclick", "auxclick",
                 "contextmenu", "keydown", "keyup", "wheel"]) {
  document.addEventListener(t, record, true);
}
document.addEventListener("contextmenu", (e) => e.preventDefault());
document.getElementById("form").addEventListener("submit", (e) => {
  e.preventDefault();
  submitted = document.getElementById("inp").value;
});
</script></body></html>"""
URL = "data:text/html," + quote(PAGE)


@pytest.fixture(scope="module")
def devtools_port() -> Iterator[int]:
    with start_chromium() as port:
        yield port


@pytest.fixture
async def page(devtools_port: int) -> AsyncIterator[CDPClient]:
    client = await CDPClient.connect(Capability.cdp(f"ws://127.0.0.1:{devtools_port}"))
    try:
        await client.navigate(URL)
        yield client
    finally:
        await client.close()


async def events(client: CDPClient, *types: str) -> list[dict[str, Any]]:
    """The recorded DOM events of ``types`` (all when none given), oldest first."""
    log = await client.evaluate("log")
    return [e for e in log if not types or e["type"] in types]


async def value(client: CDPClient, element: str = "inp") -> str:
    return await client.evaluate(f"document.getElementById({element!r}).value")


async def focused(client: CDPClient) -> str:
    return await client.evaluate("document.activeElement.id")


async def until(client: CDPClient, condition: str) -> Any:
    """Wait in the page until the JS ``condition`` is truthy (wheel events arrive late)."""
    return await client.evaluate(
        f"new Promise(r => {{ const p = () => (({condition}) ? r({condition}) : setTimeout(p, 10));"
        " p(); })"
    )


def test_key_names() -> None:
    assert key_info("Return") == key_info("enter")
    assert key_info("Return").text == "\r" and key_info("BackSpace").key == "Backspace"
    assert key_info("control_l").key == "Control" and key_info("ctrl").code == "ControlLeft"
    assert key_info("super").key == "Meta" and key_info("alt_r").location == 2
    assert key_info("F12").key_code == 123 and key_info("Left").key == "ArrowLeft"
    assert key_info("a", shift=True).text == "A" and key_info("1", shift=True).key == "!"
    assert key_info("plus").code == "Equal" and key_info("?").key_code == 191
    assert key_info("é").code == ""
    with pytest.raises(ValueError, match="unknown key"):
        key_info("nosuchkey")


async def test_size_and_screenshot(page: CDPClient) -> None:
    from PIL import Image

    width, height = page.size
    assert width == 640 and 0 < height <= 480 and page.scale == 1.0
    assert await page.viewport() == (width, height)
    png = await page.screenshot()
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).size == page.size
    webp = await page.screenshot(format="webp")
    assert webp[8:12] == b"WEBP" and Image.open(io.BytesIO(webp)).size == page.size
    jpeg = await page.screenshot(format="jpg", quality=50)
    assert jpeg.startswith(b"\xff\xd8")


async def test_click_and_type(page: CDPClient) -> None:
    await page.click(120, 35)
    assert await focused(page) == "inp"
    down, up, click = await events(page, "mousedown", "mouseup", "click")
    assert (down["x"], down["y"], down["button"], down["target"]) == (120, 35, 0, "inp")
    assert up["button"] == 0 and click["detail"] == 1
    await page.type_text("Hello, World!")
    assert await value(page) == "Hello, World!"
    typed = [e["key"] for e in await events(page, "keydown")]
    assert typed == list("Hello, World!")
    await page.type_text("é✓")  # no US key: inserted as text
    assert await value(page) == "Hello, World!é✓"


async def test_key_combos(page: CDPClient) -> None:
    await page.click(120, 35)
    await page.type_text("some text")
    await page.press("control_l+a")
    keys = await events(page, "keydown")
    assert [(e["key"], e["ctrl"]) for e in keys[-2:]] == [("Control", True), ("a", True)]
    assert await value(page) == "some text"  # ctrl+a selects, it does not type
    await page.press("BackSpace")
    assert await value(page) == ""
    await page.type_text("abc")
    await page.press("Left")
    await page.press("Left")
    await page.type_text("X")
    assert await value(page) == "aXbc"
    await page.press("Home")
    await page.press("shift+End")
    await page.press("Delete")
    assert await value(page) == ""
    await page.press("shift+a")
    await page.press("shift_l+1")
    assert await value(page) == "A!"
    await page.press("F2")
    assert (await events(page, "keydown"))[-1]["key"] == "F2"
    await page.press("Return")  # implicit submission of the form
    assert await page.evaluate("submitted") == "A!"
    await page.press("Tab")
    assert await focused(page) == "btn"
    await page.press("shift+Tab")
    assert await focused(page) == "inp"
    await page.press("Escape")
    await page.press("super+alt+ctrl+plus")
    last = (await events(page, "keydown"))[-1]
    assert (last["key"], last["meta"], last["alt"], last["ctrl"]) == ("+", True, True, True)


async def test_unknown_key_leaves_nothing_down(page: CDPClient) -> None:
    await page.click(120, 35)
    with pytest.raises(ValueError, match="unknown key"):
        await page.press("control_l+nosuchkey")
    await page.type_text("a")
    assert await value(page) == "a"


async def test_textarea_newlines(page: CDPClient) -> None:
    await page.click(400, 70)
    assert await focused(page) == "area"
    await page.type_text("one\ntwo")
    assert await value(page, "area") == "one\ntwo"


async def test_held_keys_apply_to_pointer(page: CDPClient) -> None:
    await page.key("shift_l", True)
    await page.click(70, 100)
    await page.key("shift_l", False)
    await page.click(70, 100)
    clicks = await events(page, "click")
    assert [(c["shift"], c["target"]) for c in clicks] == [(True, "btn"), (False, "btn")]
    ups = [e for e in await events(page, "keyup") if e["key"] == "Shift"]
    assert ups and ups[-1]["shift"] is False
    await page.key("Escape")  # a tap


async def test_buttons_and_double_click(page: CDPClient) -> None:
    await page.click(70, 100, "right")
    menu = await events(page, "contextmenu")
    assert menu and menu[-1]["button"] == 2 and menu[-1]["target"] == "btn"
    await page.click(70, 100, 2)  # RFB mask bit: middle
    assert (await events(page, "mousedown"))[-1]["button"] == 1
    await page.click(400, 70, count=2)
    (dbl,) = await events(page, "dblclick")
    assert dbl["detail"] == 2 and dbl["target"] == "area"
    with pytest.raises(ValueError, match="unknown mouse button"):
        await page.click(1, 1, "thumb")


async def test_drag_with_pointer(page: CDPClient) -> None:
    await page.pointer(30, 200, 0)
    await page.pointer(30, 200, 1)
    await page.pointer(90, 260, 1)
    await page.pointer(90, 260, 0)
    log = await events(page, "mousedown", "mousemove", "mouseup")
    kinds = [(e["type"], e["x"], e["y"], e["buttons"]) for e in log]
    assert kinds == [
        ("mousemove", 30, 200, 0),
        ("mousedown", 30, 200, 1),
        ("mousemove", 90, 260, 1),
        ("mouseup", 90, 260, 0),
    ]
    assert page.position == (90, 260)
    await page.pointer(10_000, -5, 0)  # clamped to the viewport
    assert page.position == (639, 0)


async def test_scroll(page: CDPClient) -> None:
    wheels = "log.filter(e => e.type === 'wheel').map(e => [e.x, e.y, e.dx, e.dy])"
    await page.scroll(320, 200, 3)
    assert await until(page, "scrollY") == 300
    assert await until(page, f"{wheels}.length === 1 && {wheels}") == [[320, 200, 0, 300]]
    await page.scroll(320, 200, -1, horizontal=2)
    assert await until(page, "scrollX") == 200
    assert await until(page, "scrollY === 200 && scrollY") == 200
    await page.pointer(320, 200, 16)  # RFB wheel-down bit
    await page.pointer(320, 200, 0)
    assert await until(page, f"{wheels}.length === 3 && {wheels}") == [
        [320, 200, 0, 300],
        [320, 200, 200, -100],
        [320, 200, 0, 100],
    ]
