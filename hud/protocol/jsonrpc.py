"""JSON-RPC 2.0 envelopes and the error codes used on the control channel."""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
UNAUTHORIZED = -32001


def request_frame(id: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A request (or, with ``id=None`` omitted by the caller, a notification)."""
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params or {}}


def result_frame(id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "result": result}


def error_frame(id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}
