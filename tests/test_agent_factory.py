"""`hud.agents.factory`: names, aliases, --config parsing, building offline agents."""

from __future__ import annotations

from typing import Any

import pytest

from hud.agents import (
    NopAgent,
    OracleAgent,
    UnknownAgentError,
    agent_names,
    create_agent,
    resolve_agent,
)
from hud.agents.factory import parse_config, parse_value


@pytest.mark.parametrize(
    ("name", "kind", "model"),
    [
        ("oracle", "oracle", None),
        ("NOP", "nop", None),
        ("replay", "replay", None),
        ("claude", "claude", "claude-sonnet-4-6"),
        ("openai", "openai", "gpt-5.6"),
        ("gemini", "gemini", "gemini-3-pro-preview"),
        ("openai_compatible", "openai_compatible", "gpt-5.4-mini"),
        ("sonnet", "claude", "claude-sonnet-4-6"),
        ("opus", "claude", "claude-opus-4-8"),
        ("haiku", "claude", "claude-haiku-4-5"),
        ("claude-opus-4-1", "claude", "claude-opus-4-1"),
        ("gpt-5.5", "openai", "gpt-5.5"),
        ("gemini-3.1-pro", "gemini", "gemini-3.1-pro"),
    ],
)
def test_resolve_agent(name: str, kind: str, model: str | None) -> None:
    spec = resolve_agent(name)
    assert (spec.type, spec.model) == (kind, model)
    assert spec.offline == (kind in ("oracle", "nop", "replay"))


def test_model_flag_overrides_default() -> None:
    assert resolve_agent("claude", "claude-opus-4-8").model == "claude-opus-4-8"
    assert resolve_agent("sonnet", "x").model == "x"
    assert resolve_agent("oracle", "m").model == "m"


@pytest.mark.parametrize("name", ["gpt4all", "", "claude-", "llama", "oracles"])
def test_unknown_agent(name: str) -> None:
    with pytest.raises(UnknownAgentError) as info:
        resolve_agent(name)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"Invalid agent: {name}. Must be one of: oracle, nop, replay")
    for known in agent_names():
        assert known in str(info.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("False", False),
        ("yes", True),
        ("off", False),
        ("3", 3),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("hello", "hello"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_parse_value(text: str, value: Any) -> None:
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_parse_config_sections() -> None:
    spec = resolve_agent("sonnet")
    pairs = [
        "temperature=0.2",
        "claude.max_tokens=100",
        "sonnet.thinking=true",
        "openai.max_output_tokens=7",
        "system_prompt=be brief",
        "model=123",
        "trace=1e5",
        "x=a=b",
    ]
    assert parse_config(pairs, spec) == {
        "temperature": 0.2,
        "max_tokens": 100,
        "thinking": True,
        "system_prompt": "be brief",
        "model": "123",
        "trace": "1e5",  # ids stay strings
        "x": "a=b",
    }
    assert parse_config([], spec) == {}
    for bad in ("novalue", "=1", "claude.=1"):
        with pytest.raises(ValueError, match="key=value"):
            parse_config([bad], spec)


def test_create_offline_agents() -> None:
    oracle = create_agent("oracle", max_steps=7, config={"timeout_seconds": 2, "unknown": 1})
    assert isinstance(oracle, OracleAgent)
    assert oracle.config.max_steps == 7 and oracle.config.timeout_seconds == 2
    nop = create_agent("nop")
    assert isinstance(nop, NopAgent) and nop.config.max_steps == 10
    # config objects are not shared between agents
    assert create_agent("nop", max_steps=3).config.max_steps == 3
    assert create_agent("nop").config.max_steps == 10


@pytest.mark.parametrize("name", ["claude", "openai", "gemini", "openai_compatible", "opus"])
def test_provider_agents_need_their_key(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Provider agents are built (tests/agents); without a key: one line naming it."""
    for variable in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "HUD_API_KEY"):
        monkeypatch.setenv(variable, "")
    with pytest.raises(ValueError) as info:
        create_agent(name)
    assert "is not set: run `hud set " in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_agent_from_create() -> None:
    with pytest.raises(UnknownAgentError):
        create_agent("nobody")


def test_replay_needs_a_trace() -> None:
    with pytest.raises(ValueError, match="-c trace="):
        create_agent("replay")
    with pytest.raises(ValueError, match="0000dead"):
        create_agent("replay", config={"trace": "0000dead", "jobs_dir": "/nonexistent"})


def test_replay_from_a_trace_file(tmp_path: Any) -> None:
    import json

    from hud.agents.replay import ReplayAgent

    path = tmp_path / "t.jsonl"
    header = {"type": "trace", "trace_id": "abc", "task_id": "shout", "content": "HI"}
    step = {"type": "step", "source": "agent", "content": "HI", "step_id": 1}
    path.write_text(json.dumps(header) + "\n" + json.dumps(step) + "\n")
    agent = create_agent("replay", config={"trace": str(path), "check_task": False}, max_steps=4)
    assert isinstance(agent, ReplayAgent)
    assert agent.check_task is False and agent.config.max_steps == 4
