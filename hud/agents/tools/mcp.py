"""MCP proxy tools: one model tool per upstream tool of each opened ``mcp`` capability."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from hud.agents.tools.base import AgentTool, ToolContext
from hud.capabilities import Capability
from hud.eval.trace import MCPToolResult

__all__ = ["MAX_TOOL_NAME", "mcp_tools", "sanitize_tool_name"]

#: Longest tool name providers accept everywhere.
MAX_TOOL_NAME = 64
_BAD = re.compile(r"[^A-Za-z0-9_-]")


def sanitize_tool_name(name: str) -> str:
    """``name`` made provider-safe (runtimes-agents.md §2.3).

    Characters outside ``[A-Za-z0-9_-]`` become ``_``; at most 64 characters; when anything
    changed, an 8-character sha256 suffix of the original name keeps distinct names distinct.
    """
    clean = _BAD.sub("_", name)
    if clean == name and 0 < len(name) <= MAX_TOOL_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    head = clean[: MAX_TOOL_NAME - 9] or "tool"
    return f"{head}_{digest}"


def _schema(tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("inputSchema") or tool.get("input_schema")
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    schema = dict(schema)
    schema.setdefault("type", "object")
    if schema.get("type") == "object":
        schema.setdefault("properties", {})
    return schema


def _proxy(client: Any, upstream: str) -> Any:
    async def call(arguments: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        kwargs = {"timeout": ctx.timeout} if ctx.timeout else {}
        result = await client.call_tool(upstream, arguments, **kwargs)
        if isinstance(result, MCPToolResult):
            return result
        if hasattr(result, "model_dump"):
            result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not isinstance(result, dict):
            return MCPToolResult(content=[{"type": "text", "text": str(result)}])
        return MCPToolResult.model_validate(result)

    return call


async def mcp_tools(opened: list[tuple[Capability, Any]]) -> list[AgentTool]:
    """Proxy tools for ``[(capability, MCPClient), ...]``; ``<cap>__<tool>`` with several.

    Two upstream tools that end up with the same name raise `ValueError`.
    """
    prefixed = len(opened) > 1
    tools: list[AgentTool] = []
    seen: dict[str, str] = {}
    for cap, client in opened:
        for tool in await client.list_tools():
            upstream = str(tool.get("name") or "")
            if not upstream:
                continue
            full = f"{cap.name}__{upstream}" if prefixed else upstream
            name = sanitize_tool_name(full)
            if name in seen:
                raise ValueError(
                    f"MCP tools {seen[name]!r} and {full!r} both map to the tool name {name!r}"
                )
            seen[name] = full
            tools.append(
                AgentTool(
                    name=name,
                    description=str(tool.get("description") or upstream),
                    parameters=_schema(tool),
                    handler=_proxy(client, upstream),
                    family="mcp",
                    upstream=upstream,
                    capability=cap.name,
                )
            )
    return tools
