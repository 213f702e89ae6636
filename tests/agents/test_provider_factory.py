"""`create_agent` for provider agents: names, aliases, models, configs and keys."""

from __future__ import annotations

import pytest

from hud.agents import (
    ClaudeAgent,
    GeminiAgent,
    MissingKeyError,
    OpenAIAgent,
    OpenAIChatAgent,
    create_agent,
    resolve_agent,
)
from tests.agents.conftest import SECRET


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, f"{name}-value")


@pytest.mark.parametrize(
    ("name", "cls", "model"),
    [
        ("claude", ClaudeAgent, "claude-sonnet-4-6"),
        ("sonnet", ClaudeAgent, "claude-sonnet-4-6"),
        ("opus", ClaudeAgent, "claude-opus-4-8"),
        ("haiku", ClaudeAgent, "claude-haiku-4-5"),
        ("claude-haiku-4-5", ClaudeAgent, "claude-haiku-4-5"),
        ("openai", OpenAIAgent, "gpt-5.6"),
        ("gpt-5.5", OpenAIAgent, "gpt-5.5"),
        ("o4-mini", OpenAIAgent, "o4-mini"),
        ("o3", OpenAIAgent, "o3"),
        ("gemini", GeminiAgent, "gemini-3-pro-preview"),
        ("gemini-2.5-flash", GeminiAgent, "gemini-2.5-flash"),
        ("openai_compatible", OpenAIChatAgent, "gpt-5.4-mini"),
    ],
)
def test_names_map_to_agent_and_default_model(keys: None, name: str, cls: type, model: str) -> None:
    agent = create_agent(name)
    assert type(agent) is cls and agent.config.model == model


def test_model_and_config_reach_the_agent(keys: None) -> None:
    agent = create_agent(
        "openai_compatible",
        model="qwen3",
        config={"base_url": "http://127.0.0.1:9/v1", "temperature": 0.3, "system_prompt": "hi"},
        max_steps=4,
    )
    cfg = agent.config
    assert (cfg.model, cfg.base_url, cfg.temperature, cfg.system_prompt, cfg.max_steps) == (
        "qwen3",
        "http://127.0.0.1:9/v1",
        0.3,
        "hi",
        4,
    )
    # -c model=... beats an alias default; --model beats both
    assert create_agent("sonnet", config={"model": "claude-x"}).config.model == "claude-x"
    assert create_agent("sonnet", model="claude-y", config={"model": "x"}).config.model == (
        "claude-y"
    )
    claude = create_agent("claude", config={"max_tokens": 99, "unknown_key": 1})
    assert claude.config.max_tokens == 99 and claude.config.tool_timeout_seconds == 120


def test_invalid_config_is_one_line(keys: None) -> None:
    with pytest.raises(ValueError) as info:
        create_agent("claude", config={"max_tokens": "lots"})
    assert "invalid claude agent config: max_tokens" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("gemini", "GEMINI_API_KEY"),
        ("gpt-5.6", "OPENAI_API_KEY"),
        ("openai_compatible", "OPENAI_API_KEY"),
    ],
)
def test_each_provider_asks_only_for_its_own_key(
    monkeypatch: pytest.MonkeyPatch, name: str, variable: str
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a")
    with pytest.raises(MissingKeyError) as info:
        create_agent(name)
    assert str(info.value) == f"{variable} is not set: run `hud set {variable}=...` or export it"


def test_openai_compatible_with_base_url_needs_no_key() -> None:
    agent = create_agent("openai_compatible", config={"base_url": "http://127.0.0.1:9/v1"})
    assert isinstance(agent, OpenAIChatAgent)


def test_api_key_is_secret_in_reprs_and_dumps() -> None:
    agent = create_agent("claude", config={"api_key": SECRET})
    assert SECRET not in repr(agent) and SECRET not in repr(agent.config)
    assert SECRET not in agent.config.model_dump_json()
    assert agent.config.api_key.get_secret_value() == SECRET


def test_offline_names_unchanged() -> None:
    assert resolve_agent("oracle").type == "oracle"
    assert resolve_agent("o3-mini").type == "openai"
    with pytest.raises(ValueError):
        resolve_agent("ollama")
