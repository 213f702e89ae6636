"""`AgentTool`: one tool the model can call, bound to an opened capability client."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hud.protocol.errors import HudError
from hud.types.trace import MCPToolResult

__all__ = [
    "AgentTool",
    "ToolContext",
    "ToolError",
    "ToolTimeoutError",
    "image_result",
    "text_result",
]


class ToolError(HudError):
    """A failure the model caused or can fix (bad path, missing text): reported back to it."""


class ToolTimeoutError(ToolError):
    """The tool ran past its time limit."""


@dataclass
class ToolContext:
    """Per-call settings handed to a tool handler."""

    #: Seconds the call may take (``tool_timeout_seconds``), or None for no limit.
    timeout: float | None = None


Handler = Callable[[dict[str, Any], ToolContext], Awaitable[MCPToolResult]]


@dataclass
class AgentTool:
    """A tool as the model sees it (``name``, ``description``, JSON-schema ``parameters``).

    ``family`` is the capability family it drives (``ssh``, ``mcp``, ``rfb``, ``cdp``);
    ``native`` is a provider-native tool spec sent instead of a function declaration (Claude's
    ``bash_20250124``, OpenAI's ``shell``); ``upstream`` is the MCP tool name behind a proxy.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    handler: Handler
    family: str = "function"
    native: dict[str, Any] | None = None
    upstream: str | None = None
    capability: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def __call__(self, arguments: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        return await self.handler(arguments, ctx)

    def function_spec(self) -> dict[str, Any]:
        """``{name, description, parameters}`` (the common function-tool shape)."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def text_result(
    text: str, *, is_error: bool = False, structured: dict[str, Any] | None = None
) -> MCPToolResult:
    return MCPToolResult(
        content=[{"type": "text", "text": text}], isError=is_error, structuredContent=structured
    )


def image_result(data: bytes, mime: str = "image/png", text: str | None = None) -> MCPToolResult:
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "text", "text": text})
    content.append(
        {"type": "image", "data": base64.b64encode(data).decode("ascii"), "mimeType": mime}
    )
    return MCPToolResult(content=content)


def result_text(result: MCPToolResult, empty: str = "") -> str:
    """The text blocks of ``result`` joined by newlines (``empty`` when there are none)."""
    text = result.text
    return text if text else empty


def result_images(result: MCPToolResult) -> list[tuple[str, str]]:
    """``(mime, base64 data)`` of each image block."""
    out = []
    for block in result.content:
        if block.get("type") == "image" and block.get("data"):
            out.append((str(block.get("mimeType") or "image/png"), str(block["data"])))
    return out
