"""Claude's ``computer`` tool on a screen client: ``rfb`` (`RFBClient`) or ``cdp`` (`CDPClient`).

The client is a `hud.agents.tools.screen.Screen` (``size``, ``screenshot(format=...)``,
``click(x, y, button, count=)``, ``pointer(x, y, buttons)``, ``scroll(x, y, clicks)``,
``press(combo)``, ``key(name, down)``, ``type_text(text)``, and the pointer's ``position`` and
``buttons``). Every action answers with a fresh screenshot. The helpers here (key names, picking
the screen) are shared with OpenAI's computer tool (`hud.agents.tools.openai_computer`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

from hud.agents.tools.base import AgentTool, ToolContext, ToolError, image_result, text_result
from hud.agents.tools.mcp import sanitize_tool_name
from hud.agents.tools.screen import Screen
from hud.capabilities import Capability
from hud.eval.trace import MCPToolResult

__all__ = [
    "SCREEN_FAMILIES",
    "add_screen_tools",
    "computer_tool",
    "pick_screen",
    "screen_size",
    "screens_to_open",
    "wheel_clicks",
    "x11_combo",
    "x11_key",
]

#: Capability families a computer tool drives, preferred first.
SCREEN_FAMILIES = ("rfb", "cdp")

_CLICKS = {
    "left_click": ("left", 1),
    "right_click": ("right", 1),
    "middle_click": ("middle", 1),
    "double_click": ("left", 2),
    "triple_click": ("left", 3),
}

#: Key names models use (xdotool, DOM, OpenAI's upper-case ones) -> X11 keysym names.
X11_KEYS = {
    "ctrl": "control_l",
    "control": "control_l",
    "shift": "shift_l",
    "alt": "alt_l",
    "option": "alt_l",
    "cmd": "super_l",
    "command": "super_l",
    "super": "super_l",
    "meta": "super_l",
    "win": "super_l",
    "enter": "Return",
    "return": "Return",
    "esc": "Escape",
    "escape": "Escape",
    "backspace": "BackSpace",
    "delete": "Delete",
    "del": "Delete",
    "insert": "Insert",
    "tab": "Tab",
    "space": "space",
    "home": "Home",
    "end": "End",
    "pageup": "Page_Up",
    "page_up": "Page_Up",
    "pagedown": "Page_Down",
    "page_down": "Page_Down",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "arrowup": "Up",
    "arrowdown": "Down",
    "arrowleft": "Left",
    "arrowright": "Right",
    "capslock": "Caps_Lock",
    "caps_lock": "Caps_Lock",
    "+": "plus",
    " ": "space",
}


def x11_key(name: str) -> str:
    """One key name as the screen clients spell it (``"CTRL"`` -> ``"control_l"``, ``"A"`` ->
    ``"a"``); unknown names pass through (the client rejects them)."""
    if name == " ":
        return "space"
    key = name.strip()
    low = key.lower()
    mapped = X11_KEYS.get(low) or X11_KEYS.get(re.sub(r"[-_ ]", "", low))  # Page_Up, page-up
    if mapped is not None:
        return mapped
    if len(key) == 1 and key.isalpha():
        return key.lower()
    return key


def x11_combo(keys: str | Iterable[str]) -> str:
    """``"ctrl+a"`` or ``["CTRL", "A"]`` -> ``"control_l+a"``; ``"ctrl++"`` ends in ``plus``."""
    if isinstance(keys, str):
        text = keys.strip()
        plus = text == "+" or text.endswith("++")
        body = text[:-1] if plus else text
        parts = [p for p in body.split("+") if p.strip()] + (["+"] if plus else [])
    else:
        parts = [str(k) for k in keys if str(k)]
    if not parts:
        raise ToolError("no key given")
    return "+".join(x11_key(p) for p in parts)


def pick_screen(opened: list[tuple[Capability, Any]]) -> tuple[Capability, Screen] | None:
    """The ``(capability, client)`` a computer tool drives: ``rfb`` first, else ``cdp``."""
    for family in SCREEN_FAMILIES:
        for cap, client in opened:
            if cap.family == family:
                return cap, client
    return None


def screens_to_open(families: frozenset[str], bindings: list[Capability]) -> frozenset[str]:
    """``families`` minus the screen families after the first one ``bindings`` offer."""
    offered = {cap.family for cap in bindings}
    first = next((f for f in SCREEN_FAMILIES if f in offered and f in families), None)
    return families - {f for f in SCREEN_FAMILIES if first is not None and f != first}


def add_screen_tools(tools: list[AgentTool], screen: list[AgentTool]) -> list[AgentTool]:
    """``tools`` plus the ``screen`` tools; an MCP tool named like one of them becomes
    ``<capability>__<name>``."""
    names = {t.name for t in screen}
    for other in tools:
        if other.name in names:
            if other.family != "mcp" or not other.capability:
                raise ValueError(f"tool {other.name!r} clashes with a computer-use tool")
            other.name = sanitize_tool_name(f"{other.capability}__{other.upstream}")
    return [*tools, *screen]


#: Scroll pixels per wheel click on clients that scroll by clicks (`RFBClient`, `CDPClient`).
WHEEL_PIXELS = 100


def wheel_clicks(pixels: int) -> int:
    """Signed wheel clicks for a scroll of ``pixels`` (at least one click unless 0)."""
    if not pixels:
        return 0
    clicks = max(1, round(abs(pixels) / WHEEL_PIXELS))
    return clicks if pixels > 0 else -clicks


def screen_size(client: Screen, default: tuple[int, int] = (1024, 768)) -> tuple[int, int]:
    """The client's ``size`` (``default`` when unknown)."""
    width, height = getattr(client, "size", None) or (0, 0)
    if not width or not height:
        return default
    return int(width), int(height)


def _xy(value: Any, name: str = "coordinate") -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ToolError(f"{name!r} must be [x, y]")
    try:
        return int(value[0]), int(value[1])
    except (TypeError, ValueError):
        raise ToolError(f"{name!r} must hold two integers") from None


def _cursor(client: Screen) -> tuple[int, int]:
    position = getattr(client, "position", None)
    if position is None:
        raise ToolError("'coordinate' is required: the cursor position is not tracked here")
    return int(position[0]), int(position[1])


async def _press(client: Screen, text: str) -> None:
    """xdotool-style keys: space-separated combos pressed one after another."""
    combos = re.sub(r"\s*\+\s*(?=\S)", "+", text.strip()).split() or ([text] if text else [])
    if not combos:
        raise ToolError("'text' must name the key(s) to press")
    for combo in combos:
        try:
            await client.press(x11_combo(combo))
        except ValueError as exc:
            raise ToolError(str(exc)) from None


async def computer_tool(
    client: Screen,
    *,
    encoding: str = "PNG",
    native_type: str = "computer_20250124",
    family: str = "rfb",
    capability: str | None = None,
) -> AgentTool:
    """Claude's ``computer`` tool (``native_type``) on ``client``; ``family`` is ``rfb`` or
    ``cdp``."""
    width, height = screen_size(client)
    fmt = "webp" if encoding.upper() == "WEBP" else "png"
    mime = f"image/{fmt}"

    async def shot(note: str | None = None) -> MCPToolResult:
        return image_result(await client.screenshot(format=fmt), mime, note)

    async def act(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        action = str(args.get("action") or "")
        if action == "screenshot":
            return await shot()
        if action in _CLICKS:
            button, count = _CLICKS[action]
            x, y = _xy(args.get("coordinate"))
            await client.click(x, y, button, count=count)
        elif action == "mouse_move":  # buttons held by left_mouse_down stay held (a drag)
            x, y = _xy(args.get("coordinate"))
            await client.pointer(x, y, getattr(client, "buttons", 0))
        elif action == "left_click_drag":
            sx, sy = _xy(args.get("start_coordinate"), "start_coordinate")
            x, y = _xy(args.get("coordinate"))
            await client.pointer(sx, sy, 1)
            await client.pointer(x, y, 1)
            await client.pointer(x, y, 0)
        elif action in ("left_mouse_down", "left_mouse_up"):
            coordinate = args.get("coordinate")
            x, y = _xy(coordinate) if coordinate else _cursor(client)
            await client.pointer(x, y, 1 if action == "left_mouse_down" else 0)
        elif action == "hold_key":
            keys = [x11_key(k) for k in str(args.get("text") or "").split("+") if k.strip()]
            if not keys:
                raise ToolError("hold_key needs 'text', e.g. 'shift'")
            held: list[str] = []
            try:
                for key in keys:
                    await client.key(key, True)
                    held.append(key)
                await asyncio.sleep(min(max(float(args.get("duration") or 0.5), 0), 30))
            finally:
                for key in reversed(held):
                    await client.key(key, False)
        elif action == "type":
            await client.type_text(str(args.get("text") or ""))
        elif action == "key":
            await _press(client, str(args.get("text") or ""))
        elif action == "scroll":
            x, y = _xy(args.get("coordinate") or [width // 2, height // 2])
            amount = int(args.get("scroll_amount") or 3)
            direction = str(args.get("scroll_direction") or "down")
            if direction in ("left", "right"):
                await client.scroll(x, y, 0, horizontal=-amount if direction == "left" else amount)
            else:
                await client.scroll(x, y, -amount if direction == "up" else amount)
        elif action == "wait":
            await asyncio.sleep(min(float(args.get("duration") or 1), 30))
        elif action == "cursor_position":
            position = getattr(client, "position", None)
            if position is None:
                return text_result("the cursor position is not tracked on this screen")
            return text_result(f"X={position[0]},Y={position[1]}")
        else:
            raise ToolError(f"unsupported computer action {action!r}")
        return await shot()

    return AgentTool(
        "computer",
        "Control the screen: screenshot, click, type, key, hold_key, scroll, drag, mouse down/up.",
        {"type": "object", "properties": {"action": {"type": "string"}}, "required": ["action"]},
        act,
        family=family,
        capability=capability,
        native={
            "type": native_type,
            "name": "computer",
            "display_width_px": width,
            "display_height_px": height,
        },
    )
