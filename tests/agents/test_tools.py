"""Tool building blocks: MCP proxy names (§2.3), the SSH result format, output cuts."""

from __future__ import annotations

import hashlib

import pytest

from hud.agents.tools import format_command, mcp_tools, middle_cut, sanitize_tool_name
from hud.agents.tools.base import ToolContext
from hud.agents.tools.shell import CommandOutput
from hud.capabilities import Capability


def test_sanitize_tool_name() -> None:
    assert sanitize_tool_name("read_file-2") == "read_file-2"  # untouched
    digest = hashlib.sha256(b"math.mul").hexdigest()[:8]
    assert sanitize_tool_name("math.mul") == f"math_mul_{digest}"
    long = "x" * 80
    cut = sanitize_tool_name(long)
    assert len(cut) == 64 and cut.endswith(hashlib.sha256(long.encode()).hexdigest()[:8])
    # distinct originals stay distinct even when they sanitize alike
    assert sanitize_tool_name("a.b") != sanitize_tool_name("a/b")


def test_command_format_and_cut() -> None:
    out = CommandOutput("ls nope", 2, "", "ls: nope: No such file\n")
    assert format_command(out) == "$ ls nope\n\nstderr:\nls: nope: No such file\n(exit 2)"
    assert format_command(CommandOutput("echo a", 0, "a\n", "")) == "$ echo a\na\n(exit 0)"
    text = "a" * 50 + "b" * 50
    assert middle_cut(text, 20) == "a" * 10 + "\n[truncated]\n" + "b" * 10
    assert middle_cut("short", 20) == "short"


async def test_mcp_proxies_prefix_names_with_several_servers(mcp_url: str) -> None:
    from hud.clients.mcp_client import MCPClient

    one = await MCPClient.connect(Capability.mcp(mcp_url, name="tools"))
    two = await MCPClient.connect(Capability.mcp(mcp_url, name="more"))
    try:
        single = await mcp_tools([(one.capability, one)])
        assert sorted(t.name for t in single)[0] == "add"
        both = await mcp_tools([(one.capability, one), (two.capability, two)])
        names = sorted(t.name for t in both)
        assert names[:2] == ["more__add", "more__math_mul_" + names[1][-8:]]
        assert "tools__add" in names
        add = next(t for t in both if t.name == "more__add")
        result = await add({"a": 5, "b": 6}, ToolContext(timeout=10))
        assert result.text == "11" and not result.isError
        with pytest.raises(ValueError, match="both map to"):
            await mcp_tools([(one.capability, one), (one.capability, one)])
    finally:
        await one.close()
        await two.close()
