"""The root of the library's exceptions, and those raised for protocol-level failures."""

from __future__ import annotations


class HudError(Exception):
    """Base class of every exception the ``hud`` library raises on purpose.

    ``except hud.HudError`` catches them all; each also derives from the built-in exception a
    caller would expect (``ValueError`` for bad input, ``RuntimeError`` for failed operations).
    """


class HudProtocolError(HudError):
    """A JSON-RPC error: one received from the peer, or one a server replies with.

    The one RPC error type of the package: clients raise it for error frames, the server
    raises it in a handler to reply with that ``code`` and ``message``.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"hud rpc error {code}: {message}")
        self.code = code
        self.message = message


class FrameTooLargeError(HudError, ValueError):
    """A frame exceeds the configured size limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"Control-channel frame of {size} bytes exceeds the limit of {limit} bytes"
        )
        self.size = size
        self.limit = limit
