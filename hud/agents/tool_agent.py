"""`ToolAgent`: the model/tool loop shared by the provider agents (runtimes-agents.md §2.3).

A provider agent supplies three things: a tool catalog for the capabilities it supports
(`ToolAgent.shell_tools`), an SDK client (`ToolAgent.make_client`) and a `Conversation` that
turns the history into one model call and the model's answer into a `ModelReply`. The loop
here does the rest: open capabilities, call the model with retries, dispatch tool calls, feed
results back, auto-respond, record every turn/call/result as steps, and set the outcome.

Provider SDKs are imported inside methods only, so ``import hud.agents`` stays light.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import AliasChoices, ConfigDict, Field, SecretStr

from hud.agents.base import Agent, AgentConfig
from hud.agents.tools.base import AgentTool, ToolContext, ToolError, ToolTimeoutError, text_result
from hud.agents.tools.computer import add_screen_tools, pick_screen, screens_to_open
from hud.agents.tools.mcp import mcp_tools, sanitize_tool_name
from hud.agents.tools.screen import Screen
from hud.agents.tools.shell import ShellOps
from hud.capabilities import Capability
from hud.clients.model_calls import (
    MissingKeyError,
    ModelCallError,
    RetryPolicy,
    call_with_retries,
)
from hud.eval.trace import (
    AgentStep,
    MCPToolCall,
    MCPToolResult,
    Step,
    ToolStep,
    Usage,
    now_iso,
    system_step,
    text_messages,
)
from hud.types.trace import StopReason

if TYPE_CHECKING:
    from hud.eval.run import Run

__all__ = [
    "AUTO_RESPONSE",
    "SSH_FAILURE_LIMIT",
    "Conversation",
    "MissingKeyError",
    "ModelReply",
    "Route",
    "ToolAgent",
    "ToolAgentConfig",
    "ToolCallRequest",
    "asks_to_continue",
]

log = logging.getLogger("hud.agents")

#: The user message auto-respond sends when the model stops early with a question.
AUTO_RESPONSE = "continue"
#: Consecutive SSH infrastructure failures after which the rollout errors.
SSH_FAILURE_LIMIT = 3
#: Row ``agent_config`` keys a task may not override (credentials, routing, the model).
ROW_PROTECTED = frozenset(
    {"api_key", "api_key_env", "base_url", "model_client", "gateway", "model", "checkpoint_name"}
)


class ToolAgentConfig(AgentConfig):
    """Settings of tool-loop agents (runtimes-agents.md §2.2); unknown keys are ignored.

    Credentials: ``api_key`` (kept secret in reprs and dumps) or ``api_key_env`` (the name of
    the variable holding it), else the provider's variable from the environment or
    ``~/.hud/.env``. ``gateway=True`` routes through the HUD gateway (``HUD_API_KEY``).
    """

    model_config = ConfigDict(
        extra="ignore",
        protected_namespaces=(),
        populate_by_name=True,
        arbitrary_types_allowed=True,
    )

    model: str | None = Field(
        default=None, validation_alias=AliasChoices("model", "checkpoint_name")
    )
    model_name: str | None = None
    stop_on: set[str] = Field(default_factory=set)
    citations_enabled: bool = False
    hosted_tools: list[dict[str, Any]] = Field(default_factory=list)
    screenshot_encoding: str = "PNG"
    model_client: Any = Field(default=None, exclude=True, repr=False)
    api_key: SecretStr | None = Field(default=None, repr=False)
    api_key_env: str | None = None
    base_url: str | None = None
    gateway: bool = False
    temperature: float | None = None
    #: Extra attempts after a retryable model-call failure (429, 5xx, timeouts, connection).
    max_retries: int = 3
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0
    request_timeout_seconds: float | None = 600.0

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            retries=max(int(self.max_retries), 0),
            base_delay=float(self.retry_base_delay),
            max_delay=float(self.retry_max_delay),
        )


@dataclass
class Route:
    """Where model calls go: ``client`` (a given SDK client), ``direct`` or ``gateway``."""

    kind: str
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    key_env: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,) if self.api_key else ()

    def headers(self, run: Run) -> dict[str, str] | None:
        """Extra HTTP headers for the SDK client: the gateway gets the rollout's trace id."""
        return {"Trace-Id": run.trace_id} if self.kind == "gateway" and run.trace_id else None


@dataclass
class ToolCallRequest:
    """A tool call as the model made it; ``arguments`` is None when they did not parse."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str | None = None
    problem: str | None = None
    #: Provider-specific payload (e.g. the Responses ``shell_call`` item).
    native: Any = None
    #: Recorded in the call's `ToolStep` ``extra`` (e.g. acknowledged safety checks).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelReply:
    """One model turn, provider-neutral."""

    content: str | None = None
    reasoning: str | None = None
    calls: list[ToolCallRequest] = field(default_factory=list)
    finish_reason: str | None = None
    truncated: bool = False
    usage: Usage | None = None
    refusal: str | None = None
    citations: list[Any] | None = None
    raw: Any = None


class Conversation:
    """Per-run history in a provider's format; `complete` makes one model call."""

    #: Whether the provider asked for the calls of one turn to run concurrently.
    parallel: bool = False

    async def complete(self) -> ModelReply:
        """Call the model once; on success the assistant turn joins the history."""
        raise NotImplementedError

    def add_results(
        self, reply: ModelReply, results: Sequence[tuple[ToolCallRequest, MCPToolResult]]
    ) -> None:
        """Append the results of ``reply``'s calls (in call order)."""
        raise NotImplementedError

    def add_user(self, text: str) -> None:
        raise NotImplementedError


_QUESTION = re.compile(
    r"\b(would you like|do you want|should i|shall i|want me to|let me know|please confirm|"
    r"can you (confirm|clarify)|could you (confirm|clarify)|how would you like|which (one|option)"
    r"|before i (proceed|continue)|proceed\?)",
    re.IGNORECASE,
)


def asks_to_continue(text: str | None) -> bool:
    """True when a text-only stop looks like the model waiting for the user (auto-respond)."""
    body = (text or "").strip()
    if not body:
        return True
    tail = body[-400:]
    return tail.rstrip("*_` \n").endswith("?") or bool(_QUESTION.search(tail))


def parse_arguments(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """JSON tool arguments -> ``(dict, None)``, or ``(None, problem)`` when unusable."""
    if isinstance(raw, dict):
        return raw, None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    try:
        value = json.loads(raw)
    except (TypeError, ValueError) as exc:
        return None, f"not valid JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {type(value).__name__}"
    return value, None


def prompt_blocks(block: Any) -> dict[str, Any]:
    """A prompt content block as ``{"type": "text"|"image", ...}`` (anything else as JSON)."""
    if isinstance(block, dict):
        kind = block.get("type")
        if kind == "text":
            return {"type": "text", "text": str(block.get("text", ""))}
        if kind == "image" and block.get("data"):
            return {
                "type": "image",
                "data": str(block["data"]),
                "mimeType": str(block.get("mimeType") or block.get("mime_type") or "image/png"),
            }
    return {"type": "text", "text": block if isinstance(block, str) else json.dumps(block)}


class ToolAgent(Agent):
    """The tool loop; subclasses bind it to a provider."""

    name = "tool"
    config_cls: ClassVar[type[ToolAgentConfig]] = ToolAgentConfig
    config: ToolAgentConfig
    #: Provider label used in messages (``anthropic``, ``openai``, ``gemini``).
    provider: ClassVar[str] = "model"
    #: The variable holding the provider key.
    key_env: ClassVar[str | None] = None
    #: Capability families whose tools this agent builds.
    families: ClassVar[frozenset[str]] = frozenset({"ssh", "mcp"})

    def __init__(self, config: AgentConfig | None = None, **kwargs: Any) -> None:
        cls = type(self)
        if config is None and not kwargs:
            config = cls.config_cls()
        elif not isinstance(config, cls.config_cls) or kwargs:
            base = config or cls.config_cls()
            data = _dump(base)
            data["model_client"] = getattr(base, "model_client", None)
            config = cls.config_cls.model_validate({**data, **kwargs})
        self.config = config
        # Fail fast (before any rollout) when no credentials can be found.
        self.route(config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.config.model!r})"

    # -- routing -------------------------------------------------------------------------
    def key_optional(self, cfg: ToolAgentConfig) -> bool:
        """Whether calls may go out without a key (OpenAI-compatible local servers)."""
        return False

    def route(self, cfg: ToolAgentConfig) -> Route:
        """Credentials and endpoint for model calls (G26: an explicit provider key wins)."""
        from hud.settings import get_setting

        if cfg.model_client is not None:
            return Route("client")
        hud_key = get_setting("HUD_API_KEY") or None
        gateway_url = (get_setting("HUD_GATEWAY_URL") or "").rstrip("/") or None
        if cfg.gateway:
            if not hud_key:
                raise MissingKeyError("HUD_API_KEY")
            return Route("gateway", hud_key, gateway_url, "HUD_API_KEY")
        variable = cfg.api_key_env or self.key_env
        key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
        if not key and variable:
            key = get_setting(variable) or None
        if key:
            return Route("direct", key, cfg.base_url, variable)
        if self.key_optional(cfg):
            return Route("direct", None, cfg.base_url, variable)
        if hud_key and not cfg.base_url:
            log.info("%s: %s is not set; using the HUD gateway", self.name, variable)
            return Route("gateway", hud_key, gateway_url, "HUD_API_KEY")
        raise MissingKeyError(variable or "API key")

    # -- provider hooks ------------------------------------------------------------------
    def make_client(self, cfg: ToolAgentConfig, route: Route, run: Run) -> Any:
        """The provider SDK client for one run."""
        raise NotImplementedError

    def shell_tools(self, ops: ShellOps) -> list[AgentTool]:
        """The catalog for an ``ssh`` capability."""
        return []

    def conversation(
        self, client: Any, cfg: ToolAgentConfig, tools: list[AgentTool], run: Run
    ) -> Conversation:
        raise NotImplementedError

    # -- capabilities and tools ----------------------------------------------------------
    async def screen_tools(self, cap: Capability, client: Screen) -> list[AgentTool]:
        """The computer-use tools on one screen (an ``rfb`` or ``cdp`` capability in
        `families`); none by default."""
        return []

    async def open_capabilities(self, run: Run) -> list[tuple[Capability, Any]]:
        """Open, in manifest order, every ``mcp`` binding and the first of each other family
        this agent has tools for (one screen at most: ``rfb`` before ``cdp``); protocols
        without a registered client are skipped."""
        bindings = list(getattr(run.client, "bindings", []) or []) if run._client else []
        families = screens_to_open(self.families, bindings)
        opened: list[tuple[Capability, Any]] = []
        seen: set[str] = set()
        for cap in bindings:
            fam = cap.family
            if fam not in families or (fam != "mcp" and fam in seen):
                continue
            try:
                client = await run.client.open(cap.name)
            except ValueError as exc:
                log.warning("%s: skipping capability %r: %s", self.name, cap.name, exc)
                continue
            seen.add(fam)
            opened.append((cap, client))
        return opened

    async def build_tools(self, opened: list[tuple[Capability, Any]]) -> list[AgentTool]:
        tools: list[AgentTool] = []
        for cap, client in opened:
            if cap.family == "ssh":
                cwd = cap.params.get("cwd") if isinstance(cap.params, dict) else None
                tools.extend(self.shell_tools(ShellOps(client, cwd=cwd, name=cap.name)))
        builtin = {t.name for t in tools}
        for tool in await mcp_tools([(c, cl) for c, cl in opened if c.family == "mcp"]):
            if tool.name in builtin:
                tool.name = sanitize_tool_name(f"{tool.capability}__{tool.upstream}")
                if tool.name in builtin:
                    raise ValueError(f"MCP tool {tool.upstream!r} clashes with a built-in tool")
            tools.append(tool)
        screen = pick_screen(opened)
        if screen is not None:
            tools = add_screen_tools(tools, await self.screen_tools(*screen))
        return tools

    # -- the loop ------------------------------------------------------------------------
    def effective_config(self, run: Run) -> ToolAgentConfig:
        """The agent config with the row's ``agent_config`` merged on top (G15)."""
        row = {
            k: v
            for k, v in (run.agent_config or {}).items()
            if k in type(self.config).model_fields and k not in ROW_PROTECTED
        }
        return self.config.model_copy(update=row) if row else self.config

    async def __call__(self, run: Run) -> None:
        cfg = self.effective_config(run)
        route = self.route(cfg)
        max_steps = self.max_steps(run)
        opened = await self.open_capabilities(run)
        tools = await self.build_tools(opened)
        client = cfg.model_client if route.kind == "client" else self.make_client(cfg, route, run)
        try:
            convo = self.conversation(client, cfg, tools, run)
            await self.loop(run, cfg, route, convo, tools, max_steps)
        finally:
            if route.kind != "client":
                await _close(client)

    async def loop(
        self,
        run: Run,
        cfg: ToolAgentConfig,
        route: Route,
        convo: Conversation,
        tools: list[AgentTool],
        max_steps: int,
    ) -> None:
        trace = run.trace
        by_name = {t.name: t for t in tools}
        policy = cfg.retry_policy()
        stop: StopReason | None = None
        truncated = False
        exhausted = False
        failed = False
        last_content: str | None = None
        ssh_failures = 0
        for turn in range(1, max_steps + 1):
            attempts: list[dict[str, Any]] = []
            started = now_iso()
            try:
                reply = await call_with_retries(
                    convo.complete,
                    policy,
                    label=f"{self.name} ({cfg.model})",
                    secrets=route.secrets,
                    attempts=attempts,
                )
            except ModelCallError as exc:
                extra: dict[str, Any] = {"route": route.kind}
                if attempts:
                    extra["retries"] = attempts
                if exc.overflow:
                    extra["context_overflow"] = exc.message
                    run.record(
                        AgentStep(
                            done=True,
                            finish_reason="length",
                            model=cfg.model,
                            started_at=started,
                            extra=extra,
                        )
                    )
                    stop = "length"
                    break
                message = f"{self.provider} model call failed: {exc.message}"
                run.record(
                    AgentStep(
                        error=message, done=True, model=cfg.model, started_at=started, extra=extra
                    )
                )
                log.warning("%s: %s", self.name, message)
                failed = True
                break
            calls = reply.calls
            unparsed = {c.id: c.raw_arguments for c in calls if c.arguments is None}
            extra = {"route": route.kind}
            if attempts:
                extra["retries"] = attempts
            if unparsed:
                extra["unparsed_arguments"] = unparsed
            run.record(
                AgentStep(
                    content=reply.content,
                    reasoning=reply.reasoning,
                    tool_calls=[
                        MCPToolCall(id=c.id, name=c.name, arguments=c.arguments or {})
                        for c in calls
                    ],
                    done=not calls,
                    finish_reason=reply.finish_reason,
                    refusal=reply.refusal,
                    citations=reply.citations,
                    model=cfg.model,
                    usage=reply.usage,
                    started_at=started,
                    extra=extra,
                )
            )
            log.info("%s turn %d/%d: %d tool call(s)", self.name, turn, max_steps, len(calls))
            if reply.content:
                last_content = reply.content
                trace.content = reply.content
            truncated = reply.truncated
            if truncated and "length" in cfg.stop_on:
                stop = "length"
                break
            if not calls:
                if (
                    cfg.auto_respond
                    and turn < max_steps
                    and not truncated
                    and asks_to_continue(reply.content)
                ):
                    convo.add_user(AUTO_RESPONSE)
                    run.record(
                        Step(
                            source="user",
                            messages=text_messages("user", AUTO_RESPONSE),
                            extra={"auto_respond": True},
                        )
                    )
                    continue
                break
            if unparsed and "malformed_tool_call" in cfg.stop_on:
                stop = "malformed_tool_call"
                break
            results, ssh_failures = await self.dispatch(
                run, cfg, calls, by_name, ssh_failures, parallel=convo.parallel
            )
            convo.add_results(reply, results)
            if ssh_failures >= SSH_FAILURE_LIMIT:
                run.record(
                    system_step(
                        f"SSH tool failure limit reached after {SSH_FAILURE_LIMIT} "
                        "consecutive errors"
                    )
                )
                failed = True
                break
        else:
            exhausted = True
        if last_content is not None:
            trace.content = last_content
        last = trace.steps[-1] if trace.steps else None
        trace.status = "error" if failed or (last is not None and last.error) else "completed"
        if stop is None:
            stop = "max_steps" if exhausted else ("length" if truncated else "done")
        trace.stop_reason = stop

    async def dispatch(
        self,
        run: Run,
        cfg: ToolAgentConfig,
        calls: list[ToolCallRequest],
        by_name: dict[str, AgentTool],
        ssh_failures: int,
        *,
        parallel: bool = False,
    ) -> tuple[list[tuple[ToolCallRequest, MCPToolResult]], int]:
        """Run the calls (in order, or concurrently when the provider asked) and record a
        `ToolStep` each; returns the results and the running count of SSH failures.

        Sequentially, calls after the SSH failure limit is reached are not run."""
        outcomes: list[tuple[MCPToolResult, bool | None, str]] = []
        if parallel and len(calls) > 1:
            started = now_iso()
            done = await asyncio.gather(*(self.run_call(c, cfg, by_name) for c in calls))
            for result, ssh in done:
                outcomes.append((result, ssh, started))
                ssh_failures = _count(ssh_failures, ssh)
        else:
            for call in calls:
                if ssh_failures >= SSH_FAILURE_LIMIT:
                    break
                started = now_iso()
                result, ssh = await self.run_call(call, cfg, by_name)
                outcomes.append((result, ssh, started))
                ssh_failures = _count(ssh_failures, ssh)
        results: list[tuple[ToolCallRequest, MCPToolResult]] = []
        for call, (result, _, started) in zip(calls, outcomes, strict=False):
            results.append((call, result))
            run.record(
                ToolStep(
                    call=MCPToolCall(id=call.id, name=call.name, arguments=call.arguments or {}),
                    result=result,
                    started_at=started,
                    extra=dict(call.extra),
                )
            )
        for call in calls[len(outcomes) :]:
            results.append(
                (
                    call,
                    text_result("not run: the SSH tool failure limit was reached", is_error=True),
                )
            )
        return results, ssh_failures

    async def run_call(
        self, call: ToolCallRequest, cfg: ToolAgentConfig, by_name: dict[str, AgentTool]
    ) -> tuple[MCPToolResult, bool | None]:
        """One call -> (result, ssh_outcome); ``ssh_outcome`` is True for an SSH
        infrastructure failure, False for a completed SSH call, None otherwise."""
        if call.arguments is None:
            detail = f" ({call.problem})" if call.problem else ""
            return (
                text_result(
                    f"The arguments for {call.name!r} arrived incomplete or malformed{detail}. "
                    "Re-issue the call in full.",
                    is_error=True,
                ),
                None,
            )
        tool = by_name.get(call.name)
        if tool is None:
            return text_result(f"unknown tool: {call.name!r}", is_error=True), None
        ssh = tool.family == "ssh"
        try:
            result = await tool(call.arguments, ToolContext(timeout=cfg.tool_timeout_seconds))
        except ToolTimeoutError as exc:
            return text_result(str(exc), is_error=True), (False if ssh else None)
        except ToolError as exc:
            return text_result(f"tool error: {exc}", is_error=True), (False if ssh else None)
        except Exception as exc:
            log.warning("%s: tool %s failed: %s: %s", self.name, call.name, type(exc).__name__, exc)
            return (
                text_result(f"tool error: {type(exc).__name__}: {exc}", is_error=True),
                True if ssh else None,
            )
        return result, (False if ssh else None)


def _count(failures: int, outcome: bool | None) -> int:
    if outcome is True:
        return failures + 1
    if outcome is False:
        return 0
    return failures


def _dump(config: AgentConfig) -> dict[str, Any]:
    data = config.model_dump(exclude={"model_client"}, exclude_unset=True)
    key = getattr(config, "api_key", None)
    if isinstance(key, SecretStr):
        data["api_key"] = key.get_secret_value()
    return data


async def _close(client: Any) -> None:
    """Close an SDK client (async ``close``/``aclose``; google-genai's ``aio`` side first)."""
    aio = getattr(client, "aio", None)
    if aio is not None and hasattr(aio, "aclose"):
        await _close(aio)
    for name in ("aclose", "close"):
        closer = getattr(client, name, None)
        if closer is None:
            continue
        try:
            result = closer()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            pass
        return
