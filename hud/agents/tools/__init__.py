"""Tools agents give their models: shell and file tools on ``ssh``, proxies for ``mcp``."""

from hud.agents.tools.base import (
    AgentTool,
    ToolContext,
    ToolError,
    ToolTimeoutError,
    image_result,
    text_result,
)
from hud.agents.tools.catalogs import chat_tools, claude_tools, gemini_tools, openai_tools
from hud.agents.tools.mcp import mcp_tools, sanitize_tool_name
from hud.agents.tools.shell import ShellOps, format_command, middle_cut

__all__ = [
    "AgentTool",
    "ShellOps",
    "ToolContext",
    "ToolError",
    "ToolTimeoutError",
    "chat_tools",
    "claude_tools",
    "format_command",
    "gemini_tools",
    "image_result",
    "mcp_tools",
    "middle_cut",
    "openai_tools",
    "sanitize_tool_name",
    "text_result",
]
