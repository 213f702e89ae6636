"""`OpenAIAgent`: the OpenAI Responses API with the native ``shell`` tool on ``ssh``, the
``computer_use_preview`` tool on ``rfb`` (preferred) or ``cdp``, and MCP proxies.

The whole conversation is sent each turn (output items are replayed as input items), so no
server-side state is needed. ``computer_call`` items are answered with a
``computer_call_output`` screenshot that acknowledges the call's pending safety checks (also
recorded in the call's `ToolStep` ``extra``). Runtimes-agents.md §2.2/§2.5.
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
    parse_arguments,
    prompt_blocks,
)
from hud.agents.tools.base import AgentTool, result_images
from hud.agents.tools.catalogs import openai_tools
from hud.agents.tools.computer import SCREEN_FAMILIES
from hud.agents.tools.openai_computer import BLANK_PNG, NATIVE_TYPE, openai_computer_tool
from hud.agents.tools.screen import Screen
from hud.agents.tools.shell import ShellOps
from hud.capabilities import Capability
from hud.eval.trace import MCPToolResult, Usage
from hud.transport.sdk_http import http_client

if TYPE_CHECKING:
    from hud.eval.run import Run

__all__ = ["OpenAIAgent", "OpenAIConfig"]


class OpenAIConfig(ToolAgentConfig):
    """``model`` (default ``gpt-5.6``) and the Responses knobs ``max_output_tokens``,
    ``temperature``, ``reasoning``, ``tool_choice``, ``text``, ``truncation``,
    ``parallel_tool_calls`` (sent only when set; ``truncation`` is ``auto`` with the computer
    tool unless set)."""

    model: str | None = Field(default="gpt-5.6")
    max_output_tokens: int | None = None
    reasoning: dict[str, Any] | None = None
    tool_choice: Any = None
    text: dict[str, Any] | None = None
    truncation: str | None = None
    parallel_tool_calls: bool | None = None


KNOBS = (
    "max_output_tokens",
    "temperature",
    "reasoning",
    "tool_choice",
    "text",
    "truncation",
    "parallel_tool_calls",
)


class OpenAIAgent(ToolAgent):
    """OpenAI Responses tool loop."""

    name = "openai"
    provider = "openai"
    config_cls: ClassVar[type[ToolAgentConfig]] = OpenAIConfig
    config: OpenAIConfig
    key_env = "OPENAI_API_KEY"
    families = frozenset({"ssh", "mcp", *SCREEN_FAMILIES})

    def make_client(self, cfg: ToolAgentConfig, route: Route, run: Run) -> Any:
        import openai

        return openai.AsyncOpenAI(
            api_key=route.api_key,
            base_url=route.base_url,
            max_retries=0,
            timeout=cfg.request_timeout_seconds,
            default_headers=route.headers(run),
            http_client=http_client(openai, timeout=cfg.request_timeout_seconds),
        )

    def shell_tools(self, ops: ShellOps) -> list[AgentTool]:
        return openai_tools(ops)

    async def screen_tools(self, cap: Capability, client: Screen) -> list[AgentTool]:
        tool = openai_computer_tool(
            client,
            family=cap.family,
            encoding=self.config.screenshot_encoding,
            capability=cap.name,
        )
        return [tool]

    def conversation(
        self, client: Any, cfg: ToolAgentConfig, tools: list[AgentTool], run: Run
    ) -> Conversation:
        assert isinstance(cfg, OpenAIConfig)
        return ResponsesConversation(client, cfg, tools, run)


def _data_url(mime: str, data: str) -> str:
    return f"data:{mime};base64,{data}"


def _user_content(blocks: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for raw in blocks:
        block = prompt_blocks(raw)
        if block["type"] == "image":
            url = _data_url(block["mimeType"], block["data"])
            out.append({"type": "input_image", "image_url": url})
        else:
            out.append({"type": "input_text", "text": block["text"]})
    return out


def _dump(item: Any) -> dict[str, Any]:
    dump = getattr(item, "model_dump", None)
    # warnings=False: an action type the SDK does not know still dumps as sent.
    return dump(mode="json", exclude_none=True, warnings=False) if dump else dict(item)


def _computer(tool: AgentTool) -> bool:
    return (tool.native or {}).get("type") == NATIVE_TYPE


class ResponsesConversation(Conversation):
    def __init__(self, client: Any, cfg: OpenAIConfig, tools: list[AgentTool], run: Run) -> None:
        self.client = client
        self.cfg = cfg
        self.tools = tools
        self.items: list[dict[str, Any]] = []
        for turn in run.prompt_messages:
            if turn["role"] == "assistant":
                text = "\n".join(
                    b["text"] for b in map(prompt_blocks, turn["content"]) if b["type"] == "text"
                )
                self.items.append({"role": "assistant", "content": text})
            else:
                self.items.append({"role": "user", "content": _user_content(turn["content"])})
        self.parallel = cfg.parallel_tool_calls is True
        #: The computer tool's name (its calls arrive as ``computer_call`` items), or None.
        self.computer = next((t.name for t in tools if _computer(t)), None)
        #: Pending safety checks by computer call id, acknowledged in the call's output.
        self.safety_checks: dict[str, list[dict[str, Any]]] = {}

    def request(self) -> dict[str, Any]:
        cfg = self.cfg
        specs: list[dict[str, Any]] = []
        for tool in self.tools:
            if tool.native is not None:
                specs.append(dict(tool.native))
            else:
                specs.append({"type": "function", **tool.function_spec()})
        specs.extend(cfg.hosted_tools)
        kwargs: dict[str, Any] = {"model": cfg.model, "input": list(self.items)}
        if specs:
            kwargs["tools"] = specs
        if cfg.system_prompt:
            kwargs["instructions"] = cfg.system_prompt
        for knob in KNOBS:
            value = getattr(cfg, knob)
            if value is not None:
                kwargs[knob] = value
        if self.computer is not None and cfg.truncation is None:
            kwargs["truncation"] = "auto"  # required with the computer tool
        return kwargs

    async def complete(self) -> ModelReply:
        response = await self.client.responses.create(**self.request())
        texts: list[str] = []
        thoughts: list[str] = []
        refusal: str | None = None
        calls: list[ToolCallRequest] = []
        for item in getattr(response, "output", None) or []:
            kind = getattr(item, "type", None)
            if kind == "message":
                for part in getattr(item, "content", None) or []:
                    ptype = getattr(part, "type", None)
                    if ptype == "output_text":
                        texts.append(part.text)
                    elif ptype == "refusal":
                        refusal = part.refusal
            elif kind == "reasoning":
                for part in getattr(item, "summary", None) or []:
                    if getattr(part, "text", None):
                        thoughts.append(part.text)
            elif kind == "function_call":
                args, problem = parse_arguments(item.arguments)
                calls.append(
                    ToolCallRequest(
                        id=item.call_id,
                        name=item.name,
                        arguments=args,
                        raw_arguments=item.arguments if args is None else None,
                        problem=problem,
                        native="function",
                    )
                )
            elif kind == "shell_call":
                action = item.action
                args = {"commands": list(getattr(action, "commands", None) or [])}
                for key in ("timeout_ms", "max_output_length"):
                    value = getattr(action, key, None)
                    if value is not None:
                        args[key] = value
                calls.append(
                    ToolCallRequest(id=item.call_id, name="shell", arguments=args, native="shell")
                )
            dumped = _dump(item)
            if kind == "computer_call":
                calls.append(self._computer_call(dumped))
            self.items.append(dumped)
        details = getattr(response, "incomplete_details", None)
        reason = getattr(details, "reason", None) if details is not None else None
        status = getattr(response, "status", None)
        usage = getattr(response, "usage", None)
        cached = getattr(getattr(usage, "input_tokens_details", None), "cached_tokens", None)
        return ModelReply(
            content="".join(texts) if texts else None,
            reasoning="\n".join(thoughts) if thoughts else None,
            calls=calls,
            finish_reason=reason or status,
            truncated=reason == "max_output_tokens",
            refusal=refusal,
            usage=Usage(
                prompt_tokens=getattr(usage, "input_tokens", None),
                completion_tokens=getattr(usage, "output_tokens", None),
                cached_tokens=cached,
                llm_call_count=1,
            )
            if usage is not None
            else None,
        )

    def _computer_call(self, item: dict[str, Any]) -> ToolCallRequest:
        """A ``computer_call`` as a call of the computer tool: its action(s) are the arguments."""
        call_id = str(item.get("call_id") or item.get("id") or "")
        checks = [c for c in item.get("pending_safety_checks") or [] if isinstance(c, dict)]
        self.safety_checks[call_id] = checks
        action = item.get("action")
        if isinstance(action, dict):
            args: dict[str, Any] | None = action
        elif isinstance(item.get("actions"), list):
            args = {"actions": item["actions"]}
        else:
            args = None
        return ToolCallRequest(
            id=call_id,
            name=self.computer or "computer",
            arguments=args,
            raw_arguments=None if args is not None else str(action),
            problem=None if args is not None else "the computer call has no action",
            native="computer",
            extra={"acknowledged_safety_checks": checks} if checks else {},
        )

    def add_results(
        self, reply: ModelReply, results: Sequence[tuple[ToolCallRequest, MCPToolResult]]
    ) -> None:
        notes: list[str] = []
        for call, result in results:
            if call.native == "computer":
                images = result_images(result)
                mime, data = images[0] if images else ("image/png", BLANK_PNG)
                item: dict[str, Any] = {
                    "type": "computer_call_output",
                    "call_id": call.id,
                    "output": {"type": "computer_screenshot", "image_url": _data_url(mime, data)},
                }
                checks = self.safety_checks.pop(call.id, [])
                if checks:
                    item["acknowledged_safety_checks"] = checks
                self.items.append(item)
                if result.isError or not images:
                    notes.append(result.text or "the computer action returned no screenshot")
                continue
            if call.native == "shell":
                structured = result.structuredContent or {}
                output = structured.get("output")
                if not isinstance(output, list):
                    output = [
                        {
                            "stdout": "",
                            "stderr": result.text,
                            "outcome": {"type": "exit", "exit_code": 1},
                        }
                    ]
                item = {
                    "type": "shell_call_output",
                    "call_id": call.id,
                    "output": output,
                }
                if structured.get("max_output_length"):
                    item["max_output_length"] = structured["max_output_length"]
                self.items.append(item)
                continue
            images = result_images(result)
            text = result.text or ("" if images else "Tool executed successfully")
            if images:
                parts: list[dict[str, Any]] = []
                if text:
                    parts.append({"type": "input_text", "text": text})
                parts.extend(
                    {"type": "input_image", "image_url": _data_url(mime, data)}
                    for mime, data in images
                )
                output_value: Any = parts
            else:
                output_value = text
            self.items.append(
                {"type": "function_call_output", "call_id": call.id, "output": output_value}
            )
        if notes:  # a computer_call_output holds only a screenshot: errors follow as text
            self.add_user("\n".join(notes))

    def add_user(self, text: str) -> None:
        self.items.append({"role": "user", "content": [{"type": "input_text", "text": text}]})
