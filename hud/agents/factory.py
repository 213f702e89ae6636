"""`create_agent`: an agent from a short name (``oracle``, ``nop``, ``replay``, provider names).

Offline agents are built here; provider agents (``claude``, ``openai``, ``gemini``,
``openai_compatible`` and their aliases) are resolved to a type and a model, and built from
their module (imported only then, so the CLI starts fast).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hud.agents.base import Agent, AgentConfig
from hud.protocol.errors import HudError

#: Agents that need no model.
OFFLINE_AGENTS = ("oracle", "nop", "replay")

#: Provider agent types and their default models (runtimes-agents.md §2.2).
PROVIDER_DEFAULTS: dict[str, str] = {
    "claude": "claude-sonnet-4-6",
    "openai": "gpt-5.6",
    "gemini": "gemini-3-pro-preview",
    "openai_compatible": "gpt-5.4-mini",
}

#: Offline short names for provider models (G27, proposed): name -> (type, model).
ALIASES: dict[str, tuple[str, str]] = {
    "sonnet": ("claude", "claude-sonnet-4-6"),
    "opus": ("claude", "claude-opus-4-8"),
    "haiku": ("claude", "claude-haiku-4-5"),
    "gpt": ("openai", "gpt-5.6"),
}

#: Config keys whose values stay strings (ids and names that may look like numbers).
STRING_KEYS = frozenset({"trace", "model", "model_name", "system_prompt", "jobs_dir", "local_dir"})

#: ReplayAgent keyword options accepted from the agent config.
REPLAY_OPTIONS = ("jobs_dir", "local_dir", "execute_tools", "check_task")

#: Model-name prefixes that identify a provider type.
MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("claude-", "claude"),
    ("gpt-", "openai"),
    ("gemini-", "gemini"),
)


#: OpenAI ``o``-series model names (``o3``, ``o4-mini``, ...).
_O_SERIES = re.compile(r"o\d+(-[a-z0-9.-]+)?")

#: Provider agent types -> (module, class).
PROVIDER_CLASSES: dict[str, tuple[str, str]] = {
    "claude": ("hud.agents.claude", "ClaudeAgent"),
    "openai": ("hud.agents.openai_agent", "OpenAIAgent"),
    "gemini": ("hud.agents.gemini", "GeminiAgent"),
    "openai_compatible": ("hud.agents.openai_chat", "OpenAIChatAgent"),
}


class UnknownAgentError(HudError, ValueError):
    """The name is not an agent type, alias or recognised model name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"Invalid agent: {name}. Must be one of: {', '.join(agent_names())} "
            "(or a claude-*, gpt-* or gemini-* model name)"
        )


class ProviderAgentUnavailableError(HudError, ValueError):
    """A provider agent was asked for; they are not built yet."""

    def __init__(self, spec: AgentSpec) -> None:
        self.spec = spec
        model = f" (model {spec.model})" if spec.model else ""
        super().__init__(
            f"agent {spec.name!r} is a {spec.type} provider agent{model}; provider agents "
            "arrive with issue 4 — use oracle, nop or replay for now"
        )


@dataclass(frozen=True)
class AgentSpec:
    """What an agent name resolved to."""

    name: str
    type: str
    model: str | None = None

    @property
    def offline(self) -> bool:
        return self.type in OFFLINE_AGENTS


def agent_names() -> list[str]:
    """Every accepted agent name (types and aliases; model names like ``claude-*`` too)."""
    return [*OFFLINE_AGENTS, *PROVIDER_DEFAULTS, *ALIASES]


def resolve_agent(name: str, model: str | None = None) -> AgentSpec:
    """Map ``name`` (+ an optional ``--model``) to an `AgentSpec` (`UnknownAgentError`)."""
    key = (name or "").strip()
    low = key.lower()
    if low in OFFLINE_AGENTS:
        return AgentSpec(low, low, model)
    if low in PROVIDER_DEFAULTS:
        return AgentSpec(low, low, model or PROVIDER_DEFAULTS[low])
    if low in ALIASES:
        kind, default = ALIASES[low]
        return AgentSpec(low, kind, model or default)
    for prefix, kind in MODEL_PREFIXES:
        if low.startswith(prefix) and len(low) > len(prefix):
            return AgentSpec(key, kind, model or key)
    if _O_SERIES.fullmatch(low):  # OpenAI reasoning models: o1, o3-mini, o4-mini, ...
        return AgentSpec(key, "openai", model or key)
    raise UnknownAgentError(key)


def parse_value(text: str) -> Any:
    """``true``/``false`` -> bool, then int, then float, else the string itself."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_config(pairs: Iterable[str], spec: AgentSpec | None = None) -> dict[str, Any]:
    """Turn ``key=value`` / ``agent.key=value`` strings into the selected agent's settings.

    A dotted key applies only when its prefix names the selected agent (its name or type);
    other sections are ignored. Malformed pairs raise `ValueError`.
    """
    names = {spec.name.lower(), spec.type} if spec is not None else set()
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--config expects key=value, got {pair!r}")
        if "." in key:
            section, _, key = key.partition(".")
            if not key:
                raise ValueError(f"--config expects key=value, got {pair!r}")
            if section.lower() not in names:
                continue
        out[key] = value if key in STRING_KEYS else parse_value(value)
    return out


def create_agent(
    name: str,
    *,
    model: str | None = None,
    config: Mapping[str, Any] | None = None,
    **settings: Any,
) -> Agent:
    """Build the agent called ``name``.

    ``config`` holds agent settings (``max_steps``, ``timeout_seconds``, ... and agent-specific
    keys: replay's ``trace``, ``jobs_dir``, ``local_dir``, ``execute_tools``, ``check_task``);
    ``settings`` are merged on top. Raises `UnknownAgentError`
    or `MissingKeyError` / an invalid-config `ValueError` for names it cannot build.
    """
    spec = resolve_agent(name, model)
    values = {**(config or {}), **settings}
    if not spec.offline:
        return _provider(spec, values, explicit_model=model is not None)
    base = AgentConfig.model_validate(_config_fields(values))
    if spec.type == "oracle":
        from hud.agents.offline import OracleAgent

        return OracleAgent(base)
    if spec.type == "nop":
        from hud.agents.offline import NopAgent

        return NopAgent(base)
    return _replay(values, base)


def _provider(spec: AgentSpec, values: Mapping[str, Any], *, explicit_model: bool) -> Agent:
    """A provider agent: ``values`` validated by its config class, the resolved model set.

    A ``model`` in ``values`` (``-c model=...``) wins over an alias's default model but not
    over an explicit ``model`` argument (``--model``). Missing credentials raise
    `hud.agents.tool_agent.MissingKeyError` (a `ValueError`, one line).
    """
    import importlib

    from pydantic import ValidationError

    module, class_name = PROVIDER_CLASSES[spec.type]
    cls = getattr(importlib.import_module(module), class_name)
    data = {k: v for k, v in values.items() if v is not None}
    if explicit_model or not data.get("model"):
        data["model"] = spec.model
    try:
        config = cls.config_cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValueError(f"invalid {spec.type} agent config: {problems}") from None
    return cls(config)


def _config_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    fields = AgentConfig.model_fields
    return {k: v for k, v in values.items() if k in fields and v is not None}


def _replay(values: Mapping[str, Any], base: AgentConfig) -> Agent:
    trace = values.get("trace")
    if trace in (None, "", True):
        raise ValueError(
            "the replay agent needs a trace to replay: pass -c trace=<trace id or trace file>"
        )
    from hud.agents.replay import ReplayAgent

    options = {k: values[k] for k in REPLAY_OPTIONS if values.get(k) is not None}
    for key in ("jobs_dir", "local_dir"):
        if key in options:
            options[key] = Path(options[key])
    return ReplayAgent(str(trace), config=base, **options)
