"""`GeminiAgent`: Google's ``generateContent`` through ``google-genai``, with function tools
(``run_shell_command, replace, write_file, read_file, grep_search, glob, list_directory``) on
``ssh``, ``computer_use`` on ``rfb`` (preferred) or ``cdp``, and MCP proxies. Model turns are kept
as returned, so thought signatures go back unchanged.
"""

from __future__ import annotations

import base64
import logging
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
from hud.agents.tools.base import AgentTool, result_images
from hud.agents.tools.catalogs import gemini_tools
from hud.agents.tools.computer import SCREEN_FAMILIES
from hud.agents.tools.gemini_computer import (
    COMPUTER_USE,
    GeminiScreen,
    computer_use_spec,
    gemini_computer_tools,
)
from hud.agents.tools.screen import Screen
from hud.agents.tools.shell import ShellOps
from hud.capabilities import Capability
from hud.eval.trace import MCPToolResult, Usage

if TYPE_CHECKING:
    from hud.eval.run import Run

__all__ = ["GeminiAgent", "GeminiConfig"]

log = logging.getLogger("hud.agents")

MALFORMED = "MALFORMED_FUNCTION_CALL"


class GeminiConfig(ToolAgentConfig):
    """``model`` (default ``gemini-3-pro-preview``), ``temperature=1.0, top_p=0.95, top_k=40,
    max_output_tokens=8192``, ``thinking_level`` (``low``/``high``...), ``include_thoughts``."""

    model: str | None = Field(default="gemini-3-pro-preview")
    temperature: float | None = 1.0
    top_p: float | None = 0.95
    top_k: int | None = 40
    max_output_tokens: int | None = 8192
    thinking_level: str | None = None
    include_thoughts: bool = True


class GeminiAgent(ToolAgent):
    """Gemini tool loop."""

    name = "gemini"
    provider = "gemini"
    config_cls: ClassVar[type[ToolAgentConfig]] = GeminiConfig
    config: GeminiConfig
    key_env = "GEMINI_API_KEY"
    families = frozenset({"ssh", "mcp", *SCREEN_FAMILIES})

    def make_client(self, cfg: ToolAgentConfig, route: Route, run: Run) -> Any:
        from google import genai
        from google.genai import types

        timeout = cfg.request_timeout_seconds
        options = types.HttpOptions(
            base_url=route.base_url,
            headers=route.headers(run),
            timeout=int(timeout * 1000) if timeout else None,
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        return genai.Client(api_key=route.api_key, http_options=options)

    def shell_tools(self, ops: ShellOps) -> list[AgentTool]:
        return gemini_tools(ops)

    async def screen_tools(self, cap: Capability, client: Screen) -> list[AgentTool]:
        return gemini_computer_tools(
            client,
            family=cap.family,
            encoding=self.config.screenshot_encoding,
            capability=cap.name,
        )

    def conversation(
        self, client: Any, cfg: ToolAgentConfig, tools: list[AgentTool], run: Run
    ) -> Conversation:
        assert isinstance(cfg, GeminiConfig)
        return GeminiConversation(client, cfg, tools, run)


def _computer_use(tool: AgentTool) -> bool:
    return (tool.native or {}).get("type") == COMPUTER_USE


def _screen_response(call: ToolCallRequest, result: MCPToolResult) -> Any:
    """A computer-use answer: ``{"url", ...}`` (or ``{"error"}``) with the screenshot inline."""
    from google.genai import types

    if result.isError:
        response: dict[str, Any] = {"error": result.text or "error"}
    else:
        response = dict(result.structuredContent or {"url": ""})
    images = [
        types.FunctionResponsePart(
            inline_data=types.FunctionResponseBlob(mime_type=mime, data=base64.b64decode(data))
        )
        for mime, data in result_images(result)
    ]
    return types.FunctionResponse(
        name=call.name, id=call.native, response=response, parts=images or None
    )


def _parts(blocks: list[Any]) -> list[Any]:
    from google.genai import types

    out = []
    for raw in blocks:
        block = prompt_blocks(raw)
        if block["type"] == "image":
            out.append(
                types.Part.from_bytes(
                    data=base64.b64decode(block["data"]), mime_type=block["mimeType"]
                )
            )
        else:
            out.append(types.Part(text=block["text"]))
    return out


class GeminiConversation(Conversation):
    def __init__(self, client: Any, cfg: GeminiConfig, tools: list[AgentTool], run: Run) -> None:
        from google.genai import types

        self.client = client
        self.cfg = cfg
        self.tools = tools
        self.by_name = {t.name: t for t in tools}
        #: The screen whose screenshot joins the first request (then None).
        self.screen: GeminiScreen | None = next(
            (t.extra["screen"] for t in tools if _computer_use(t)), None
        )
        self.contents: list[Any] = [
            types.Content(
                role="model" if turn["role"] == "assistant" else "user",
                parts=_parts(turn["content"]),
            )
            for turn in run.prompt_messages
        ]

    def config(self) -> Any:
        from google.genai import types

        cfg = self.cfg
        tools: list[Any] = []
        functions = [t for t in self.tools if not _computer_use(t)]
        if functions:
            tools.append(
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=t.name,
                            description=t.description,
                            parameters_json_schema=t.parameters,
                        )
                        for t in functions
                    ]
                )
            )
        spec = computer_use_spec(self.tools)
        if spec is not None:
            tools.append(
                types.Tool(
                    computer_use=types.ComputerUse(
                        environment=types.Environment(spec["environment"]),
                        excluded_predefined_functions=spec["excluded_predefined_functions"] or None,
                    )
                )
            )
        tools.extend(cfg.hosted_tools)
        thinking = None
        if cfg.thinking_level or cfg.include_thoughts:
            thinking = types.ThinkingConfig(
                include_thoughts=cfg.include_thoughts or None,
                thinking_level=(
                    types.ThinkingLevel(cfg.thinking_level.upper()) if cfg.thinking_level else None
                ),
            )
        return types.GenerateContentConfig(
            system_instruction=cfg.system_prompt or None,
            tools=tools or None,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            max_output_tokens=cfg.max_output_tokens,
            thinking_config=thinking,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )

    async def initial_screenshot(self) -> None:
        """Add the screen as it is now to the last user turn (once, before the first call)."""
        from google.genai import types

        screen, self.screen = self.screen, None
        if screen is None:
            return
        try:
            data = await screen.screenshot()
        except Exception as exc:
            log.warning("gemini: no initial screenshot: %s: %s", type(exc).__name__, exc)
            return
        image = types.Part.from_bytes(data=data, mime_type=screen.mime)
        last = self.contents[-1] if self.contents else None
        if last is not None and last.role == "user":
            last.parts = [*(last.parts or []), image]
        else:
            self.contents.append(types.Content(role="user", parts=[image]))

    async def complete(self) -> ModelReply:
        await self.initial_screenshot()
        response = await self.client.aio.models.generate_content(
            model=self.cfg.model, contents=list(self.contents), config=self.config()
        )
        candidates = getattr(response, "candidates", None) or []
        candidate = candidates[0] if candidates else None
        content = getattr(candidate, "content", None)
        finish = getattr(candidate, "finish_reason", None)
        finish_name = getattr(finish, "value", finish)
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCallRequest] = []
        for i, part in enumerate(getattr(content, "parts", None) or []):
            if part.function_call is not None:
                fc = part.function_call
                args = fc.args if isinstance(fc.args, dict) else None
                calls.append(
                    ToolCallRequest(
                        id=fc.id or f"{fc.name}-{i}",
                        name=fc.name or "",
                        arguments=args if args is not None else None,
                        problem=None if args is not None else "arguments are not an object",
                        native=fc.id,
                    )
                )
            elif part.text:
                (thoughts if part.thought else texts).append(part.text)
        if content is not None and getattr(content, "parts", None):
            self.contents.append(content)
        if finish_name == MALFORMED:
            message = getattr(candidate, "finish_message", None) or "malformed function call"
            calls.append(
                ToolCallRequest(
                    id="malformed",
                    name="(malformed)",
                    arguments=None,
                    raw_arguments=message,
                    problem=message,
                    native=MALFORMED,
                )
            )
        usage = getattr(response, "usage_metadata", None)
        return ModelReply(
            content="".join(texts) if texts else None,
            reasoning="\n".join(thoughts) if thoughts else None,
            calls=calls,
            finish_reason=finish_name,
            truncated=finish_name == "MAX_TOKENS",
            usage=Usage(
                prompt_tokens=getattr(usage, "prompt_token_count", None),
                completion_tokens=getattr(usage, "candidates_token_count", None),
                cached_tokens=getattr(usage, "cached_content_token_count", None),
                llm_call_count=1,
            )
            if usage is not None
            else None,
        )

    def add_results(
        self, reply: ModelReply, results: Sequence[tuple[ToolCallRequest, MCPToolResult]]
    ) -> None:
        from google.genai import types

        parts: list[Any] = []
        notes: list[Any] = []
        for call, result in results:
            if call.native == MALFORMED:
                notes.append(types.Part(text=result.text))
                continue
            tool = self.by_name.get(call.name)
            if tool is not None and _computer_use(tool):
                parts.append(types.Part(function_response=_screen_response(call, result)))
                continue
            key = "error" if result.isError else "output"
            response = {key: result.text or "Tool executed successfully"}
            fr = types.FunctionResponse(name=call.name, response=response, id=call.native)
            parts.append(types.Part(function_response=fr))
            for mime, data in result_images(result):
                notes.append(types.Part.from_bytes(data=base64.b64decode(data), mime_type=mime))
        if parts:
            self.contents.append(types.Content(role="user", parts=parts + notes))
        elif notes:
            self.contents.append(types.Content(role="user", parts=notes))

    def add_user(self, text: str) -> None:
        from google.genai import types

        self.contents.append(types.Content(role="user", parts=[types.Part(text=text)]))
