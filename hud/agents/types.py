"""`hud.agents.types`: the agent-facing data types under the names HUD v6 exports here.

Scripts written against the official package import their agent configs, trace steps and
content types from this module; the same names import here. Most are ours re-exported (the
trace and steps from `hud.eval.trace`, the provider configs from their agents); the rest are
plain data shapes (robot/video steps, CLI-agent configs, screenshot encodings) kept so such
imports and type annotations work, even where this package has no agent using them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, NotRequired, TypedDict, TypeVar

from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from hud.agents.base import AgentConfig
from hud.types.trace import (
    AgentStep,
    MCPToolCall,
    MCPToolResult,
    Source,
    Step,
    SubagentStep,
    ToolStep,
    Trace,
    Usage,
)

if TYPE_CHECKING:
    from mcp.types import ContentBlock, ImageContent, TextContent

    from hud.agents.claude import ClaudeConfig
    from hud.agents.gemini import GeminiConfig
    from hud.agents.openai_agent import OpenAIConfig
    from hud.agents.openai_chat import OpenAIChatConfig
    from hud.agents.tool_agent import ToolAgentConfig

__all__ = [
    "ROBOT_STEP_SCHEMA",
    "AgentConfig",
    "AgentStep",
    "Citation",
    "ClaudeAdaptiveThinkingConfig",
    "ClaudeCLIConfig",
    "ClaudeConfig",
    "ClaudeDisabledThinkingConfig",
    "ClaudeEffort",
    "ClaudeEnabledThinkingConfig",
    "ClaudeThinkingConfig",
    "CodexCLIConfig",
    "CodexReasoningEffort",
    "ContentBlock",
    "ContentResult",
    "GeminiConfig",
    "HostedTool",
    "ImageContent",
    "InferenceStep",
    "MCPToolCall",
    "MCPToolResult",
    "ObservationStep",
    "OpenAIChatConfig",
    "OpenAIConfig",
    "PngScreenshotEncoding",
    "RobotStepSource",
    "Sample",
    "ScreenshotEncoding",
    "StateFeature",
    "Step",
    "StepSource",
    "StopCondition",
    "SubagentStep",
    "TextContent",
    "ToolAgentConfig",
    "ToolStep",
    "Trace",
    "Usage",
    "VideoSegmentStep",
    "WebPScreenshotEncoding",
    "json_safe_value",
]

#: Load on first use: provider agents' configs (their modules import the provider SDKs) and
#: MCP's content types (importing `mcp` takes about a second).
_LAZY = {
    "ContentBlock": "mcp.types",
    "ImageContent": "mcp.types",
    "TextContent": "mcp.types",
    "ClaudeConfig": "hud.agents.claude",
    "GeminiConfig": "hud.agents.gemini",
    "OpenAIConfig": "hud.agents.openai_agent",
    "OpenAIChatConfig": "hud.agents.openai_chat",
    "ToolAgentConfig": "hud.agents.tool_agent",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hud.agents.types' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


StepSource = Source
#: Why a model turn ended without the agent deciding to stop.
StopCondition = Literal["length", "malformed_tool_call"]
ClaudeEffort = Literal["low", "medium", "high", "xhigh", "max"]
CodexReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class ClaudeAdaptiveThinkingConfig(TypedDict):
    type: Literal["adaptive"]
    display: NotRequired[Literal["summarized", "omitted"]]


class ClaudeEnabledThinkingConfig(TypedDict):
    type: Literal["enabled"]
    budget_tokens: Annotated[int, Field(ge=1024)]
    display: NotRequired[Literal["summarized", "omitted"]]


class ClaudeDisabledThinkingConfig(TypedDict):
    type: Literal["disabled"]


ClaudeThinkingConfig = (
    ClaudeAdaptiveThinkingConfig | ClaudeEnabledThinkingConfig | ClaudeDisabledThinkingConfig
)


class Citation(BaseModel):
    """A source a model cited in its answer."""

    type: str = "citation"
    text: str = ""
    source: str = ""
    title: str | None = None
    start_index: int | None = None
    end_index: int | None = None


class ContentResult(BaseModel):
    """A tool's result as text, error text and/or a base64 image."""

    output: str | None = None
    error: str | None = None
    base64_image: str | None = None


class Sample(BaseModel):
    """Token-level record of one model call (for training)."""

    prompt_token_ids: list[int] = Field(default_factory=list)
    prompt_chunks: list[dict[str, Any]] | None = None
    output_token_ids: list[int] = Field(default_factory=list)
    output_logprobs: list[float] = Field(default_factory=list)


class PngScreenshotEncoding(BaseModel):
    mime_type: Literal["image/png"] = "image/png"


class WebPScreenshotEncoding(BaseModel):
    mime_type: Literal["image/webp"] = "image/webp"
    quality: int = 85


ScreenshotEncoding = Annotated[
    PngScreenshotEncoding | WebPScreenshotEncoding, Field(discriminator="mime_type")
]

# -- robot and video steps ------------------------------------------------------------------
ROBOT_STEP_SCHEMA = "hud.robot.step.v1"
RobotStepSource = Literal["observation", "inference", "video_segment"]


class StateFeature(BaseModel):
    """Named numeric features of a robot's state."""

    names: list[str] = Field(default_factory=list)
    values: list[float] = Field(default_factory=list)


class ObservationStep(Step):
    source: RobotStepSource = "observation"  # type: ignore[assignment]
    tick: int = 0
    images: dict[str, Any] = Field(default_factory=dict)  # name -> MCP ImageContent
    state: dict[str, StateFeature] = Field(default_factory=dict)


class InferenceStep(Step):
    source: RobotStepSource = "inference"  # type: ignore[assignment]
    tick: int = 0
    chunk: list[list[float]] = Field(default_factory=list)
    chunk_length: int = 1
    names: list[str] = Field(default_factory=list)


class VideoSegmentStep(Step):
    source: RobotStepSource = "video_segment"  # type: ignore[assignment]
    camera: str = ""
    index: int = 0
    fps: int = 10
    segment: dict[str, Any] = Field(default_factory=dict)


# -- configs of agents that drive a vendor CLI (no such agent here) ---------------------------
class ClaudeCLIConfig(AgentConfig):
    model_name: str = "Claude CLI"
    model: str = "claude-sonnet-5"
    gateway: bool = False
    system_prompt: str | None = None
    permission_mode: str = "bypassPermissions"
    max_steps: int = -1
    reasoning_effort: ClaudeEffort | None = None
    screenshot_encoding: ScreenshotEncoding = Field(default_factory=PngScreenshotEncoding)
    allowed_tools: list[str] = Field(default_factory=list)


class CodexCLIConfig(AgentConfig):
    model_name: str = "Codex CLI"
    model: str = "gpt-5.6-sol"
    gateway: bool = False
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] = "workspace-write"
    reasoning_effort: CodexReasoningEffort | None = None


ParamsT_co = TypeVar("ParamsT_co", covariant=True)


class HostedTool(ABC, Generic[ParamsT_co]):
    """A tool the model provider runs itself (web search, code execution, ...): the agent only
    passes its parameters in the request."""

    #: Model names (or prefixes) that support it; None: every model.
    supported_models: tuple[str, ...] | None = None

    def supports_model(self, model: str | None) -> bool:
        if self.supported_models is None:
            return True
        return model is not None and any(model.startswith(m) for m in self.supported_models)

    @abstractmethod
    def to_params(self) -> ParamsT_co:
        """The provider request's entry for this tool."""


def json_safe_value(value: Any) -> Any:
    """``value`` as JSON-able data (sets as lists, bytes decoded, models dumped, else str)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return to_jsonable_python(
        value,
        fallback=str,
        serialize_unknown=True,
        bytes_mode="utf8",
    )
