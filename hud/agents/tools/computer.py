"""Claude's ``computer`` tool on an ``rfb`` capability client (`RFBClient`-like).

The client must offer ``size``, ``screenshot(format=...)``, ``click(x, y, button, count=)``,
``pointer(x, y, buttons)``, ``scroll(x, y, clicks)``, ``press(combo)`` and ``type_text(text)``.
Every action answers with a fresh screenshot.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hud.agents.tools.base import AgentTool, ToolContext, ToolError, image_result, text_result
from hud.eval.trace import MCPToolResult

__all__ = ["computer_tool"]

_CLICKS = {
    "left_click": ("left", 1),
    "right_click": ("right", 1),
    "middle_click": ("middle", 1),
    "double_click": ("left", 2),
    "triple_click": ("left", 3),
}
_KEY_NAMES = {"ctrl": "control_l", "cmd": "super_l", "super": "super_l", "alt": "alt_l"}


def _xy(value: Any, name: str = "coordinate") -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ToolError(f"{name!r} must be [x, y]")
    try:
        return int(value[0]), int(value[1])
    except (TypeError, ValueError):
        raise ToolError(f"{name!r} must hold two integers") from None


def _combo(text: str) -> str:
    parts = [p.strip() for p in text.split("+") if p.strip()]
    return "+".join(_KEY_NAMES.get(p.lower(), p) for p in parts)


async def computer_tool(
    client: Any, *, encoding: str = "PNG", native_type: str = "computer_20250124"
) -> AgentTool:
    width, height = getattr(client, "size", (0, 0)) or (0, 0)
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
        elif action == "mouse_move":
            x, y = _xy(args.get("coordinate"))
            await client.pointer(x, y, 0)
        elif action == "left_click_drag":
            sx, sy = _xy(args.get("start_coordinate"), "start_coordinate")
            x, y = _xy(args.get("coordinate"))
            await client.pointer(sx, sy, 1)
            await client.pointer(x, y, 1)
            await client.pointer(x, y, 0)
        elif action == "type":
            await client.type_text(str(args.get("text") or ""))
        elif action == "key":
            await client.press(_combo(str(args.get("text") or "")))
        elif action == "scroll":
            x, y = _xy(args.get("coordinate") or [width // 2, height // 2])
            amount = int(args.get("scroll_amount") or 3)
            direction = str(args.get("scroll_direction") or "down")
            await client.scroll(x, y, -amount if direction == "up" else amount)
        elif action == "wait":
            await asyncio.sleep(min(float(args.get("duration") or 1), 30))
        elif action == "cursor_position":
            return text_result("cursor position is not tracked over VNC")
        else:
            raise ToolError(f"unsupported computer action {action!r}")
        return await shot()

    return AgentTool(
        "computer",
        "Control the screen: screenshot, click, type, key, scroll, drag.",
        {"type": "object", "properties": {"action": {"type": "string"}}, "required": ["action"]},
        act,
        family="rfb",
        native={
            "type": native_type,
            "name": "computer",
            "display_width_px": int(width or 1024),
            "display_height_px": int(height or 768),
        },
    )
