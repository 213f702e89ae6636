"""Gemini's ``computer_use`` tool on an ``rfb`` (or ``cdp``) capability client.

The model calls predefined functions (``click_at``, ``type_text_at``, ``key_combination`` ...)
with coordinates normalized to 0..999; `GeminiScreen` turns them into actions on a client that
offers ``size`` -> (w, h), ``screenshot(format=)``, ``press(combo)`` (X11-style: ``control_l+a``),
``type_text(text)``, ``pointer(x, y, buttons)``, ``click(x, y, button, count=)`` and
``scroll(x, y, clicks, horizontal=)`` (`RFBClient`, `CDPClient`), plus optionally ``navigate(url)``,
``evaluate(js)`` and ``current_url``. Every action answers with the current URL and a fresh
screenshot (`GeminiScreen.observe`).

On ``rfb`` (a desktop) the browser-only functions are excluded from the request and answer
with an error if called anyway.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hud.agents.tools.base import AgentTool, ToolContext, ToolError, image_result
from hud.agents.tools.computer import wheel_clicks, x11_key
from hud.agents.tools.screen import Screen
from hud.types.trace import MCPToolResult

__all__ = [
    "BROWSER_ONLY",
    "COMPUTER_USE",
    "PREDEFINED",
    "GeminiScreen",
    "computer_use_spec",
    "denormalize",
    "gemini_computer_tools",
    "x11_combo",
]

log = logging.getLogger("hud.agents")

#: ``AgentTool.native["type"]`` of the predefined functions (sent as one ``computer_use`` tool).
COMPUTER_USE = "computer_use"
ENVIRONMENT = "ENVIRONMENT_BROWSER"
#: Functions that only make sense with a browser API (excluded on ``rfb``).
BROWSER_ONLY = ("open_web_browser", "navigate", "search", "go_back", "go_forward")
#: Upper bound of the model's normalized coordinates.
SCALE = 1000
#: Default ``scroll_at`` magnitude (normalized).
MAGNITUDE = 800
SEARCH_URL = "https://www.google.com"


def x11_combo(keys: str | list[str]) -> str:
    """``"Control+A"`` (or ``["Control", "A"]``) -> ``"control_l+a"`` (key names as
    `hud.agents.tools.computer.x11_key` maps them)."""
    parts = keys if isinstance(keys, list) else str(keys).split("+")
    names = [str(raw).strip() for raw in parts if str(raw).strip()]
    if not names:
        raise ToolError("'keys' names no key")
    return "+".join(x11_key(name) for name in names)


def denormalize(value: Any, extent: int, name: str) -> int:
    """A 0..999 coordinate (clamped) -> a pixel in ``0..extent-1``."""
    if value is None:
        raise ToolError(f"missing {name!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ToolError(f"{name!r} must be a number, got {value!r}") from None
    number = min(max(number, 0.0), SCALE - 1)
    return min(int(number / SCALE * extent), max(extent - 1, 0))


async def _value(obj: Any) -> Any:
    """An attribute that may be a value, a method or a coroutine function."""
    if callable(obj):
        obj = obj()
    if inspect.isawaitable(obj):
        obj = await obj
    return obj


class GeminiScreen:
    """The predefined computer-use functions on one capability client."""

    def __init__(
        self,
        client: Screen,
        *,
        family: str = "rfb",
        encoding: str = "PNG",
        settle_seconds: float = 0.3,
        search_url: str = SEARCH_URL,
    ) -> None:
        self.client = client
        self.family = family
        self.format = "webp" if encoding.upper() == "WEBP" else "png"
        self.mime = f"image/{self.format}"
        self.settle_seconds = settle_seconds
        self.search_url = search_url
        self.browser = family == "cdp"
        self.actions: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "open_web_browser": self.open_web_browser,
            "wait_5_seconds": self.wait_5_seconds,
            "go_back": self.go_back,
            "go_forward": self.go_forward,
            "search": self.search,
            "navigate": self.navigate,
            "click_at": self.click_at,
            "hover_at": self.hover_at,
            "type_text_at": self.type_text_at,
            "key_combination": self.key_combination,
            "scroll_document": self.scroll_document,
            "scroll_at": self.scroll_at,
            "drag_and_drop": self.drag_and_drop,
        }

    @property
    def excluded(self) -> list[str]:
        """Functions this screen cannot run (``excluded_predefined_functions``)."""
        return [] if self.browser else list(BROWSER_ONLY)

    # -- observation ----------------------------------------------------------------------
    async def size(self) -> tuple[int, int]:
        try:
            width, height = await _value(getattr(self.client, "size", None))
        except (TypeError, ValueError):
            raise ToolError("the screen size is unknown") from None
        if not width or not height:
            raise ToolError("the screen size is unknown")
        return int(width), int(height)

    async def point(
        self, args: dict[str, Any], xname: str = "x", yname: str = "y"
    ) -> tuple[int, int]:
        """``args[xname], args[yname]`` (0..999) as screen pixels."""
        width, height = await self.size()
        x = denormalize(args.get(xname), width, xname)
        y = denormalize(args.get(yname), height, yname)
        return x, y

    async def url(self) -> str:
        """The page URL (``current_url`` or ``location.href``), ``""`` on a plain desktop."""
        try:
            if hasattr(self.client, "current_url"):
                return str(await _value(self.client.current_url) or "")
            if hasattr(self.client, "evaluate"):
                return str(await self.client.evaluate("location.href") or "")
        except Exception as exc:  # the URL is informative only
            log.debug("gemini computer use: no current URL: %s", exc)
        return ""

    async def screenshot(self) -> bytes:
        return await self.client.screenshot(format=self.format)

    async def observe(self, extra: dict[str, Any] | None = None) -> MCPToolResult:
        """``{"url": ...}`` (plus ``extra``) as structured content and a screenshot."""
        if self.settle_seconds:
            await asyncio.sleep(self.settle_seconds)
        response: dict[str, Any] = {"url": await self.url(), **(extra or {})}
        result = image_result(await self.screenshot(), self.mime, json.dumps(response))
        result.structuredContent = response
        return result

    # -- dispatch -------------------------------------------------------------------------
    async def run(self, name: str, args: dict[str, Any]) -> MCPToolResult:
        """Run predefined function ``name``; a ``safety_decision`` is acknowledged."""
        args = dict(args)
        decision = args.pop("safety_decision", None)
        action = self.actions.get(name)
        if action is None:
            raise ToolError(f"unknown computer-use function {name!r}")
        if name in self.excluded:
            raise ToolError(f"{name} is not available: this computer has no browser API")
        extra: dict[str, Any] = {}
        if decision is not None:
            log.info("gemini computer use: acknowledging safety decision %s", decision)
            extra["safety_acknowledgement"] = "true"
        await action(args)
        return await self.observe(extra)

    # -- browser functions ----------------------------------------------------------------
    async def open_web_browser(self, args: dict[str, Any]) -> None:
        """The browser is already open: nothing to do."""

    async def wait_5_seconds(self, args: dict[str, Any]) -> None:
        await asyncio.sleep(5)

    async def _history(self, step: int) -> None:
        method = getattr(self.client, "go_back" if step < 0 else "go_forward", None)
        if method is not None:
            await _value(method)
        elif hasattr(self.client, "evaluate"):
            await self.client.evaluate(f"history.go({step})")
        else:
            await self.client.press("alt_l+Left" if step < 0 else "alt_l+Right")

    async def go_back(self, args: dict[str, Any]) -> None:
        await self._history(-1)

    async def go_forward(self, args: dict[str, Any]) -> None:
        await self._history(1)

    async def _goto(self, url: str) -> None:
        if not hasattr(self.client, "navigate"):
            raise ToolError("this screen cannot navigate")
        await self.client.navigate(url)

    async def search(self, args: dict[str, Any]) -> None:
        await self._goto(self.search_url)

    async def navigate(self, args: dict[str, Any]) -> None:
        url = str(args.get("url") or "").strip()
        if not url:
            raise ToolError("missing 'url'")
        if "://" not in url and not url.startswith(("about:", "data:")):
            url = f"https://{url}"
        await self._goto(url)

    # -- pointer and keyboard -------------------------------------------------------------
    async def click_at(self, args: dict[str, Any]) -> None:
        x, y = await self.point(args)
        await self.client.click(x, y, "left", count=1)

    async def hover_at(self, args: dict[str, Any]) -> None:
        x, y = await self.point(args)
        await self.client.pointer(x, y, 0)

    async def type_text_at(self, args: dict[str, Any]) -> None:
        x, y = await self.point(args)
        text = args.get("text")
        if text is None:
            raise ToolError("missing 'text'")
        await self.client.click(x, y, "left", count=1)
        if args.get("clear_before_typing", True):
            await self.client.press("control_l+a")
            await self.client.press("Delete")
        await self.client.type_text(str(text))
        if args.get("press_enter", True):
            await self.client.press("Return")

    async def key_combination(self, args: dict[str, Any]) -> None:
        keys = args.get("keys")
        if not keys:
            raise ToolError("missing 'keys'")
        await self.client.press(x11_combo(keys))

    async def _scroll(self, x: int, y: int, direction: str, pixels: int) -> None:
        clicks = max(1, wheel_clicks(pixels))
        if direction in ("up", "down"):
            await self.client.scroll(x, y, -clicks if direction == "up" else clicks)
        elif direction in ("left", "right"):
            clicks = -clicks if direction == "left" else clicks
            if "horizontal" in inspect.signature(self.client.scroll).parameters:
                await self.client.scroll(x, y, 0, horizontal=clicks)
            elif hasattr(self.client, "key"):  # shift + wheel scrolls sideways
                await self.client.key("shift_l", True)
                try:
                    await self.client.scroll(x, y, clicks)
                finally:
                    await self.client.key("shift_l", False)
            else:
                raise ToolError("this screen cannot scroll sideways")
        else:
            raise ToolError(f"'direction' must be up, down, left or right, got {direction!r}")

    async def scroll_document(self, args: dict[str, Any]) -> None:
        width, height = await self.size()
        direction = str(args.get("direction") or "").lower()
        extent = width if direction in ("left", "right") else height
        await self._scroll(width // 2, height // 2, direction, int(extent * MAGNITUDE / SCALE))

    async def scroll_at(self, args: dict[str, Any]) -> None:
        x, y = await self.point(args)
        width, height = await self.size()
        direction = str(args.get("direction") or "").lower()
        try:
            magnitude = float(args.get("magnitude") or MAGNITUDE)
        except (TypeError, ValueError):
            raise ToolError(
                f"'magnitude' must be a number, got {args.get('magnitude')!r}"
            ) from None
        magnitude = min(max(magnitude, 0.0), SCALE)
        extent = width if direction in ("left", "right") else height
        await self._scroll(x, y, direction, int(extent * magnitude / SCALE))

    async def drag_and_drop(self, args: dict[str, Any]) -> None:
        sx, sy = await self.point(args)
        dx, dy = await self.point(args, "destination_x", "destination_y")
        await self.client.pointer(sx, sy, 0)
        await self.client.pointer(sx, sy, 1)
        await self.client.pointer((sx + dx) // 2, (sy + dy) // 2, 1)
        await self.client.pointer(dx, dy, 1)
        await self.client.pointer(dx, dy, 0)


_N = {"type": "integer", "minimum": 0, "maximum": SCALE - 1}
_S = {"type": "string"}
_DIRECTION = {"type": "string", "enum": ["up", "down", "left", "right"]}
#: Name -> (description, parameters) of each predefined function (for the trace and docs).
PREDEFINED: dict[str, tuple[str, dict[str, Any]]] = {
    "open_web_browser": ("Open the web browser.", {}),
    "wait_5_seconds": ("Wait 5 seconds for the screen to settle.", {}),
    "go_back": ("Go back to the previous page.", {}),
    "go_forward": ("Go forward to the next page.", {}),
    "search": ("Go to a search engine's home page.", {}),
    "navigate": ("Go to a URL.", {"url": _S}),
    "click_at": ("Click at (x, y) (0..999 each).", {"x": _N, "y": _N}),
    "hover_at": ("Move the pointer to (x, y).", {"x": _N, "y": _N}),
    "type_text_at": (
        "Click at (x, y), optionally clear the field, type text, optionally press Enter.",
        {
            "x": _N,
            "y": _N,
            "text": _S,
            "press_enter": {"type": "boolean"},
            "clear_before_typing": {"type": "boolean"},
        },
    ),
    "key_combination": ("Press a key combination such as 'Control+A'.", {"keys": _S}),
    "scroll_document": ("Scroll the whole page.", {"direction": _DIRECTION}),
    "scroll_at": (
        "Scroll at (x, y) by magnitude (0..999 of the screen).",
        {"x": _N, "y": _N, "direction": _DIRECTION, "magnitude": _N},
    ),
    "drag_and_drop": (
        "Drag from (x, y) to (destination_x, destination_y).",
        {"x": _N, "y": _N, "destination_x": _N, "destination_y": _N},
    ),
}


def gemini_computer_tools(
    client: Screen,
    *,
    family: str = "rfb",
    encoding: str = "PNG",
    capability: str | None = None,
    settle_seconds: float = 0.3,
) -> list[AgentTool]:
    """One `AgentTool` per predefined function, all sent as a single ``computer_use`` tool.

    ``AgentTool.extra`` holds the shared `GeminiScreen` (``screen``) and whether the function
    is excluded from the request (``excluded``).
    """
    screen = GeminiScreen(client, family=family, encoding=encoding, settle_seconds=settle_seconds)
    excluded = set(screen.excluded)

    def handler(name: str) -> Callable[[dict[str, Any], ToolContext], Awaitable[MCPToolResult]]:
        async def call(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
            return await screen.run(name, args)

        return call

    return [
        AgentTool(
            name,
            description,
            {"type": "object", "properties": properties},
            handler(name),
            family=family,
            native={"type": COMPUTER_USE, "environment": ENVIRONMENT},
            capability=capability,
            extra={"screen": screen, "excluded": name in excluded},
        )
        for name, (description, properties) in PREDEFINED.items()
    ]


def computer_use_spec(tools: list[AgentTool]) -> dict[str, Any] | None:
    """``{"environment", "excluded_predefined_functions"}`` for the computer-use tools, or None."""
    ours = [t for t in tools if (t.native or {}).get("type") == COMPUTER_USE]
    if not ours:
        return None
    return {
        "environment": ours[0].native["environment"] if ours[0].native else ENVIRONMENT,
        "excluded_predefined_functions": [t.name for t in ours if t.extra.get("excluded")],
    }
