"""`OpenAIChatAgent`: Chat Completions with function tools; any compatible server via ``base_url``
(vLLM, Ollama, llama.cpp, OpenRouter, ...). Runtimes-agents.md §2.4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field

from hud.agents.tool_agent import (
    Conversation,
    ModelReply,
    Route,
    ToolAgent,
    ToolAgentConfig,
    ToolCallRequest,
    parse_arguments,
    prompt_blocks,
)
from hud.agents.tools.base import AgentTool, result_images
from hud.agents.tools.catalogs import chat_tools
from hud.agents.tools.shell import ShellOps
from hud.transport.sdk_http import http_client
from hud.types.trace import MCPToolResult, Usage

if TYPE_CHECKING:
    from hud.eval.run import Run

__all__ = ["OpenAIChatAgent", "OpenAIChatConfig"]

#: Placeholder key for servers that need none (the OpenAI SDK insists on one).
NO_KEY = "EMPTY"
LENGTH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens"})


class OpenAIChatConfig(ToolAgentConfig):
    """``model`` (default ``gpt-5.4-mini``), ``checkpoint`` (sent as the model when set),
    ``base_url``, ``api_key`` / ``api_key_env``, ``max_tokens``, ``temperature`` and
    ``completion_kwargs`` (merged into the request body)."""

    model: str | None = Field(default="gpt-5.4-mini")
    checkpoint: str | None = None
    max_tokens: int | None = None
    completion_kwargs: dict[str, Any] = Field(default_factory=dict)


class OpenAIChatAgent(ToolAgent):
    """Chat Completions tool loop (``bash, read, glob, grep, edit, write`` + MCP proxies)."""

    name = "openai_compatible"
    provider = "openai-compatible"
    config_cls: ClassVar[type[ToolAgentConfig]] = OpenAIChatConfig
    config: OpenAIChatConfig
    key_env = "OPENAI_API_KEY"

    def route(self, cfg: ToolAgentConfig) -> Route:
        # A custom server never gets OPENAI_API_KEY unless asked (api_key / api_key_env).
        host = urlsplit(cfg.base_url).hostname if cfg.base_url else None
        custom = cfg.base_url and host is not None and not host.endswith("openai.com")
        if custom and cfg.api_key is None and not cfg.api_key_env and cfg.model_client is None:
            if cfg.gateway:
                return super().route(cfg)
            return Route("direct", None, cfg.base_url, None)
        return super().route(cfg)

    def make_client(self, cfg: ToolAgentConfig, route: Route, run: Run) -> Any:
        import openai

        return openai.AsyncOpenAI(
            api_key=route.api_key or NO_KEY,
            base_url=route.base_url,
            max_retries=0,
            timeout=cfg.request_timeout_seconds,
            default_headers=route.headers(run),
            http_client=http_client(openai, timeout=cfg.request_timeout_seconds),
        )

    def shell_tools(self, ops: ShellOps) -> list[AgentTool]:
        return chat_tools(ops)

    def conversation(
        self, client: Any, cfg: ToolAgentConfig, tools: list[AgentTool], run: Run
    ) -> Conversation:
        assert isinstance(cfg, OpenAIChatConfig)
        return ChatConversation(client, cfg, tools, run)


def _data_url(mime: str, data: str) -> str:
    return f"data:{mime};base64,{data}"


def chat_user_content(blocks: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for raw in blocks:
        block = prompt_blocks(raw)
        if block["type"] == "image":
            url = _data_url(block["mimeType"], block["data"])
            out.append({"type": "image_url", "image_url": {"url": url}})
        else:
            out.append({"type": "text", "text": block["text"]})
    return out


class ChatConversation(Conversation):
    def __init__(
        self, client: Any, cfg: OpenAIChatConfig, tools: list[AgentTool], run: Run
    ) -> None:
        self.client = client
        self.cfg = cfg
        self.tools = tools
        self.messages: list[dict[str, Any]] = []
        if cfg.system_prompt:
            self.messages.append({"role": "system", "content": cfg.system_prompt})
        for turn in run.prompt_messages:
            if turn["role"] == "assistant":
                text = "\n".join(
                    b["text"] for b in map(prompt_blocks, turn["content"]) if b["type"] == "text"
                )
                self.messages.append({"role": "assistant", "content": text})
            else:
                self.messages.append(
                    {"role": "user", "content": chat_user_content(turn["content"])}
                )
        self.parallel = cfg.completion_kwargs.get("parallel_tool_calls") is True

    def request(self) -> dict[str, Any]:
        cfg = self.cfg
        body: dict[str, Any] = {}
        specs = [{"type": "function", "function": t.function_spec()} for t in self.tools]
        specs.extend(cfg.hosted_tools)
        if specs:
            body["tools"] = specs
        if cfg.temperature is not None:
            body["temperature"] = cfg.temperature
        if cfg.max_tokens is not None:
            body["max_tokens"] = cfg.max_tokens
        body.update(cfg.completion_kwargs)
        return {
            "model": cfg.checkpoint or cfg.model,
            "messages": list(self.messages),
            "stream": False,
            "extra_body": body,
        }

    async def complete(self) -> ModelReply:
        response = await self.client.chat.completions.create(**self.request())
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise ValueError("the server returned no choices")
        choice = choices[0]
        message = choice.message
        extra = getattr(message, "model_extra", None) or {}
        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
        calls: list[ToolCallRequest] = []
        wire_calls: list[dict[str, Any]] = []
        for i, tc in enumerate(getattr(message, "tool_calls", None) or []):
            fn = getattr(tc, "function", None)
            if fn is None:
                continue
            raw = fn.arguments
            args, problem = parse_arguments(raw)
            call_id = tc.id or f"call_{i}"
            calls.append(
                ToolCallRequest(
                    id=call_id,
                    name=fn.name or "",
                    arguments=args,
                    raw_arguments=raw if isinstance(raw, str) else None,
                    problem=problem,
                )
            )
            wire_calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": fn.name, "arguments": raw or ""},
                }
            )
        assistant: dict[str, Any] = {"role": "assistant"}
        if message.content is not None or not wire_calls:
            assistant["content"] = message.content or ""
        if wire_calls:
            assistant["tool_calls"] = wire_calls
        self.messages.append(assistant)
        finish = choice.finish_reason
        return ModelReply(
            content=message.content,
            reasoning=reasoning if isinstance(reasoning, str) else None,
            calls=calls,
            finish_reason=finish,
            truncated=finish in LENGTH_REASONS,
            usage=_usage(getattr(response, "usage", None)),
            refusal=getattr(message, "refusal", None),
        )

    def add_results(
        self, reply: ModelReply, results: Sequence[tuple[ToolCallRequest, MCPToolResult]]
    ) -> None:
        last_image: tuple[str, str] | None = None
        for call, result in results:
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": result.text or "Tool executed successfully",
                }
            )
            images = result_images(result)
            if images:
                last_image = images[-1]
        if last_image is not None:
            self.messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Tool returned the following:"},
                        {"type": "image_url", "image_url": {"url": _data_url(*last_image)}},
                    ],
                }
            )

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": [{"type": "text", "text": text}]})


def _usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
        cached_tokens=getattr(details, "cached_tokens", None) if details else None,
        llm_call_count=1,
    )
