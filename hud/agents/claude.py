"""`ClaudeAgent`: the Anthropic Messages API (streamed), with Claude's native tools.

Tools: ``bash`` (``bash_20250124``) and ``str_replace_based_edit_tool``
(``text_editor_20250728``) on an ``ssh`` capability, ``computer`` (``computer_20250124``, beta)
on an ``rfb`` capability (preferred) or a ``cdp`` one, one custom tool per MCP tool.
Runtimes-agents.md §2.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from hud.agents.tool_agent import (
    Conversation,
    ModelReply,
    Route,
    ToolAgent,
    ToolAgentConfig,
    ToolCallRequest,
    prompt_blocks,
)
from hud.agents.tools.base import AgentTool
from hud.agents.tools.catalogs import claude_tools
from hud.agents.tools.computer import SCREEN_FAMILIES, computer_tool
from hud.agents.tools.screen import Screen
from hud.agents.tools.shell import ShellOps
from hud.capabilities import Capability
from hud.eval.trace import MCPToolResult, Usage
from hud.transport.sdk_http import http_client

if TYPE_CHECKING:
    from hud.eval.run import Run

__all__ = ["ClaudeAgent", "ClaudeConfig"]

COMPUTER_BETA = "computer-use-2025-01-24"
LENGTH_REASONS = frozenset({"max_tokens", "model_context_window_exceeded"})


class ClaudeConfig(ToolAgentConfig):
    """``model`` (default ``claude-sonnet-4-6``), ``max_tokens=16384``,
    ``tool_timeout_seconds=120``, WebP screenshots; ``thinking_budget`` enables extended
    thinking; ``stream`` (default True) streams the response over SSE."""

    model: str | None = Field(default="claude-sonnet-4-6")
    max_tokens: int = 16384
    tool_timeout_seconds: float | None = 120.0
    screenshot_encoding: str = "WEBP"
    thinking_budget: int | None = None
    stream: bool = True


class ClaudeAgent(ToolAgent):
    """Anthropic Messages tool loop."""

    name = "claude"
    provider = "anthropic"
    config_cls: ClassVar[type[ToolAgentConfig]] = ClaudeConfig
    config: ClaudeConfig
    key_env = "ANTHROPIC_API_KEY"
    families = frozenset({"ssh", "mcp", *SCREEN_FAMILIES})

    def make_client(self, cfg: ToolAgentConfig, route: Route, run: Run) -> Any:
        import anthropic

        return anthropic.AsyncAnthropic(
            api_key=route.api_key,
            base_url=route.base_url,
            max_retries=0,
            timeout=cfg.request_timeout_seconds,
            default_headers=route.headers(run),
            http_client=http_client(anthropic, timeout=cfg.request_timeout_seconds),
        )

    def shell_tools(self, ops: ShellOps) -> list[AgentTool]:
        return claude_tools(ops)

    async def screen_tools(self, cap: Capability, client: Screen) -> list[AgentTool]:
        tool = await computer_tool(
            client,
            encoding=self.config.screenshot_encoding,
            native_type="computer_20250124",
            family=cap.family,
            capability=cap.name,
        )
        return [tool]

    def conversation(
        self, client: Any, cfg: ToolAgentConfig, tools: list[AgentTool], run: Run
    ) -> Conversation:
        assert isinstance(cfg, ClaudeConfig)
        return ClaudeConversation(client, cfg, tools, run)


def _content(blocks: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for raw in blocks:
        block = prompt_blocks(raw)
        if block["type"] == "image":
            out.append(
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": block["mimeType"],
                        "data": block["data"],
                    },
                }
            )
        else:
            out.append({"type": "text", "text": block["text"]})
    return out


def _result_blocks(result: MCPToolResult) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for item in result.content:
        kind = item.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": str(item.get("text", ""))})
        elif kind == "image" and item.get("data"):
            blocks.append(
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": str(item.get("mimeType") or "image/png"),
                        "data": str(item["data"]),
                    },
                }
            )
    if not blocks:
        blocks.append({"type": "text", "text": "Tool executed successfully"})
    return blocks


class ClaudeConversation(Conversation):
    def __init__(self, client: Any, cfg: ClaudeConfig, tools: list[AgentTool], run: Run) -> None:
        self.client = client
        self.cfg = cfg
        self.tools = tools
        self.messages: list[dict[str, Any]] = [
            {"role": turn["role"], "content": _content(turn["content"])}
            for turn in run.prompt_messages
        ]
        computer = any(str((t.native or {}).get("type", "")).startswith("computer_") for t in tools)
        self.betas = [COMPUTER_BETA] if computer else []

    def request(self) -> dict[str, Any]:
        cfg = self.cfg
        specs: list[dict[str, Any]] = []
        for tool in self.tools:
            if tool.native is not None:
                specs.append(dict(tool.native))
            else:
                specs.append(
                    {
                        "name": tool.name,
                        "description": tool.description,
                        "input_schema": tool.parameters,
                    }
                )
        specs.extend(cfg.hosted_tools)
        kwargs: dict[str, Any] = {
            "model": cfg.model,
            "max_tokens": cfg.max_tokens,
            "messages": list(self.messages),
        }
        if specs:
            kwargs["tools"] = specs
        if cfg.system_prompt:
            kwargs["system"] = cfg.system_prompt
        if cfg.temperature is not None:
            kwargs["temperature"] = cfg.temperature
        if cfg.thinking_budget:
            kwargs["thinking"] = {"type": "enabled", "budget_tokens": cfg.thinking_budget}
        return kwargs

    async def complete(self) -> ModelReply:
        kwargs = self.request()
        api = self.client.messages
        if self.betas:
            api = self.client.beta.messages
            kwargs["betas"] = self.betas
        if self.cfg.stream:
            async with api.stream(**kwargs) as stream:
                message = await stream.get_final_message()
        else:
            message = await api.create(**kwargs)
        return self._reply(message)

    def _reply(self, message: Any) -> ModelReply:
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCallRequest] = []
        wire: list[dict[str, Any]] = []
        citations: list[Any] = []
        stop = getattr(message, "stop_reason", None)
        blocks = list(getattr(message, "content", None) or [])
        for index, block in enumerate(blocks):
            kind = getattr(block, "type", None)
            if kind == "text":
                texts.append(block.text)
                wire.append({"type": "text", "text": block.text})
                for cite in getattr(block, "citations", None) or []:
                    citations.append(_plain(cite))
            elif kind == "thinking":
                thoughts.append(block.thinking)
                wire.append(
                    {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
                )
            elif kind == "redacted_thinking":
                wire.append({"type": "redacted_thinking", "data": block.data})
            elif kind == "tool_use":
                raw = getattr(block, "input", None)
                args = raw if isinstance(raw, dict) else None
                problem = None if args is not None else "tool input is not an object"
                # A tool_use cut off by max_tokens carries partial input.
                if stop in LENGTH_REASONS and index == len(blocks) - 1:
                    args, problem = None, "the response hit max_tokens inside this call"
                calls.append(
                    ToolCallRequest(
                        id=block.id,
                        name=block.name,
                        arguments=args,
                        raw_arguments=None if args is not None else _json(raw),
                        problem=problem,
                    )
                )
                wire.append(
                    {
                        "type": "tool_use",
                        "id": block.id,
                        "name": block.name,
                        "input": raw if isinstance(raw, dict) else {},
                    }
                )
        if wire:
            self.messages.append({"role": "assistant", "content": wire})
        usage = getattr(message, "usage", None)
        return ModelReply(
            content="".join(texts) if texts else None,
            reasoning="\n".join(thoughts) if thoughts else None,
            calls=calls,
            finish_reason=stop,
            truncated=stop in LENGTH_REASONS,
            refusal="refused" if stop == "refusal" else None,
            citations=citations or None,
            usage=Usage(
                prompt_tokens=_int(getattr(usage, "input_tokens", None)),
                completion_tokens=_int(getattr(usage, "output_tokens", None)),
                cached_tokens=_int(getattr(usage, "cache_read_input_tokens", None)),
                llm_call_count=1,
            )
            if usage is not None
            else None,
        )

    def add_results(
        self, reply: ModelReply, results: Sequence[tuple[ToolCallRequest, MCPToolResult]]
    ) -> None:
        blocks = [
            {
                "type": "tool_result",
                "tool_use_id": call.id,
                "content": _result_blocks(result),
                "is_error": bool(result.isError),
            }
            for call, result in results
        ]
        if blocks:
            self.messages.append({"role": "user", "content": blocks})

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": [{"type": "text", "text": text}]})


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _json(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json", exclude_none=True) if dump else value
