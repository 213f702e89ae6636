"""WebSocket framing (RFC 6455 §5) for the runtime tunnel's spliced data path, both ends: the
platform's side (api/splice.py: masked frames in, plain frames out) and `HUDRuntime`'s
forwarder (client/runtime.py: the other way round). The websockets library does the opening
handshakes; once a tunnel is open its frames are read and written here, payloads streamed as
they arrive (no size limit, no per-message buffering): a tunnel is a byte stream, so message
boundaries, fragmentation and text/binary make no difference to it (no extensions are
negotiated).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from hud.protocol.errors import HudError

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets without its C extension
    from websockets.utils import apply_mask

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (CONT, TEXT, BINARY)
_CONTROL = (CLOSE, PING, PONG)


class FrameError(HudError, ValueError):
    """A frame that breaks RFC 6455 (close the connection with code 1002)."""


def frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    """One final frame (a client masks, a server does not)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, (0x80 if mask else 0) | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, (0x80 if mask else 0) | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, (0x80 if mask else 0) | 127)) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


def close_payload(code: int) -> bytes:
    return code.to_bytes(2, "big")


def set_paused(transport: asyncio.Transport | None, paused: bool) -> None:
    """Pause or resume reading one side of a splice (nothing once it is closing): the other
    side's write buffer filled up or drained."""
    if transport is None or transport.is_closing():
        return
    if paused:
        transport.pause_reading()
    else:
        transport.resume_reading()


class FrameReader:
    """Incremental frame parser: :meth:`feed` the bytes as they arrive; data frames' payloads
    go to ``on_data`` piece by piece, unmasked, control frames whole to ``on_control(opcode,
    payload)``. ``masked``: whether the peer must mask (it is a client). Raises `FrameError`."""

    def __init__(
        self,
        *,
        masked: bool,
        on_data: Callable[[bytes], None],
        on_control: Callable[[int, bytes], None],
    ) -> None:
        self.masked = masked
        self.on_data = on_data
        self.on_control = on_control
        self.pending = b""  # an incomplete header
        self.remaining = 0  # payload bytes left in the current frame
        self.key = b""  # its mask ("" if none)
        self.offset = 0  # payload bytes of it already read (the mask's phase)
        self.control: int | None = None  # its opcode if a control frame
        self.collected = b""  # a control frame's payload so far

    def feed(self, data: bytes) -> None:
        if self.pending:
            data, self.pending = self.pending + data, b""
        pos, end = 0, len(data)
        while pos < end:
            if not self.remaining:
                pos = self._header(data, pos, end)
                if pos < 0:
                    return
                if not self.remaining:  # an empty payload
                    self._payload(b"")
                continue
            take = min(self.remaining, end - pos)
            chunk = data[pos : pos + take] if take < end or pos else data
            pos += take
            if self.key:
                phase = self.offset & 3
                key = self.key[phase:] + self.key[:phase] if phase else self.key
                chunk = apply_mask(chunk, key)
            self.offset += take
            self.remaining -= take
            self._payload(chunk)

    def _header(self, data: bytes, pos: int, end: int) -> int:
        """Parse a header at ``pos``: the payload's position, or -1 (kept for later)."""
        if end - pos < 2:
            self.pending = data[pos:]
            return -1
        b0, b1 = data[pos], data[pos + 1]
        opcode = b0 & 0x0F
        if b0 & 0x70:
            raise FrameError("reserved bits set (no extension was negotiated)")
        if opcode not in _DATA and opcode not in _CONTROL:
            raise FrameError(f"unknown opcode {opcode}")
        if bool(b1 & 0x80) is not self.masked:
            raise FrameError("a client must mask its frames, a server must not")
        length = b1 & 0x7F
        need = 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if self.masked else 0)
        if end - pos < need:
            self.pending = data[pos:]
            return -1
        at = pos + 2
        if length == 126:
            length = int.from_bytes(data[at : at + 2], "big")
            at += 2
        elif length == 127:
            length = int.from_bytes(data[at : at + 8], "big")
            at += 8
        if opcode in _CONTROL:
            if not b0 & 0x80 or length > 125:
                raise FrameError("a control frame must be final and at most 125 bytes")
            self.control, self.collected = opcode, b""
        else:
            self.control = None
        self.key = data[at : at + 4] if self.masked else b""
        self.remaining, self.offset = length, 0
        return at + (4 if self.masked else 0)

    def _payload(self, chunk: bytes) -> None:
        if self.control is None:
            if chunk:
                self.on_data(chunk)
            return
        self.collected += chunk
        if not self.remaining:
            opcode, self.control = self.control, None
            self.on_control(opcode, self.collected)
