"""Scripted fake LLM provider servers speaking the real HTTP APIs.

One `FakeProvider` serves all four wire formats, chosen by path:

- ``POST …/messages``                       Anthropic Messages (JSON, or SSE when ``stream``)
- ``POST …/responses``                      OpenAI Responses
- ``POST …/chat/completions``               OpenAI Chat Completions (JSON, or SSE)
- ``POST …/models/<m>:generateContent``     Gemini (``:streamGenerateContent`` as SSE)

A test scripts provider-neutral turns (`Reply` with `Call`s, or `Fail` for an HTTP error) or
gives a ``handler(request) -> Reply | Fail``; the server translates each into the provider's
wire format and records every request (`Recorded`) so tests can check what went back to the
model. It runs in a thread, so it serves in-process async tests and CLI subprocesses alike.
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Call:
    """A tool call: ``args`` as JSON, or ``raw`` argument text (possibly malformed)."""

    name: str
    args: dict[str, Any] | None = None
    raw: str | None = None
    id: str | None = None

    def arguments_text(self) -> str:
        return self.raw if self.raw is not None else json.dumps(self.args or {})


@dataclass
class Reply:
    """One model turn. ``finish``: ``stop`` (default), ``length`` or ``malformed`` (Gemini)."""

    text: str | None = None
    calls: list[Call] = field(default_factory=list)
    reasoning: str | None = None
    finish: str = "stop"
    usage: tuple[int, int] = (21, 9)


@dataclass
class Fail:
    """An HTTP error answer."""

    status: int
    message: str = "error"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def text(self) -> str:
        return json.dumps(self.body)


Item = Reply | Fail | Callable[["Recorded"], "Reply | Fail"]


class FakeProvider:
    """A scripted provider on ``127.0.0.1:<port>``; use as a context manager."""

    def __init__(
        self,
        script: list[Item] | None = None,
        *,
        handler: Callable[[Recorded], Reply | Fail] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``tls``: (certificate, key) files to serve https with."""
        self.script: list[Item] = list(script or [])
        self.tls = tls
        self.handler = handler
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeProvider:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._send_json(self, 404, {"error": {"message": "not found"}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- helpers for tests -----------------------------------------------------------------
    def bodies(self, fragment: str = "") -> list[Any]:
        return [r.body for r in self.requests if fragment in r.path]

    # -- serving ---------------------------------------------------------------------------
    def _next(self, request: Recorded) -> Reply | Fail:
        with self._lock:
            self.requests.append(request)
            if self.script:
                item = self.script.pop(0)
            elif self.handler is not None:
                item = self.handler
            else:
                return Fail(500, "fake provider: script exhausted")
        return item(request) if callable(item) else item

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in h.headers.items()}
        request = Recorded("POST", h.path, headers, body)
        item = self._next(request)
        path = h.path.split("?", 1)[0]
        if path.endswith("/messages"):
            kind = "anthropic"
        elif path.endswith("/responses"):
            kind = "responses"
        elif path.endswith("/chat/completions"):
            kind = "chat"
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            kind = "gemini"
        else:
            self._send_json(h, 404, {"error": {"message": f"no route {path}"}})
            return
        if isinstance(item, Fail):
            self._send_json(h, item.status, _error_body(kind, item), item.headers)
            return
        stream = (isinstance(body, dict) and body.get("stream") is True) or (
            ":streamGenerateContent" in path
        )
        model = _model(kind, body, path)
        if kind == "anthropic":
            payload = self._anthropic(item, model)
            if stream:
                self._send_sse(h, _anthropic_events(payload), named=True)
            else:
                for block in payload["content"]:
                    block.pop("_raw", None)
                self._send_json(h, 200, payload)
        elif kind == "responses":
            self._send_json(h, 200, self._responses(item, model))
        elif kind == "chat":
            payload = self._chat(item, model)
            if stream:
                self._send_sse(h, _chat_chunks(payload), named=False, done=True)
            else:
                self._send_json(h, 200, payload)
        else:
            payload = self._gemini(item)
            if stream:
                self._send_sse(h, [payload], named=False)
            else:
                self._send_json(h, 200, payload)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    # -- wire formats ----------------------------------------------------------------------
    def _anthropic(self, reply: Reply, model: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.reasoning:
            content.append({"type": "thinking", "thinking": reply.reasoning, "signature": "sig"})
        if reply.text is not None:
            content.append({"type": "text", "text": reply.text})
        for call in reply.calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id or self._id("toolu"),
                    "name": call.name,
                    "input": call.args or {},
                    "_raw": call.arguments_text(),
                }
            )
        if reply.finish == "length":
            stop = "max_tokens"
        else:
            stop = "tool_use" if reply.calls else "end_turn"
        return {
            "id": self._id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": reply.usage[0],
                "output_tokens": reply.usage[1],
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
        }

    def _responses(self, reply: Reply, model: str) -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        if reply.reasoning:
            output.append(
                {
                    "type": "reasoning",
                    "id": self._id("rs"),
                    "summary": [{"type": "summary_text", "text": reply.reasoning}],
                }
            )
        for call in reply.calls:
            call_id = call.id or self._id("call")
            if call.name == "computer_call":  # args: the action, plus pending_safety_checks
                action = dict(call.args or {})
                output.append(
                    {
                        "type": "computer_call",
                        "id": self._id("cu"),
                        "call_id": call_id,
                        "status": "completed",
                        "pending_safety_checks": action.pop("pending_safety_checks", []),
                        "action": action,
                    }
                )
            elif call.name == "shell":
                args = call.args or {}
                output.append(
                    {
                        "type": "shell_call",
                        "id": self._id("sh"),
                        "call_id": call_id,
                        "status": "completed",
                        "action": {
                            "commands": args.get("commands", []),
                            "timeout_ms": args.get("timeout_ms"),
                            "max_output_length": args.get("max_output_length"),
                        },
                    }
                )
            else:
                output.append(
                    {
                        "type": "function_call",
                        "id": self._id("fc"),
                        "call_id": call_id,
                        "name": call.name,
                        "arguments": call.arguments_text(),
                        "status": "completed",
                    }
                )
        if reply.text is not None:
            output.append(
                {
                    "type": "message",
                    "id": self._id("msg"),
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
                }
            )
        incomplete = reply.finish == "length"
        return {
            "id": self._id("resp"),
            "object": "response",
            "created_at": 0,
            "model": model,
            "status": "incomplete" if incomplete else "completed",
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": reply.usage[0],
                "output_tokens": reply.usage[1],
                "total_tokens": sum(reply.usage),
                "input_tokens_details": {"cached_tokens": 3},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }

    def _chat(self, reply: Reply, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        if reply.calls:
            message["tool_calls"] = [
                {
                    "id": call.id or self._id("call"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_text()},
                }
                for call in reply.calls
            ]
        finish = "tool_calls" if reply.calls else "stop"
        if reply.finish == "length":
            finish = "length"
        return {
            "id": self._id("chatcmpl"),
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": reply.usage[0],
                "completion_tokens": reply.usage[1],
                "total_tokens": sum(reply.usage),
                "prompt_tokens_details": {"cached_tokens": 2},
            },
        }

    def _gemini(self, reply: Reply) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if reply.reasoning:
            parts.append({"text": reply.reasoning, "thought": True})
        if reply.text is not None:
            parts.append({"text": reply.text})
        for call in reply.calls:
            fc: dict[str, Any] = {"name": call.name, "args": call.args or {}}
            if call.id:
                fc["id"] = call.id
            parts.append({"functionCall": fc, "thoughtSignature": "c2ln"})
        finish = {"length": "MAX_TOKENS", "malformed": "MALFORMED_FUNCTION_CALL"}.get(
            reply.finish, "STOP"
        )
        candidate: dict[str, Any] = {"index": 0, "finishReason": finish}
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        if reply.finish == "malformed":
            candidate["finishMessage"] = "Malformed function call: run_shell_command({command:"
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": reply.usage[0],
                "candidatesTokenCount": reply.usage[1],
                "totalTokenCount": sum(reply.usage),
                "cachedContentTokenCount": 1,
            },
            "modelVersion": "gemini-fake",
        }

    # -- transport -------------------------------------------------------------------------
    @staticmethod
    def _send_json(
        h: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    @staticmethod
    def _send_sse(
        h: BaseHTTPRequestHandler,
        events: list[Any],
        *,
        named: bool,
        done: bool = False,
    ) -> None:
        chunks = []
        for event in events:
            if named:
                chunks.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
            else:
                chunks.append(f"data: {json.dumps(event)}\n\n")
        if done:
            chunks.append("data: [DONE]\n\n")
        data = "".join(chunks).encode()
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()


def _model(kind: str, body: Any, path: str) -> str:
    if kind == "gemini":
        return path.split("/models/", 1)[-1].split(":", 1)[0]
    return str(body.get("model")) if isinstance(body, dict) else "fake"


def _error_body(kind: str, fail: Fail) -> dict[str, Any]:
    if kind == "anthropic":
        names = {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}
        return {
            "type": "error",
            "error": {"type": names.get(fail.status, "api_error"), "message": fail.message},
        }
    if kind == "gemini":
        statuses = {401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED", 400: "INVALID_ARGUMENT"}
        return {
            "error": {
                "code": fail.status,
                "message": fail.message,
                "status": statuses.get(fail.status, "INTERNAL"),
            }
        }
    return {"error": {"message": fail.message, "type": "fake_error", "code": str(fail.status)}}


def _anthropic_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE events of a streamed Messages response."""
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            text = block["text"]
            half = len(text) // 2
            for piece in (text[:half], text[half:]):
                if piece:
                    events.append(
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        }
                    )
        elif kind == "thinking":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                }
            )
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "thinking_delta", "thinking": block["thinking"]},
                }
            )
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "signature_delta", "signature": block["signature"]},
                }
            )
        elif kind == "tool_use":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": block["id"],
                        "name": block["name"],
                        "input": {},
                    },
                }
            )
            raw = block["_raw"]
            half = len(raw) // 2
            for piece in (raw[:half], raw[half:]):
                if piece:
                    events.append(
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        }
                    )
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events


def _chat_chunks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """A Chat Completions response as stream chunks."""
    choice = payload["choices"][0]
    message = choice["message"]
    base = {k: payload[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **tc} for i, tc in enumerate(message["tool_calls"])]
    return [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
            "usage": payload["usage"],
        },
    ]
