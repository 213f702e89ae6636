"""Encoding and decoding of single newline-terminated JSON frames."""

from __future__ import annotations

import json
from typing import Any

from hud.protocol.errors import FrameTooLargeError

PROTOCOL_VERSION = "hud/1.0"
#: Frames up to 16 MiB (newline excluded) are accepted by default in both directions.
DEFAULT_MAX_FRAME = 16 * 1024 * 1024

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True)
_ascii_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=True)

try:  # the C encoder JSONEncoder.encode builds on every call, built once (no circular check)
    from _json import make_encoder as _make_encoder

    _fast_encode: Any = _make_encoder(
        None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
except ImportError:  # pragma: no cover - CPython always has _json
    _fast_encode = None


def _dumps(obj: Any) -> str:
    if _fast_encode is not None:
        try:
            return "".join(_fast_encode(obj, 0))
        except Exception:
            pass  # circular or unserializable: the checked encoder raises the usual error
    return _encoder.encode(obj)


def encode_frame(obj: dict[str, Any], limit: int = DEFAULT_MAX_FRAME) -> bytes:
    """Serialize one frame as compact UTF-8 JSON followed by a newline.

    Text that is not valid UTF-8 (lone surrogates echoed from a peer) is sent escaped.
    """
    text = _dumps(obj)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = _ascii_encoder.encode(obj).encode("ascii")
    if len(data) > limit:
        raise FrameTooLargeError(len(data), limit)
    return data + b"\n"


def decode_frame(line: bytes | str) -> Any:
    """Parse one frame (trailing newline optional). Raises ValueError on bad JSON or UTF-8."""
    if isinstance(line, bytes):
        line = line.decode("utf-8")
    try:
        return json.loads(line)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def oversize_message(limit: int = DEFAULT_MAX_FRAME) -> str:
    """Error text sent (with id null) when an incoming frame is too large."""
    return f"Control-channel frame exceeds the limit of {limit} bytes"
