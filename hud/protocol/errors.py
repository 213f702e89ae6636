"""Exceptions raised for protocol-level failures."""

from __future__ import annotations


class HudProtocolError(Exception):
    """An error frame received from (or a protocol violation by) the peer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"hud rpc error {code}: {message}")
        self.code = code
        self.message = message


class FrameTooLargeError(ValueError):
    """A frame exceeds the configured size limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"Control-channel frame of {size} bytes exceeds the limit of {limit} bytes"
        )
        self.size = size
        self.limit = limit
