"""The `hud/1.0` control channel: newline-delimited JSON-RPC 2.0 frames (pure, no I/O)."""

from hud.protocol.errors import FrameTooLargeError, HudError, HudProtocolError
from hud.protocol.framing import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    decode_frame,
    encode_frame,
    oversize_message,
)
from hud.protocol.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_ERROR,
    UNAUTHORIZED,
    error_frame,
    request_frame,
    result_frame,
)

__all__ = [
    "DEFAULT_MAX_FRAME",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "PROTOCOL_VERSION",
    "SERVER_ERROR",
    "UNAUTHORIZED",
    "FrameTooLargeError",
    "HudError",
    "HudProtocolError",
    "decode_frame",
    "encode_frame",
    "error_frame",
    "oversize_message",
    "request_frame",
    "result_frame",
]
