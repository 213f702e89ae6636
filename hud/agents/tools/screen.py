"""`Screen`: what the computer-use tools need of a screen client.

The tools (`hud.agents.tools.computer`, `openai_computer`, `gemini_computer`) drive whichever
screen capability the environment offers: a desktop over VNC (`hud.clients.rfb_client.RFBClient`)
or a browser over the DevTools protocol (`hud.clients.cdp_client.CDPClient`). Both clients satisfy
`Screen` structurally (neither imports it); a browser also satisfies `BrowserScreen`, which the
tools look for by attribute (``navigate``, ``evaluate``, ``wheel``) before using.

Keys are X11 keysym names (``control_l``, ``Return``, ``a``) and combos join them with ``+``
(``control_l+a``); buttons are ``left``/``right``/``middle`` (or 1..3); ``buttons`` as a state is
the RFB bit mask (1 left, 2 middle, 4 right).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

__all__ = ["BrowserScreen", "Screen"]


class Screen(Protocol):
    """A screen the computer tools can look at and act on."""

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels; ``(0, 0)`` while unknown."""
        ...

    @property
    def position(self) -> tuple[int, int]:
        """The pointer's last position."""
        ...

    @property
    def buttons(self) -> int:
        """The mouse buttons held down (bit mask)."""
        ...

    async def screenshot(self, *, format: str = "png", quality: int = 85) -> bytes:
        """The screen as an image (``png``, ``webp`` or ``jpeg``)."""
        ...

    async def key(self, key: str, down: bool | None = None) -> None:
        """Press and release ``key`` (``down`` None), or only press / release it."""
        ...

    async def press(self, combo: str) -> None:
        """Press a combo such as ``control_l+a``, releasing the keys in reverse order."""
        ...

    async def type_text(self, text: str) -> None:
        """Type ``text`` as keystrokes."""
        ...

    async def pointer(self, x: int, y: int, buttons: int = 0) -> None:
        """Move the pointer to ``(x, y)`` with ``buttons`` held."""
        ...

    async def click(self, x: int, y: int, button: int | str = 1, *, count: int = 1) -> None:
        """Click ``button`` ``count`` times at ``(x, y)``."""
        ...

    async def scroll(self, x: int, y: int, clicks: int, *, horizontal: int = 0) -> None:
        """Turn the wheel ``clicks`` (positive: down) and ``horizontal`` (positive: right)."""
        ...


class BrowserScreen(Screen, Protocol):
    """A `Screen` that is a browser page (`CDPClient`)."""

    async def navigate(self, url: str, *, wait: bool = True, timeout: float | None = None) -> None:
        """Load ``url`` (waiting for the page to load unless ``wait`` is false)."""
        ...

    async def evaluate(self, expression: str, *, await_promise: bool = True) -> Any:
        """The value of a JavaScript expression in the page."""
        ...

    async def wheel(self, x: int, y: int, delta_x: float, delta_y: float) -> None:
        """Scroll by exact pixel deltas at ``(x, y)``."""
        ...


if TYPE_CHECKING:  # the screen clients satisfy the contract (checked by mypy, free at run time)
    from hud.clients.cdp_client import CDPClient
    from hud.clients.rfb_client import RFBClient

    def _conforms(rfb: RFBClient, cdp: CDPClient) -> tuple[Screen, BrowserScreen, Screen]:
        return rfb, cdp, cdp
