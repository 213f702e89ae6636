"""`RFBClient`: a VNC (RFB 3.3/3.7/3.8) client over asyncio streams for ``rfb/3.8`` capabilities.

Security: None, or VNC authentication with ``params.password`` (DES via ``cryptography``).
Encodings: Raw, CopyRect, Zlib and the DesktopSize pseudo-encoding, in 32-bit true colour.
`screenshot` returns PNG (or WebP, quality 85) bytes made with Pillow.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import struct
import zlib
from typing import Any
from urllib.parse import urlsplit

from hud.capabilities import Capability
from hud.protocol.errors import HudError

__all__ = ["KEYSYMS", "RFBAuthError", "RFBClient", "RFBError", "keysym"]

DEFAULT_TIMEOUT = 30.0

ENC_RAW = 0
ENC_COPYRECT = 1
ENC_ZLIB = 6
ENC_DESKTOP_SIZE = -223
ENC_LAST_RECT = -224
ENCODINGS = (ENC_COPYRECT, ENC_ZLIB, ENC_RAW, ENC_DESKTOP_SIZE, ENC_LAST_RECT)

#: 32 bpp, depth 24, little-endian, true colour, 8 bits a channel: bytes B, G, R, X.
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
BPP = 4

BUTTONS = {
    "left": 1,
    "middle": 2,
    "right": 4,
    "wheel_up": 8,
    "wheel_down": 16,
    "wheel_left": 32,
    "wheel_right": 64,
}

#: X11 keysyms by (lower-case) name, with common aliases.
KEYSYMS: dict[str, int] = {
    "backspace": 0xFF08,
    "tab": 0xFF09,
    "return": 0xFF0D,
    "enter": 0xFF0D,
    "escape": 0xFF1B,
    "esc": 0xFF1B,
    "delete": 0xFFFF,
    "del": 0xFFFF,
    "home": 0xFF50,
    "left": 0xFF51,
    "up": 0xFF52,
    "right": 0xFF53,
    "down": 0xFF54,
    "page_up": 0xFF55,
    "pageup": 0xFF55,
    "prior": 0xFF55,
    "page_down": 0xFF56,
    "pagedown": 0xFF56,
    "next": 0xFF56,
    "end": 0xFF57,
    "insert": 0xFF63,
    "shift": 0xFFE1,
    "shift_l": 0xFFE1,
    "shift_r": 0xFFE2,
    "ctrl": 0xFFE3,
    "control": 0xFFE3,
    "control_l": 0xFFE3,
    "control_r": 0xFFE4,
    "caps_lock": 0xFFE5,
    "meta": 0xFFE7,
    "meta_l": 0xFFE7,
    "alt": 0xFFE9,
    "alt_l": 0xFFE9,
    "alt_r": 0xFFEA,
    "super": 0xFFEB,
    "super_l": 0xFFEB,
    "cmd": 0xFFEB,
    "win": 0xFFEB,
    "space": 0x20,
    **{f"f{n}": 0xFFBE + n - 1 for n in range(1, 13)},
    # Printable characters by X11 name (``"+"`` cannot appear inside a combo).
    "plus": 0x2B,
    "minus": 0x2D,
    "equal": 0x3D,
    "comma": 0x2C,
    "period": 0x2E,
    "slash": 0x2F,
    "backslash": 0x5C,
    "semicolon": 0x3B,
    "apostrophe": 0x27,
    "grave": 0x60,
    "bracketleft": 0x5B,
    "bracketright": 0x5D,
}


class RFBError(HudError, RuntimeError):
    """The VNC server refused us or broke the protocol."""


class RFBAuthError(RFBError):
    """VNC authentication failed or is needed but no password was given."""


def keysym(key: int | str) -> int:
    """A keysym from an int, a key name (``"Return"``, ``"ctrl"``) or a single character."""
    if isinstance(key, int):
        return key
    named = KEYSYMS.get(key.lower())
    if named is not None:
        return named
    if len(key) == 1:
        return char_keysym(key)
    raise ValueError(f"unknown key {key!r}")


def char_keysym(char: str) -> int:
    """The keysym typing ``char`` produces (Latin-1 maps directly; others use 0x01000000 + cp)."""
    if char == "\n":
        return KEYSYMS["return"]
    if char == "\t":
        return KEYSYMS["tab"]
    if char == "\b":
        return KEYSYMS["backspace"]
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    return 0x01000000 | code


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """DES-encrypt the 16-byte challenge with the password (bits of each key byte mirrored)."""
    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # cryptography < 43
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    key = password.encode("latin-1", "replace")[:8].ljust(8, b"\0")
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in key)
    # Three equal 8-byte keys make TripleDES single DES.
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


class RFBClient:
    """A connected VNC session with a local copy of the framebuffer (use `RFBClient.connect`)."""

    def __init__(
        self,
        capability: Capability,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        encodings: tuple[int, ...] = ENCODINGS,
    ) -> None:
        self.capability = capability
        self.encodings = tuple(encodings)
        self.url = capability.url
        parts = urlsplit(self.url)
        if not parts.hostname:
            raise ValueError(f"rfb capability URL has no host: {self.url!r}")
        display = capability.params.get("display") or 0
        self.host = parts.hostname
        self.port = parts.port or 5900 + int(display)
        password = capability.params.get("password")
        if password is None and parts.password:
            password = parts.password
        self.password: str | None = password
        self.timeout = timeout
        self.width = 0
        self.height = 0
        self.name = ""
        self.version = ""
        #: The last text the server put on its clipboard (``ServerCutText``).
        self.clipboard = ""
        self._fb = bytearray()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self._shot_lock = asyncio.Lock()
        self._updated = asyncio.Condition()
        self._updates = 0
        self._error: BaseException | None = None
        self._zlib = zlib.decompressobj()
        self._buttons = 0
        #: Where this client last put the pointer (screen pixels).
        self.position: tuple[int, int] = (0, 0)

    def __repr__(self) -> str:
        return f"RFBClient({self.url!r}, {self.width}x{self.height})"

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @classmethod
    async def connect(
        cls,
        capability: Capability,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        encodings: tuple[int, ...] = ENCODINGS,
    ) -> RFBClient:
        """Connect and handshake. Unreachable servers raise `ConnectionError`.

        ``encodings`` are offered in order of preference (Raw is always understood).
        """
        client = cls(capability, timeout=timeout, encodings=encodings)
        try:
            await asyncio.wait_for(client._handshake(), timeout)
        except BaseException as exc:
            await client.close()
            if isinstance(exc, (asyncio.IncompleteReadError, OSError, TimeoutError)):
                raise ConnectionError(
                    f"cannot reach VNC server at {client.host}:{client.port}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            raise
        client._task = asyncio.create_task(client._read_loop(), name=f"rfb-reader {client.url}")
        return client

    # -- handshake ----------------------------------------------------------------------
    async def _read(self, n: int) -> bytes:
        assert self._reader is not None
        return await self._reader.readexactly(n)

    async def _read_reason(self) -> str:
        (length,) = struct.unpack(">I", await self._read(4))
        return (await self._read(length)).decode("utf-8", "replace")

    async def _handshake(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        banner = await self._read(12)
        if not banner.startswith(b"RFB ") or banner[7:8] != b"." or not banner.endswith(b"\n"):
            raise RFBError(f"not a VNC server (banner {banner!r})")
        major, minor = int(banner[4:7]), int(banner[8:11])
        if major != 3:
            raise RFBError(f"unsupported RFB version {banner.decode(errors='replace').strip()}")
        minor = 8 if minor >= 8 else 7 if minor == 7 else 3
        self.version = f"3.{minor}"
        self._writer.write(b"RFB 003.%03d\n" % minor)
        if minor == 3:
            (chosen,) = struct.unpack(">I", await self._read(4))
            if chosen == 0:
                raise RFBError(f"server refused the connection: {await self._read_reason()}")
            offered = [chosen]
        else:
            (count,) = await self._read(1)
            if count == 0:
                raise RFBError(f"server refused the connection: {await self._read_reason()}")
            offered = list(await self._read(count))
        if 1 in offered and not (self.password and 2 in offered):
            chosen = 1
        elif 2 in offered:
            if not self.password:
                raise RFBAuthError("VNC server requires a password (capability params.password)")
            chosen = 2
        else:
            raise RFBError(f"no supported VNC security type among {offered}")
        if minor >= 7:
            self._writer.write(bytes([chosen]))
        if chosen == 2:
            assert self.password is not None
            challenge = await self._read(16)
            self._writer.write(vnc_auth_response(self.password, challenge))
        if chosen == 2 or minor >= 8:
            (status,) = struct.unpack(">I", await self._read(4))
            if status != 0:
                reason = await self._read_reason() if minor >= 8 else ""
                raise RFBAuthError(f"VNC authentication failed{': ' + reason if reason else ''}")
        self._writer.write(b"\x01")  # ClientInit: share the desktop
        width, height = struct.unpack(">HH", await self._read(4))
        await self._read(16)  # the server's pixel format: we set our own below
        self.name = await self._read_reason()
        self._resize(width, height)
        self._writer.write(b"\x00\x00\x00\x00" + PIXEL_FORMAT)
        self._writer.write(
            struct.pack(">BxH", 2, len(self.encodings))
            + b"".join(struct.pack(">i", e) for e in self.encodings)
        )
        await self._writer.drain()

    def _resize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._fb = bytearray(width * height * BPP)

    # -- server messages ----------------------------------------------------------------
    async def _read_loop(self) -> None:
        try:
            while True:
                (kind,) = await self._read(1)
                if kind == 0:
                    await self._framebuffer_update()
                elif kind == 1:  # SetColourMapEntries (unused in true colour)
                    _, _, count = struct.unpack(">BHH", await self._read(5))
                    await self._read(count * 6)
                elif kind == 2:  # Bell
                    pass
                elif kind == 3:  # ServerCutText
                    await self._read(3)
                    self.clipboard = (await self._read_reason()).replace("\r\n", "\n")
                else:
                    raise RFBError(f"unknown VNC server message type {kind}")
        except asyncio.CancelledError:
            self._error = RFBError("VNC connection closed")
            raise
        except asyncio.IncompleteReadError:
            self._error = RFBError("VNC server closed the connection")
        except Exception as exc:
            self._error = exc if isinstance(exc, RFBError) else RFBError(f"VNC read failed: {exc}")
        finally:
            async with self._updated:
                self._updated.notify_all()

    async def _framebuffer_update(self) -> None:
        _, count = struct.unpack(">BH", await self._read(3))
        index = 0
        while count == 0xFFFF or index < count:
            index += 1
            x, y, w, h, enc = struct.unpack(">HHHHi", await self._read(12))
            if enc == ENC_LAST_RECT:
                break
            if enc == ENC_RAW:
                self._blit(x, y, w, h, await self._read(w * h * BPP))
            elif enc == ENC_COPYRECT:
                sx, sy = struct.unpack(">HH", await self._read(4))
                self._copy(sx, sy, x, y, w, h)
            elif enc == ENC_ZLIB:
                (length,) = struct.unpack(">I", await self._read(4))
                data = self._zlib.decompress(await self._read(length))
                self._blit(x, y, w, h, data)
            elif enc == ENC_DESKTOP_SIZE:
                self._resize(w, h)
            else:
                raise RFBError(f"VNC server sent an encoding we cannot decode ({enc})")
        async with self._updated:
            self._updates += 1
            self._updated.notify_all()

    def _clip(self, x: int, y: int, w: int, h: int) -> tuple[int, int]:
        return max(0, min(w, self.width - x)), max(0, min(h, self.height - y))

    def _blit(self, x: int, y: int, w: int, h: int, data: bytes) -> None:
        if len(data) < w * h * BPP:
            raise RFBError("VNC rectangle shorter than its size")
        cw, ch = self._clip(x, y, w, h)
        stride, src_stride = self.width * BPP, w * BPP
        view = memoryview(data)
        for row in range(ch):
            start, src = (y + row) * stride + x * BPP, row * src_stride
            self._fb[start : start + cw * BPP] = view[src : src + cw * BPP]

    def _copy(self, sx: int, sy: int, x: int, y: int, w: int, h: int) -> None:
        cw, ch = self._clip(x, y, w, h)
        cw, ch = min(cw, self._clip(sx, sy, w, h)[0]), min(ch, self._clip(sx, sy, w, h)[1])
        stride = self.width * BPP
        rows = [
            bytes(self._fb[(sy + r) * stride + sx * BPP : (sy + r) * stride + (sx + cw) * BPP])
            for r in range(ch)
        ]
        for r, line in enumerate(rows):
            start = (y + r) * stride + x * BPP
            self._fb[start : start + cw * BPP] = line

    # -- client messages ----------------------------------------------------------------
    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._writer is None:
            raise RFBError("VNC connection closed")

    async def _send(self, data: bytes) -> None:
        self._check()
        assert self._writer is not None
        async with self._write_lock:
            try:
                self._writer.write(data)
                await self._writer.drain()
            except OSError as exc:
                raise RFBError(f"VNC write failed: {exc}") from exc

    async def refresh(self, *, timeout: float | None = None) -> None:
        """Ask for the whole screen and wait until the update has arrived."""
        async with self._shot_lock:
            for _ in range(3):
                size = self.size
                async with self._updated:
                    target = self._updates + 1
                await self._send(struct.pack(">BBHHHH", 3, 0, 0, 0, self.width, self.height))

                def arrived(t: int = target) -> bool:
                    return self._updates >= t or self._error is not None

                async with asyncio.timeout(timeout or self.timeout), self._updated:
                    await self._updated.wait_for(arrived)
                self._check()
                if self.size == size:  # else the screen was resized: ask again
                    return

    def image(self) -> Any:
        """The local framebuffer as a Pillow RGB image (call `refresh` first for a fresh one)."""
        from PIL import Image

        return Image.frombuffer(
            "RGB", (self.width, self.height), bytes(self._fb), "raw", "BGRX", 0, 1
        )

    async def screenshot(self, *, format: str = "png", quality: int = 85) -> bytes:
        """The current screen as PNG (default) or WebP bytes."""
        await self.refresh()
        buffer = io.BytesIO()
        image = self.image()
        if format.lower() == "webp":
            image.save(buffer, format="WEBP", quality=quality)
        else:
            image.save(buffer, format="PNG")
        return buffer.getvalue()

    async def key(self, key: int | str, down: bool | None = None) -> None:
        """Press (``down=True``), release (``False``) or tap (``None``) a key by keysym or name."""
        sym = keysym(key)
        if down is None:
            await self._send(struct.pack(">BBxxI", 4, 1, sym) + struct.pack(">BBxxI", 4, 0, sym))
        else:
            await self._send(struct.pack(">BBxxI", 4, 1 if down else 0, sym))

    async def press(self, combo: str) -> None:
        """Tap a key combination like ``"ctrl+a"`` or ``"Return"``."""
        syms = [keysym(part) for part in combo.split("+") if part] if combo != "+" else [0x2B]
        data = b"".join(struct.pack(">BBxxI", 4, 1, s) for s in syms)
        data += b"".join(struct.pack(">BBxxI", 4, 0, s) for s in reversed(syms))
        await self._send(data)

    async def type_text(self, text: str) -> None:
        """Type ``text`` key by key (newline = Return)."""
        data = b"".join(
            struct.pack(">BBxxI", 4, 1, s) + struct.pack(">BBxxI", 4, 0, s)
            for s in (char_keysym(c) for c in text)
        )
        if data:
            await self._send(data)

    @property
    def buttons(self) -> int:
        """The pointer buttons held down now (RFB bit mask: 1 left, 2 middle, 4 right)."""
        return self._buttons & 7

    async def pointer(self, x: int, y: int, buttons: int = 0) -> None:
        """Move the pointer to ``(x, y)`` with ``buttons`` (bit mask: 1 left, 2 middle, 4 right)."""
        x = max(0, min(int(x), max(0, self.width - 1)))
        y = max(0, min(int(y), max(0, self.height - 1)))
        self._buttons = buttons
        self.position = (x, y)
        await self._send(struct.pack(">BBHH", 5, buttons & 0xFF, x, y))

    async def click(self, x: int, y: int, button: int | str = 1, *, count: int = 1) -> None:
        """Click (``count`` times) at ``(x, y)``; ``button`` is a mask bit or a name."""
        mask = BUTTONS[button] if isinstance(button, str) else button
        await self.pointer(x, y, 0)
        for _ in range(count):
            await self.pointer(x, y, mask)
            await self.pointer(x, y, 0)

    async def scroll(self, x: int, y: int, clicks: int, *, horizontal: int = 0) -> None:
        """Scroll at ``(x, y)``: positive ``clicks`` scroll down, negative up; ``horizontal``
        clicks scroll right (positive) or left (X buttons 6/7)."""
        mask = BUTTONS["wheel_down"] if clicks > 0 else BUTTONS["wheel_up"]
        for _ in range(abs(clicks)):
            await self.pointer(x, y, mask)
            await self.pointer(x, y, 0)
        mask = BUTTONS["wheel_right"] if horizontal > 0 else BUTTONS["wheel_left"]
        for _ in range(abs(horizontal)):
            await self.pointer(x, y, mask)
            await self.pointer(x, y, 0)

    async def cut_text(self, text: str) -> None:
        """Put ``text`` on the server's clipboard (``ClientCutText``, Latin-1)."""
        data = text.encode("latin-1", "replace")
        await self._send(struct.pack(">BxxxI", 6, len(data)) + data)

    # -- teardown -----------------------------------------------------------------------
    async def close(self) -> None:
        """Close the connection (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 2.0)
        if self._error is None:
            self._error = RFBError("VNC connection closed")

    aclose = close

    async def __aenter__(self) -> RFBClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
