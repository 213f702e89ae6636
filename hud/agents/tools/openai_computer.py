"""OpenAI's Responses computer-use tool (``computer_use_preview``) on a screen client.

The model answers with ``computer_call`` items; their ``action`` (``click``, ``double_click``,
``drag``, ``keypress``, ``move``, ``screenshot``, ``scroll``, ``type``, ``wait``; or a list of
them as ``actions``) runs here on an `RFBClient` (environment ``linux``) or a `CDPClient`
(``browser``), with the same client calls as Claude's tool (`hud.agents.tools.computer`). Every
call answers with a fresh screenshot, which `OpenAIAgent` sends back as a
``computer_call_output``; a failed action answers with the screenshot and the error text.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hud.agents.tools.base import AgentTool, ToolContext, ToolError, image_result
from hud.agents.tools.computer import screen_size, wheel_clicks, x11_combo, x11_key
from hud.agents.tools.screen import Screen
from hud.types.trace import MCPToolResult

__all__ = ["BLANK_PNG", "NATIVE_TYPE", "openai_computer_tool"]

#: ``AgentTool.native["type"]`` of the tool.
NATIVE_TYPE = "computer_use_preview"
#: The tool's ``environment`` by capability family.
ENVIRONMENTS = {"rfb": "linux", "cdp": "browser"}
#: Seconds a ``wait`` action waits.
WAIT_SECONDS = 1.0
#: A 1x1 PNG (base64) for answering a call when no screenshot could be taken.
BLANK_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _int(action: dict[str, Any], name: str) -> int:
    value = action.get(name)
    if value is None:
        raise ToolError(f"missing {name!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ToolError(f"{name!r} must be an integer, got {value!r}") from None


def _point(value: Any) -> tuple[int, int]:
    if isinstance(value, dict):
        return _int(value, "x"), _int(value, "y")
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return _int({"x": value[0]}, "x"), _int({"y": value[1]}, "y")
    raise ToolError(f"a path point must be {{x, y}}, got {value!r}")


class OpenAIScreen:
    """Runs Responses computer actions on one screen client."""

    def __init__(self, client: Screen, *, family: str = "rfb") -> None:
        self.client = client
        self.family = family

    async def run(self, action: dict[str, Any]) -> None:
        """One action; held ``keys`` (click, move, scroll, drag) go down around it."""
        kind = str(action.get("type") or "")
        method = getattr(self, f"do_{kind}", None)
        if not kind or method is None:
            raise ToolError(f"unknown computer action {kind!r}")
        keys = [x11_key(str(k)) for k in action.get("keys") or []] if kind != "keypress" else []
        held: list[str] = []
        try:
            for key in keys:
                await self.client.key(key, True)
                held.append(key)
            await method(action)
        finally:
            for key in reversed(held):
                await self.client.key(key, False)

    async def do_screenshot(self, action: dict[str, Any]) -> None:
        """Nothing to do: every call answers with a screenshot."""

    async def do_click(self, action: dict[str, Any]) -> None:
        x, y = _int(action, "x"), _int(action, "y")
        button = str(action.get("button") or "left")
        if button in ("left", "right"):
            await self.client.click(x, y, button)
        elif button == "wheel":
            await self.client.click(x, y, "middle")
        elif button in ("back", "forward"):
            if self.family == "cdp":
                await self.client.click(x, y, button)
            else:  # VNC has no back/forward buttons: the usual shortcut instead
                await self.client.pointer(x, y, 0)
                await self.client.press("alt_l+Left" if button == "back" else "alt_l+Right")
        else:
            raise ToolError(f"unknown mouse button {button!r}")

    async def do_double_click(self, action: dict[str, Any]) -> None:
        await self.client.click(_int(action, "x"), _int(action, "y"), "left", count=2)

    async def do_move(self, action: dict[str, Any]) -> None:
        await self.client.pointer(_int(action, "x"), _int(action, "y"), 0)

    async def do_drag(self, action: dict[str, Any]) -> None:
        path = [_point(p) for p in action.get("path") or []]
        if not path:
            raise ToolError("'path' must hold at least one point")
        await self.client.pointer(*path[0], 0)
        await self.client.pointer(*path[0], 1)
        for point in path[1:]:
            await self.client.pointer(*point, 1)
        await self.client.pointer(*path[-1], 0)

    async def do_keypress(self, action: dict[str, Any]) -> None:
        keys = action.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ToolError("'keys' must list the keys to press")
        await self.client.press(x11_combo([str(k) for k in keys]))

    async def do_type(self, action: dict[str, Any]) -> None:
        text = action.get("text")
        if not isinstance(text, str):
            raise ToolError("missing 'text'")
        await self.client.type_text(text)

    async def do_scroll(self, action: dict[str, Any]) -> None:
        x, y = _int(action, "x"), _int(action, "y")
        dx, dy = int(action.get("scroll_x") or 0), int(action.get("scroll_y") or 0)
        wheel = getattr(self.client, "wheel", None)
        if wheel is not None:  # pixel-exact (CDP)
            await wheel(x, y, dx, dy)
            return
        await self.client.pointer(x, y, 0)
        await self.client.scroll(x, y, wheel_clicks(dy), horizontal=wheel_clicks(dx))

    async def do_wait(self, action: dict[str, Any]) -> None:
        await asyncio.sleep(WAIT_SECONDS)


def openai_computer_tool(
    client: Screen, *, family: str = "rfb", encoding: str = "PNG", capability: str | None = None
) -> AgentTool:
    """The ``computer_use_preview`` tool on ``client`` (``family`` ``rfb`` or ``cdp``); its
    arguments are one action object (``{"type": "click", "x": ..., "y": ...}``) or
    ``{"actions": [...]}``."""
    width, height = screen_size(client)
    fmt = "webp" if encoding.upper() == "WEBP" else "png"
    mime = f"image/{fmt}"
    screen = OpenAIScreen(client, family=family)

    async def act(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        actions = args.get("actions") if "actions" in args else [args]
        error: str | None = None
        try:
            if not isinstance(actions, list):
                raise ToolError("'actions' must be a list")
            for action in actions:
                if not isinstance(action, dict):
                    raise ToolError(f"an action must be an object, got {action!r}")
                await screen.run(action)
        except (ToolError, ValueError) as exc:
            error = f"computer action failed: {exc}"
        result = image_result(await client.screenshot(format=fmt), mime, error)
        result.isError = error is not None
        return result

    return AgentTool(
        "computer",
        "Control the screen: click, double_click, drag, keypress, move, screenshot, scroll, "
        "type, wait.",
        {"type": "object", "properties": {"type": {"type": "string"}}},
        act,
        family=family,
        capability=capability,
        native={
            "type": NATIVE_TYPE,
            "display_width": width,
            "display_height": height,
            "environment": ENVIRONMENTS.get(family, "browser"),
        },
    )
