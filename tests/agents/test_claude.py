"""ClaudeAgent against a fake Anthropic Messages server (SSE streaming), via the anthropic SDK."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hud.agents import create_agent
from hud.agents.claude import ClaudeAgent, ClaudeConfig
from hud.agents.tool_agent import MissingKeyError
from hud.eval.trace import AgentStep, ToolStep
from tests.agents.conftest import SECRET, run_task
from tests.agents.fakes import Call, Fail, FakeProvider, Reply


def claude(fake: FakeProvider, **kw: object) -> ClaudeAgent:
    config = {"base_url": fake.url, "api_key": SECRET, "retry_base_delay": 0.01}
    return ClaudeAgent(ClaudeConfig(**{**config, **kw}))


def sent_key(headers: dict[str, str]) -> str | None:
    """The key a request carried (``x-api-key`` or a bearer token, as the SDK chooses)."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else None)


def agent_steps(run) -> list[AgentStep]:
    return [s for s in run.trace.steps if isinstance(s, AgentStep)]


async def test_streamed_rollout_with_bash(
    fake: FakeProvider, shell_env, workspace: Path, seen
) -> None:
    fake.script = [
        Reply(
            reasoning="I should write the file.",
            text="Writing it.",
            calls=[Call("bash", {"command": "echo hi > out.txt && cat out.txt"}, id="tu1")],
        ),
        Reply(text="hi"),
    ]
    run = await run_task(shell_env, claude(fake))

    assert run.reward == 1.0 and run.status == "completed"
    assert seen.files["out.txt"] == "hi\n"
    first, second = fake.bodies("/messages")
    assert first["stream"] is True  # the SDK streams (SSE) and we read the final message
    assert first["model"] == "claude-sonnet-4-6" and first["max_tokens"] == 16384
    assert first["tools"] == [
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    ]
    assert sent_key(fake.requests[0].headers) == SECRET
    assistant, results = second["messages"][1:]
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "I should write the file.",
        "signature": "sig",
    }  # thinking goes back with its signature
    assert results == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "tu1",
                "content": [
                    {"type": "text", "text": "$ echo hi > out.txt && cat out.txt\nhi\n(exit 0)"}
                ],
                "is_error": False,
            }
        ],
    }
    turn1, turn2 = agent_steps(run)
    assert turn1.reasoning == "I should write the file." and turn1.content == "Writing it."
    assert turn1.finish_reason == "tool_use" and turn1.usage.completion_tokens == 9
    assert turn2.content == "hi" and turn2.finish_reason == "end_turn"
    (tool,) = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert tool.call.id == "tu1" and tool.result.text.endswith("(exit 0)")


async def test_text_editor_tool(fake: FakeProvider, shell_env, seen) -> None:
    ed = "str_replace_based_edit_tool"
    fake.script = [
        Reply(
            calls=[
                Call(ed, {"command": "create", "path": "doc.md", "file_text": "a\nb\nc\n"}),
                Call(
                    ed, {"command": "str_replace", "path": "doc.md", "old_str": "b", "new_str": "B"}
                ),
                Call(
                    ed,
                    {"command": "insert", "path": "doc.md", "insert_line": 1, "insert_text": "x"},
                ),
                Call(ed, {"command": "view", "path": "doc.md", "view_range": [2, 3]}),
                Call(ed, {"command": "undo_edit", "path": "doc.md"}),
            ]
        ),
        Reply(text="4"),
    ]
    run = await run_task(shell_env, claude(fake, stream=False), "ask")
    assert run.reward == 1.0
    assert seen.files["doc.md"] == "a\nx\nB\nc\n"
    assert "stream" not in fake.bodies()[0]
    results = fake.bodies()[1]["messages"][-1]["content"]
    texts = [r["content"][0]["text"] for r in results]
    assert texts[3].splitlines()[:2] == ["     2\tx", "     3\tB"]
    assert results[4]["is_error"] is True and "unknown command 'undo_edit'" in texts[4]


def test_missing_key_is_one_line_naming_the_variable(monkeypatch) -> None:
    with pytest.raises(MissingKeyError) as info:
        create_agent("claude")
    message = str(info.value)
    assert "\n" not in message
    assert "ANTHROPIC_API_KEY" in message and "hud set ANTHROPIC_API_KEY=" in message
    # selecting Claude never asks for the OpenAI key
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-key")
    agent = create_agent("sonnet")
    assert isinstance(agent, ClaudeAgent) and agent.config.model == "claude-sonnet-4-6"


async def test_key_from_user_settings_file_never_reaches_trace_or_logs(
    fake: FakeProvider, shell_env, all_logs
) -> None:
    import hud.settings

    hud.settings.write_user_settings({"ANTHROPIC_API_KEY": SECRET})
    hud.settings.reload()
    fake.script = [
        Fail(429, "slow down"),
        Fail(401, f"invalid x-api-key {SECRET}"),  # a provider echoing the key
    ]
    agent = create_agent("claude", config={"base_url": fake.url, "retry_base_delay": 0.01})
    assert SECRET not in repr(agent) and SECRET not in repr(agent.config)
    run = await run_task(shell_env, agent, "ask")
    assert sent_key(fake.requests[0].headers) == SECRET  # the key was used
    dumped = run.trace.model_dump_json()
    assert run.status == "error" and "HTTP 401" in (run.trace.error or "")
    assert SECRET not in dumped
    assert SECRET not in all_logs.text
    assert "***" in run.trace.error


async def test_401_fails_the_rollout_without_retrying(fake: FakeProvider, shell_env) -> None:
    fake.script = [Fail(401, "invalid x-api-key")]
    run = await run_task(shell_env, claude(fake), "ask")
    assert len(fake.requests) == 1
    assert run.status == "error"
    (step,) = agent_steps(run)
    assert step.error == "anthropic model call failed: HTTP 401: invalid x-api-key"
    assert run.grade is not None and run.reward == 0.0  # still graded, best effort


async def test_429_then_success_is_retried_and_recorded(fake: FakeProvider, shell_env) -> None:
    fake.script = [
        Fail(429, "rate limited", {"retry-after": "0"}),
        Fail(529, "overloaded"),
        Reply(text="4"),
    ]
    run = await run_task(shell_env, claude(fake), "ask")
    assert run.reward == 1.0 and run.status == "completed"
    assert len(fake.requests) == 3
    (step,) = agent_steps(run)
    retries = step.extra["retries"]
    assert [r["status"] for r in retries] == [429, 529]
    assert retries[0]["error"] == "HTTP 429: rate limited"


async def test_500_exhausted_ends_the_rollout_with_error(fake: FakeProvider, shell_env) -> None:
    fake.script = [Fail(500, "boom")] * 3
    run = await run_task(shell_env, claude(fake, max_retries=2), "ask")
    assert len(fake.requests) == 3
    assert run.status == "error"
    (step,) = agent_steps(run)
    assert step.error == "anthropic model call failed: HTTP 500: boom (gave up after 3 attempts)"
    assert len(step.extra["retries"]) == 2


async def test_context_overflow_stops_with_length(fake: FakeProvider, shell_env) -> None:
    fake.script = [
        Reply(text="thinking out loud", calls=[Call("bash", {"command": "echo 4"})]),
        Fail(400, "prompt is too long: 250000 tokens > 200000 maximum"),
    ]
    run = await run_task(shell_env, claude(fake), "ask")
    assert run.status == "completed" and run.trace.stop_reason == "length"
    assert agent_steps(run)[-1].extra["context_overflow"].startswith("HTTP 400: prompt is too long")
    assert run.trace.content == "thinking out loud"


async def test_tool_use_cut_by_max_tokens_is_malformed(fake: FakeProvider, shell_env) -> None:
    fake.script = [
        Reply(calls=[Call("bash", raw='{"command": "echo', id="cut")], finish="length"),
        Reply(text="4"),
    ]
    run = await run_task(shell_env, claude(fake), "ask")
    results = fake.bodies()[1]["messages"][-1]["content"]
    assert results[0]["is_error"] is True
    assert "Re-issue the call in full." in results[0]["content"][0]["text"]
    assert run.reward == 1.0 and run.trace.stop_reason == "done"
    assert list(agent_steps(run)[0].extra["unparsed_arguments"]) == ["cut"]


def test_logs_are_quiet_about_keys(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    agent = ClaudeAgent(ClaudeConfig(api_key=SECRET))
    logging.getLogger("hud").debug("agent %r", agent)
    assert SECRET not in caplog.text
