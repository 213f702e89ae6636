"""`CDPClient`: Chrome DevTools Protocol commands to a page target of a ``cdp/1.3`` capability.

Target choice (wire.md §10): a URL whose path contains ``/devtools/`` is used as-is; else the
target ``params.target_id``; else the first ``page`` listed by ``GET /json``; else a new one from
``PUT /json/new?about:blank``. ``Page``, ``Runtime`` and ``DOM`` are enabled on connect.

The screen interface matches `RFBClient` (``size``, ``screenshot``, ``press``, ``type_text``,
``key``, ``pointer``, ``click``, ``scroll``), built on ``Input.dispatchMouseEvent``,
``Input.dispatchKeyEvent`` / ``Input.insertText`` and ``Page.captureScreenshot``. Coordinates are
screenshot pixels (device pixels); key names are X11-style (``control_l+a``, ``Return``).

Through a tunnel the local host:port differ from the browser's. Chromium only accepts ``Host``
headers naming an IP address or ``localhost``; requests here carry the browser's own address
(from ``capability.native_url``) as ``Host``, and WebSocket URLs the browser hands back are
rewritten to the address we connect to.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from hud.capabilities import Capability
from hud.protocol.errors import HudError

__all__ = ["CDPClient", "CDPError", "KeyInfo", "key_info"]

DEFAULT_TIMEOUT = 30.0
#: Events kept for `next_event` before the oldest are dropped.
MAX_EVENTS = 10_000
#: Pixels one wheel click scrolls (`CDPClient.scroll`).
WHEEL_DELTA = 100
#: Seconds `CDPClient.viewport` waits for the page before asking for layout metrics instead.
VIEWPORT_TIMEOUT = 5.0

# -- keys ---------------------------------------------------------------------------------------
#: ``Input.dispatchKeyEvent`` ``modifiers`` bits by DOM key.
MODIFIER_BITS = {"Alt": 1, "Control": 2, "Meta": 4, "Shift": 8}
_ALT, _CTRL, _META, _SHIFT = 1, 2, 4, 8

#: Named keys (lower-case X11 keysym names and aliases) -> (DOM key, DOM code, key code, text).
NAMED_KEYS: dict[str, tuple[str, str, int, str]] = {
    "backspace": ("Backspace", "Backspace", 8, ""),
    "tab": ("Tab", "Tab", 9, ""),
    "return": ("Enter", "Enter", 13, "\r"),
    "enter": ("Enter", "Enter", 13, "\r"),
    "kp_enter": ("Enter", "NumpadEnter", 13, "\r"),
    "escape": ("Escape", "Escape", 27, ""),
    "esc": ("Escape", "Escape", 27, ""),
    "space": (" ", "Space", 32, " "),
    "page_up": ("PageUp", "PageUp", 33, ""),
    "pageup": ("PageUp", "PageUp", 33, ""),
    "prior": ("PageUp", "PageUp", 33, ""),
    "page_down": ("PageDown", "PageDown", 34, ""),
    "pagedown": ("PageDown", "PageDown", 34, ""),
    "next": ("PageDown", "PageDown", 34, ""),
    "end": ("End", "End", 35, ""),
    "home": ("Home", "Home", 36, ""),
    "left": ("ArrowLeft", "ArrowLeft", 37, ""),
    "arrowleft": ("ArrowLeft", "ArrowLeft", 37, ""),
    "up": ("ArrowUp", "ArrowUp", 38, ""),
    "arrowup": ("ArrowUp", "ArrowUp", 38, ""),
    "right": ("ArrowRight", "ArrowRight", 39, ""),
    "arrowright": ("ArrowRight", "ArrowRight", 39, ""),
    "down": ("ArrowDown", "ArrowDown", 40, ""),
    "arrowdown": ("ArrowDown", "ArrowDown", 40, ""),
    "insert": ("Insert", "Insert", 45, ""),
    "delete": ("Delete", "Delete", 46, ""),
    "del": ("Delete", "Delete", 46, ""),
    "shift": ("Shift", "ShiftLeft", 16, ""),
    "shift_l": ("Shift", "ShiftLeft", 16, ""),
    "shift_r": ("Shift", "ShiftRight", 16, ""),
    "ctrl": ("Control", "ControlLeft", 17, ""),
    "control": ("Control", "ControlLeft", 17, ""),
    "control_l": ("Control", "ControlLeft", 17, ""),
    "control_r": ("Control", "ControlRight", 17, ""),
    "alt": ("Alt", "AltLeft", 18, ""),
    "alt_l": ("Alt", "AltLeft", 18, ""),
    "alt_r": ("Alt", "AltRight", 18, ""),
    "option": ("Alt", "AltLeft", 18, ""),
    "caps_lock": ("CapsLock", "CapsLock", 20, ""),
    "capslock": ("CapsLock", "CapsLock", 20, ""),
    "meta": ("Meta", "MetaLeft", 91, ""),
    "meta_l": ("Meta", "MetaLeft", 91, ""),
    "meta_r": ("Meta", "MetaRight", 92, ""),
    "super": ("Meta", "MetaLeft", 91, ""),
    "super_l": ("Meta", "MetaLeft", 91, ""),
    "super_r": ("Meta", "MetaRight", 92, ""),
    "cmd": ("Meta", "MetaLeft", 91, ""),
    "command": ("Meta", "MetaLeft", 91, ""),
    "win": ("Meta", "MetaLeft", 91, ""),
    "menu": ("ContextMenu", "ContextMenu", 93, ""),
    **{f"f{n}": (f"F{n}", f"F{n}", 111 + n, "") for n in range(1, 13)},
}

#: X11 keysym names of printable characters.
CHAR_NAMES = {
    "plus": "+",
    "minus": "-",
    "equal": "=",
    "comma": ",",
    "period": ".",
    "slash": "/",
    "backslash": "\\",
    "semicolon": ";",
    "colon": ":",
    "apostrophe": "'",
    "quotedbl": '"',
    "grave": "`",
    "asciitilde": "~",
    "bracketleft": "[",
    "bracketright": "]",
    "braceleft": "{",
    "braceright": "}",
    "parenleft": "(",
    "parenright": ")",
    "less": "<",
    "greater": ">",
    "question": "?",
    "exclam": "!",
    "at": "@",
    "numbersign": "#",
    "dollar": "$",
    "percent": "%",
    "asciicircum": "^",
    "ampersand": "&",
    "asterisk": "*",
    "underscore": "_",
    "bar": "|",
}

#: US-layout punctuation -> (DOM code, key code); shifted characters map to their key.
_PUNCTUATION = {
    "`": ("Backquote", 192),
    "-": ("Minus", 189),
    "=": ("Equal", 187),
    "[": ("BracketLeft", 219),
    "]": ("BracketRight", 221),
    "\\": ("Backslash", 220),
    ";": ("Semicolon", 186),
    "'": ("Quote", 222),
    ",": ("Comma", 188),
    ".": ("Period", 190),
    "/": ("Slash", 191),
    " ": ("Space", 32),
}
_SHIFTED = dict(zip('~!@#$%^&*()_+{}|:"<>?', "`1234567890-=[]\\;',./", strict=True))
_UNSHIFTED = {v: k for k, v in _SHIFTED.items()}


@dataclass(frozen=True)
class KeyInfo:
    """What ``Input.dispatchKeyEvent`` needs for one key: DOM ``key``/``code``, the Windows
    virtual key code and the ``text`` it types (empty for non-printing keys)."""

    key: str
    code: str
    key_code: int
    text: str = ""

    @property
    def modifier(self) -> int:
        return MODIFIER_BITS.get(self.key, 0)

    @property
    def location(self) -> int:
        if self.code.startswith("Numpad"):
            return 3
        if self.modifier:
            return 2 if self.code.endswith("Right") else 1
        return 0


def key_info(name: str, *, shift: bool = False) -> KeyInfo:
    """A key by X11-style name (``"Return"``, ``"control_l"``, ``"F5"``, ``"plus"``) or
    character (``"a"``, ``"A"``, ``"é"``); ``shift`` gives a printing key its shifted character.
    Unknown names raise `ValueError`."""
    named = NAMED_KEYS.get(name.lower())
    if named is not None:
        return KeyInfo(*named)
    char = CHAR_NAMES.get(name.lower()) if len(name) > 1 else name
    if char is None:
        raise ValueError(f"unknown key {name!r}")
    if shift:
        char = char.upper() if char.isalpha() else _UNSHIFTED.get(char, char)
    base = _SHIFTED.get(char, char)
    if base.isascii() and base.isalpha():
        return KeyInfo(char, f"Key{base.upper()}", ord(base.upper()), char)
    if base.isascii() and base.isdigit():
        return KeyInfo(char, f"Digit{base}", ord(base), char)
    if base in _PUNCTUATION:
        code, key_code = _PUNCTUATION[base]
        return KeyInfo(char, code, key_code, char)
    return KeyInfo(char, "", 0, char)


#: RFB pointer mask bits -> CDP button names (1 left, 2 middle, 4 right).
_RFB_BUTTONS = {1: "left", 2: "middle", 4: "right"}
#: CDP ``buttons`` bits by button name.
_CDP_BUTTON_BITS = {"left": 1, "right": 2, "middle": 4, "back": 8, "forward": 16}
#: RFB wheel bits (X buttons 4-7) -> (delta x, delta y) in clicks.
_RFB_WHEEL = {8: (0, -1), 16: (0, 1), 32: (-1, 0), 64: (1, 0)}


class CDPError(HudError, RuntimeError):
    """A CDP command answered with an error (``code``, ``message``) or the socket closed."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message if code is None else f"CDP error {code}: {message}")
        self.code = code
        self.data = data


def _netloc(host: str, port: int | None) -> str:
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def _host_header(native_url: str | None) -> str | None:
    """The ``Host`` the browser expects: its own address, or ``localhost:<port>`` for names."""
    if not native_url:
        return None
    parts = urlsplit(native_url)
    host = parts.hostname
    if not host:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            host = "localhost"
    return _netloc(host, port)


class CDPClient:
    """A WebSocket session with one DevTools target (use `CDPClient.connect`)."""

    def __init__(self, capability: Capability, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.capability = capability
        self.url = capability.url
        self.timeout = timeout
        parts = urlsplit(self.url)
        if not parts.hostname:
            raise ValueError(f"cdp capability URL has no host: {self.url!r}")
        self._connect_host = parts.hostname
        self._connect_port = parts.port or (443 if parts.scheme in ("wss", "https") else 9222)
        self._secure = parts.scheme in ("wss", "https")
        self._host = _host_header(capability.native_url) or _netloc(
            self._connect_host, self._connect_port
        )
        #: The target we are attached to (``id``, ``type``, ``url``, ``webSocketDebuggerUrl``).
        self.target: dict[str, Any] = {}
        self.ws_url: str | None = None
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_EVENTS)
        self._reader: asyncio.Task[None] | None = None
        self._closed: BaseException | None = None
        #: Viewport size in screenshot (device) pixels, and device pixels per CSS pixel.
        self.width = 0
        self.height = 0
        self.scale = 1.0
        #: Where the pointer was last sent (screenshot pixels).
        self.position: tuple[int, int] = (0, 0)
        self._buttons = 0
        self._modifiers = 0
        self._held: list[KeyInfo] = []

    def __repr__(self) -> str:
        return f"CDPClient({self.url!r}, target={self.target_id!r})"

    @property
    def target_id(self) -> str | None:
        return self.target.get("id")

    @classmethod
    async def connect(
        cls,
        capability: Capability,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        enable: tuple[str, ...] = ("Page", "Runtime", "DOM"),
    ) -> CDPClient:
        """Pick the target, open its WebSocket and enable ``enable`` domains.

        Raises `ConnectionError` when the browser cannot be reached (so callers may retry).
        """
        client = cls(capability, timeout=timeout)
        try:
            await client._open()
            for domain in enable:
                await client.send(f"{domain}.enable")
        except BaseException:
            await client.close()
            raise
        with contextlib.suppress(CDPError, TimeoutError):
            await client.viewport()  # a browser target has no viewport: size stays (0, 0)
        return client

    # -- target discovery ---------------------------------------------------------------
    def _http_base(self) -> str:
        scheme = "https" if self._secure else "http"
        return f"{scheme}://{_netloc(self._connect_host, self._connect_port)}"

    def _local_ws(self, ws_url: str) -> str:
        """``ws_url`` naming the browser's own address (sent as ``Host``; we connect elsewhere)."""
        parts = urlsplit(ws_url)
        scheme = "wss" if self._secure else "ws"
        return urlunsplit((scheme, self._host, parts.path, parts.query, ""))

    async def _http(self, method: str, path: str) -> Any:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as http:
                response = await http.request(
                    method, self._http_base() + path, headers={"Host": self._host}
                )
        except httpx.TransportError as exc:
            raise ConnectionError(f"cannot reach DevTools at {self._http_base()}: {exc}") from exc
        if response.status_code >= 400:
            raise CDPError(f"{method} {path}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            raise CDPError(f"{method} {path}: not JSON: {response.text[:200]}") from None

    async def _pick_target(self) -> str:
        path = urlsplit(self.url).path
        if "/devtools/" in path:
            kind = path.split("/devtools/", 1)[1].split("/", 1)
            self.target = {"id": kind[-1], "type": kind[0]}
            return self._local_ws(self.url)
        target_id = self.capability.params.get("target_id")
        targets = await self._http("GET", "/json")
        if not isinstance(targets, list):
            raise CDPError("GET /json did not return a list")
        chosen = None
        if target_id:
            chosen = next((t for t in targets if t.get("id") == target_id), None)
            if chosen is None:
                self.target = {"id": target_id, "type": "page"}
                return self._local_ws(f"ws://x/devtools/page/{quote(str(target_id))}")
        if chosen is None:
            chosen = next((t for t in targets if t.get("type") == "page"), None)
        if chosen is None:
            chosen = await self._http("PUT", "/json/new?about:blank")
        if not isinstance(chosen, dict) or not chosen.get("webSocketDebuggerUrl"):
            raise CDPError(f"DevTools target has no webSocketDebuggerUrl: {chosen!r}")
        self.target = chosen
        return self._local_ws(chosen["webSocketDebuggerUrl"])

    async def _open(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake

        self.ws_url = await self._pick_target()
        try:
            # The URL names the browser's own address (Host header); the socket goes to ours.
            self._ws = await asyncio.wait_for(
                connect(
                    self.ws_url,
                    host=self._connect_host,
                    port=self._connect_port,
                    max_size=None,
                    ping_interval=None,
                    open_timeout=self.timeout,
                ),
                self.timeout,
            )
        except (OSError, EOFError, InvalidHandshake, TimeoutError) as exc:
            raise ConnectionError(f"cannot open DevTools socket {self.ws_url}: {exc}") from exc
        self._reader = asyncio.create_task(self._read(), name=f"cdp-reader {self.ws_url}")

    # -- messages -----------------------------------------------------------------------
    async def _read(self) -> None:
        assert self._ws is not None
        reason: BaseException = CDPError("DevTools socket closed")
        try:
            async for raw in self._ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                mid = message.get("id")
                if mid is not None:
                    future = self._pending.pop(mid, None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif "method" in message:
                    if self._events.full():
                        self._events.get_nowait()
                    self._events.put_nowait(message)
        except Exception as exc:
            reason = CDPError(f"DevTools socket failed: {exc}")
        finally:
            self._closed = reason
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(reason)
            self._pending.clear()

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one command and return its ``result`` (errors raise `CDPError`)."""
        if self._ws is None or self._closed is not None:
            raise CDPError(f"{method}: DevTools socket is closed")
        mid = next(self._ids)
        message: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[mid] = future
        try:
            await self._ws.send(json.dumps(message))
            reply = await asyncio.wait_for(future, timeout or self.timeout)
        except TimeoutError:
            raise TimeoutError(f"{method}: no reply within {timeout or self.timeout}s") from None
        except Exception as exc:
            if isinstance(exc, CDPError):
                raise
            raise CDPError(f"{method}: {exc}") from exc
        finally:
            self._pending.pop(mid, None)
        error = reply.get("error")
        if error is not None:
            if isinstance(error, dict):
                raise CDPError(error.get("message", ""), error.get("code"), error.get("data"))
            raise CDPError(str(error))
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    async def next_event(
        self, method: str | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The next event (``{"method", "params"}``), skipping others when ``method`` is given."""
        deadline = asyncio.get_running_loop().time() + (timeout or self.timeout)
        while True:
            if self._events.empty() and self._closed is not None:
                raise CDPError(f"waiting for {method or 'an event'}: DevTools socket is closed")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no {method or 'CDP'} event within {timeout or self.timeout}s")
            try:
                event = await asyncio.wait_for(self._events.get(), remaining)
            except TimeoutError:
                raise TimeoutError(
                    f"no {method or 'CDP'} event within {timeout or self.timeout}s"
                ) from None
            if method is None or event.get("method") == method:
                return event

    def drain_events(self) -> list[dict[str, Any]]:
        """Take every queued event."""
        events = []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events

    # -- helpers ------------------------------------------------------------------------
    async def evaluate(self, expression: str, *, await_promise: bool = True) -> Any:
        """``Runtime.evaluate`` by value; a thrown exception raises `CDPError`."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        )
        details = result.get("exceptionDetails")
        if details:
            exception = details.get("exception") or {}
            text = exception.get("description") or details.get("text") or "exception"
            raise CDPError(f"Runtime.evaluate threw: {text}")
        return (result.get("result") or {}).get("value")

    async def navigate(self, url: str, *, wait: bool = True, timeout: float | None = None) -> None:
        """``Page.navigate`` and (by default) wait for the load event."""
        self.drain_events()
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        if wait:
            await self.next_event("Page.loadEventFired", timeout=timeout)

    # -- the screen (the `RFBClient` interface) ------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """The viewport in screenshot pixels, as last measured (`viewport`)."""
        return self.width, self.height

    async def viewport(self) -> tuple[int, int]:
        """Measure the viewport (``innerWidth``/``innerHeight``/``devicePixelRatio``, else
        ``Page.getLayoutMetrics``); updates `size` and `scale`."""
        try:
            measured = await asyncio.wait_for(
                self.evaluate("[innerWidth, innerHeight, devicePixelRatio]", await_promise=False),
                min(self.timeout, VIEWPORT_TIMEOUT),
            )
            css_width, css_height, scale = (float(v) for v in measured)
        except (CDPError, TimeoutError, TypeError, ValueError):
            metrics = await self.send("Page.getLayoutMetrics")
            view = metrics.get("cssVisualViewport") or metrics.get("cssLayoutViewport") or {}
            css_width = float(view.get("clientWidth") or 0)
            css_height = float(view.get("clientHeight") or 0)
            scale = 1.0
        self.scale = scale if scale > 0 else 1.0
        self.width, self.height = round(css_width * self.scale), round(css_height * self.scale)
        return self.size

    async def screenshot(self, *, format: str = "png", quality: int = 85) -> bytes:
        """The viewport as PNG (default), WebP or JPEG bytes (``Page.captureScreenshot``)."""
        kind = format.lower()
        kind = "jpeg" if kind == "jpg" else kind
        params: dict[str, Any] = {"format": kind}
        if kind in ("jpeg", "webp"):
            params["quality"] = quality
        result = await self.send("Page.captureScreenshot", params)
        if not self.width:
            with contextlib.suppress(CDPError, TimeoutError):
                await self.viewport()
        return base64.b64decode(result.get("data", ""))

    # keyboard
    async def _key_event(self, kind: str, info: KeyInfo, modifiers: int) -> None:
        params: dict[str, Any] = {
            "type": kind,
            "modifiers": modifiers,
            "key": info.key,
            "code": info.code,
            "windowsVirtualKeyCode": info.key_code,
            "nativeVirtualKeyCode": info.key_code,
            "location": info.location,
        }
        if kind == "keyDown":
            # With Ctrl/Alt/Meta held a key is a shortcut: no text (ctrl+a selects, not types).
            if info.text and not modifiers & (_ALT | _CTRL | _META):
                params["text"] = params["unmodifiedText"] = info.text
            else:
                params["type"] = "rawKeyDown"
        await self.send("Input.dispatchKeyEvent", params)

    async def key(self, key: str, down: bool | None = None) -> None:
        """Press (``down=True``), release (``False``) or tap (``None``) a key by name; held
        modifiers apply to later keys and pointer events."""
        if down is None:
            await self.press(key)
            return
        if down:
            info = key_info(key, shift=bool(self._modifiers & _SHIFT))
            self._modifiers |= info.modifier
            self._held.append(info)
            await self._key_event("keyDown", info, self._modifiers)
            return
        base = key_info(key)
        info = next((k for k in reversed(self._held) if k.code == base.code), base)
        if info in self._held:
            self._held.remove(info)
        if info.modifier and not any(k.modifier == info.modifier for k in self._held):
            self._modifiers &= ~info.modifier
        await self._key_event("keyUp", info, self._modifiers)

    async def press(self, combo: str) -> None:
        """Tap a key combination like ``"control_l+a"``, ``"shift+Tab"`` or ``"Return"``."""
        names = [part for part in combo.split("+") if part] if combo != "+" else ["+"]
        if not names:
            raise ValueError(f"no key in {combo!r}")
        keys: list[KeyInfo] = []
        modifiers = self._modifiers
        for name in names:  # resolve all first: an unknown name leaves no key down
            info = key_info(name, shift=bool(modifiers & _SHIFT))
            modifiers |= info.modifier
            keys.append(info)
        modifiers = self._modifiers
        for info in keys:
            modifiers |= info.modifier
            await self._key_event("keyDown", info, modifiers)
        for info in reversed(keys):
            if info.modifier and not any(k.modifier == info.modifier for k in self._held):
                modifiers &= ~info.modifier
            await self._key_event("keyUp", info, modifiers)

    async def type_text(self, text: str) -> None:
        """Type ``text`` key by key (newline = Return, tab = Tab); characters without a key on a
        US keyboard go in with ``Input.insertText``."""
        for char in text:
            if char == "\n":
                info = key_info("Return")
            elif char == "\t":
                info = key_info("Tab")
            else:
                info = key_info(char)
                if not info.code:
                    await self.send("Input.insertText", {"text": char})
                    continue
            await self._key_event("keyDown", info, self._modifiers)
            await self._key_event("keyUp", info, self._modifiers)

    # pointer
    def _point(self, x: float, y: float) -> tuple[int, int]:
        x, y = int(x), int(y)
        if self.width and self.height:
            x = max(0, min(x, self.width - 1))
            y = max(0, min(y, self.height - 1))
        return x, y

    @property
    def buttons(self) -> int:
        """The pointer buttons held down now (RFB bit mask: 1 left, 2 middle, 4 right)."""
        return self._buttons & 7

    def _cdp_buttons(self) -> int:
        return sum(
            _CDP_BUTTON_BITS[name] for bit, name in _RFB_BUTTONS.items() if self._buttons & bit
        )

    async def _mouse(self, kind: str, x: int, y: int, **params: Any) -> None:
        self.position = (x, y)
        await self.send(
            "Input.dispatchMouseEvent",
            {
                "type": kind,
                "x": x / self.scale,
                "y": y / self.scale,
                "modifiers": self._modifiers,
                "buttons": self._cdp_buttons(),
                **params,
            },
        )

    async def pointer(self, x: int, y: int, buttons: int = 0) -> None:
        """Move the pointer to ``(x, y)`` with ``buttons`` (RFB bit mask: 1 left, 2 middle,
        4 right; 8/16 wheel up/down and 32/64 left/right scroll one click when set)."""
        x, y = self._point(x, y)
        before = self._buttons
        if (x, y) != self.position or (buttons & 7) == (before & 7):
            await self._mouse("mouseMoved", x, y)
        for bit, name in _RFB_BUTTONS.items():
            if buttons & bit and not self._buttons & bit:
                self._buttons |= bit
                await self._mouse("mousePressed", x, y, button=name, clickCount=1)
            elif self._buttons & bit and not buttons & bit:
                self._buttons &= ~bit
                await self._mouse("mouseReleased", x, y, button=name, clickCount=1)
        for bit, (dx, dy) in _RFB_WHEEL.items():
            if buttons & bit and not before & bit:
                await self.wheel(x, y, dx * WHEEL_DELTA, dy * WHEEL_DELTA)
        self._buttons = buttons

    async def click(self, x: int, y: int, button: int | str = 1, *, count: int = 1) -> None:
        """Click (``count`` times: 2 is a double click) at ``(x, y)``; ``button`` is an RFB mask
        bit or a name (``left``, ``middle``, ``right``, ``back``, ``forward``)."""
        if isinstance(button, str):
            name = button.lower()
            if name not in _CDP_BUTTON_BITS:
                raise ValueError(f"unknown mouse button {button!r}")
        elif button in _RFB_BUTTONS:
            name = _RFB_BUTTONS[button]
        else:
            raise ValueError(f"unknown mouse button {button!r}")
        await self.pointer(x, y, 0)
        x, y = self.position
        for n in range(1, max(1, count) + 1):
            await self._mouse(
                "mousePressed", x, y, button=name, clickCount=n, buttons=_CDP_BUTTON_BITS[name]
            )
            await self._mouse("mouseReleased", x, y, button=name, clickCount=n)

    async def wheel(self, x: int, y: int, delta_x: float, delta_y: float) -> None:
        """Turn the wheel at ``(x, y)`` by pixels (positive: right / down)."""
        x, y = self._point(x, y)
        await self._mouse("mouseWheel", x, y, deltaX=delta_x, deltaY=delta_y)

    async def scroll(self, x: int, y: int, clicks: int, *, horizontal: int = 0) -> None:
        """Scroll at ``(x, y)``: positive ``clicks`` scroll down, negative up; ``horizontal``
        clicks scroll right (positive) or left."""
        await self.wheel(x, y, horizontal * WHEEL_DELTA, clicks * WHEEL_DELTA)

    async def close(self) -> None:
        """Close the socket (idempotent)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5.0)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    aclose = close

    async def __aenter__(self) -> CDPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
