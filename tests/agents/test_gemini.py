"""GeminiAgent against a fake Gemini generateContent server, via google-genai."""

from __future__ import annotations

from pathlib import Path

from hud.agents.gemini import GeminiAgent, GeminiConfig
from hud.eval.trace import AgentStep, ToolStep
from tests.agents.conftest import SECRET, run_task
from tests.agents.fakes import Call, Fail, FakeProvider, Reply


def gemini(fake: FakeProvider, **kw: object) -> GeminiAgent:
    config = {"base_url": fake.url, "api_key": SECRET, "retry_base_delay": 0.01}
    return GeminiAgent(GeminiConfig(**{**config, **kw}))


async def test_function_call_rollout(fake: FakeProvider, shell_env, workspace: Path, seen) -> None:
    fake.script = [
        Reply(
            reasoning="need a file",
            calls=[Call("run_shell_command", {"command": "echo hi > out.txt && cat out.txt"})],
        ),
        Reply(text="hi"),
    ]
    run = await run_task(
        shell_env, gemini(fake, system_prompt="Use the shell.", thinking_level="low")
    )
    assert run.reward == 1.0 and run.status == "completed"
    assert seen.files["out.txt"] == "hi\n"
    first, second = fake.bodies(":generateContent")
    assert (
        fake.requests[0].path.split("?")[0].endswith("/models/gemini-3-pro-preview:generateContent")
    )
    assert fake.requests[0].headers["x-goog-api-key"] == SECRET
    names = [f["name"] for f in first["tools"][0]["functionDeclarations"]]
    assert names == [
        "run_shell_command",
        "replace",
        "write_file",
        "read_file",
        "grep_search",
        "glob",
        "list_directory",
    ]
    gen = first["generationConfig"]
    assert (gen["temperature"], gen["topP"], gen["topK"], gen["maxOutputTokens"]) == (
        1.0,
        0.95,
        40,
        8192,
    )
    thinking = gen.get("thinkingConfig") or gen["thinking_config"]
    # the SDK sends some nested keys in proto (snake_case) form; the API accepts both
    assert {k.replace("_", "").lower(): v for k, v in thinking.items()} == {
        "includethoughts": True,
        "thinkinglevel": "LOW",
    }
    assert first["systemInstruction"]["parts"] == [{"text": "Use the shell."}]
    model_turn, results = second["contents"][1:]
    assert model_turn["role"] == "model"
    assert model_turn["parts"][1]["thoughtSignature"] == "c2ln"  # signatures go back
    assert results == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "name": "run_shell_command",
                    "response": {"output": "$ echo hi > out.txt && cat out.txt\nhi\n(exit 0)"},
                }
            }
        ],
    }
    turns = [s for s in run.trace.steps if isinstance(s, AgentStep)]
    assert turns[0].reasoning == "need a file" and turns[0].usage.prompt_tokens == 21
    assert [s.call.name for s in run.trace.steps if isinstance(s, ToolStep)] == [
        "run_shell_command"
    ]


async def test_malformed_function_call_is_fed_back(fake: FakeProvider, shell_env) -> None:
    fake.script = [Reply(finish="malformed"), Reply(text="4")]
    run = await run_task(shell_env, gemini(fake), "ask")
    assert run.reward == 1.0
    note = fake.bodies()[1]["contents"][-1]
    assert note["role"] == "user" and "Re-issue the call in full." in note["parts"][0]["text"]


async def test_malformed_function_call_can_stop_the_run(fake: FakeProvider, shell_env) -> None:
    fake.script = [Reply(finish="malformed")]
    run = await run_task(shell_env, gemini(fake, stop_on={"malformed_tool_call"}), "ask")
    assert run.trace.stop_reason == "malformed_tool_call" and len(fake.requests) == 1


async def test_resource_exhausted_then_success(fake: FakeProvider, shell_env) -> None:
    fake.script = [Fail(429, "quota"), Reply(text="4")]
    run = await run_task(shell_env, gemini(fake), "ask")
    assert run.reward == 1.0
    (step,) = [s for s in run.trace.steps if isinstance(s, AgentStep)]
    assert step.extra["retries"][0]["status"] == 429


async def test_unauthenticated(fake: FakeProvider, shell_env) -> None:
    fake.script = [Fail(401, "API key not valid")]
    run = await run_task(shell_env, gemini(fake), "ask")
    assert run.status == "error" and len(fake.requests) == 1
    assert "HTTP 401" in run.trace.error
