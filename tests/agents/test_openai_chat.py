"""OpenAIChatAgent against a fake Chat Completions server, through the official openai SDK."""

from __future__ import annotations

import json
from pathlib import Path

from hud.agents.openai_chat import OpenAIChatAgent, OpenAIChatConfig
from hud.eval.trace import AgentStep, ToolStep
from tests.agents.conftest import run_task
from tests.agents.fakes import Call, FakeProvider, Reply


def chat_agent(fake: FakeProvider, **kw: object) -> OpenAIChatAgent:
    config = {"base_url": f"{fake.url}/v1", "model": "local-model", "retry_base_delay": 0.01}
    return OpenAIChatAgent(OpenAIChatConfig(**{**config, **kw}))


async def test_rollout_runs_the_command_in_the_workspace(
    fake: FakeProvider, shell_env, seen
) -> None:
    fake.script = [
        Reply(calls=[Call("bash", {"command": "echo hi > out.txt && cat out.txt"}, id="c1")]),
        Reply(text="hi", usage=(40, 2)),
    ]
    run = await run_task(shell_env, chat_agent(fake))

    assert run.reward == 1.0
    assert run.status == "completed" and run.trace.stop_reason == "done"
    assert seen.files["out.txt"] == "hi\n"  # the command really ran
    first, second = fake.bodies("/chat/completions")
    assert first["model"] == "local-model" and first["stream"] is False
    assert [t["function"]["name"] for t in first["tools"]] == [
        "bash",
        "read",
        "glob",
        "grep",
        "edit",
        "write",
    ]
    # the command's output went back to the model as the tool message
    tool_msg = second["messages"][-1]
    assert tool_msg == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "$ echo hi > out.txt && cat out.txt\nhi\n(exit 0)",
    }
    assert second["messages"][1]["tool_calls"][0]["function"]["name"] == "bash"
    # the trace holds every turn, call and result, with token usage
    sources = [s.source for s in run.trace.steps]
    assert sources == ["task", "user", "agent", "tool", "agent", "task"]
    turn1, call, turn2 = run.trace.steps[2:5]
    assert isinstance(turn1, AgentStep) and turn1.tool_calls[0].arguments == {
        "command": "echo hi > out.txt && cat out.txt"
    }
    assert turn1.usage is not None and turn1.usage.prompt_tokens == 21
    assert turn1.usage.cached_tokens == 2 and turn1.finish_reason == "tool_calls"
    assert isinstance(call, ToolStep) and call.result is not None
    assert call.result.text.endswith("hi\n(exit 0)") and not call.result.isError
    assert isinstance(turn2, AgentStep) and turn2.content == "hi" and turn2.done
    assert turn2.usage is not None and turn2.usage.prompt_tokens == 40
    assert run.trace.content == "hi"


async def test_request_shape_system_prompt_and_completion_kwargs(
    fake: FakeProvider, shell_env
) -> None:
    fake.script = [Reply(text="4")]
    agent = chat_agent(
        fake,
        system_prompt="Be terse.",
        temperature=0.25,
        max_tokens=77,
        completion_kwargs={"top_p": 0.5, "seed": 7},
        checkpoint="ckpt-42",
    )
    run = await run_task(shell_env, agent, "ask")
    assert run.reward == 1.0
    (body,) = fake.bodies()
    assert body["model"] == "ckpt-42"
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert body["messages"][1] == {
        "role": "user",
        "content": [{"type": "text", "text": "What is 2+2?"}],
    }
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["seed"]) == (
        0.25,
        77,
        0.5,
        7,
    )


async def test_no_key_is_sent_to_a_custom_server(
    fake: FakeProvider, shell_env, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key-do-not-leak")
    fake.script = [Reply(text="4")]
    await run_task(shell_env, chat_agent(fake), "ask")
    assert fake.requests[0].headers["authorization"] == "Bearer EMPTY"
    # an explicit key (or api_key_env) is sent
    monkeypatch.setenv("VLLM_KEY", "vllm-token-123")
    fake.script = [Reply(text="4")]
    await run_task(shell_env, chat_agent(fake, api_key_env="VLLM_KEY"), "ask")
    assert fake.requests[1].headers["authorization"] == "Bearer vllm-token-123"


async def test_file_tools_through_the_model(
    fake: FakeProvider, shell_env, workspace: Path, seen
) -> None:
    (workspace / "pkg" / "sub").mkdir(parents=True)
    (workspace / "pkg" / "a.py").write_text("x = 1\n")
    (workspace / "pkg" / "sub" / "b.py").write_text("y = 2\n")
    (workspace / "notes.txt").write_text("".join(f"match {i}\n" for i in range(250)))
    fake.script = [
        Reply(
            calls=[
                Call("write", {"filePath": "new/hello.txt", "content": "one\ntwo\nthree\n"}),
                Call("read", {"filePath": "new/hello.txt", "offset": 1, "limit": 1}),
                Call("edit", {"filePath": "new/hello.txt", "oldString": "two", "newString": "2"}),
                Call("glob", {"pattern": "**/*.py"}),
                Call("grep", {"pattern": "match [0-9]+", "include": "*.txt"}),
                Call("edit", {"filePath": "new/hello.txt", "oldString": "zzz", "newString": "q"}),
            ]
        ),
        Reply(text="done"),
    ]
    run = await run_task(shell_env, chat_agent(fake), "ask")
    assert run.status == "completed"
    assert seen.files["new/hello.txt"] == "one\n2\nthree\n"
    tool_msgs = [m for m in fake.bodies()[1]["messages"] if m["role"] == "tool"]
    wrote, read, edited, globbed, grepped, failed = (m["content"] for m in tool_msgs)
    assert "wrote 14 bytes" in wrote
    assert read.startswith("     2\ttwo") and "more lines" in read
    assert "replaced 1 occurrence" in edited
    assert globbed.splitlines() == ["pkg/a.py", "pkg/sub/b.py"]  # ** recurses (G33)
    lines = grepped.splitlines()
    assert len(lines) == 201 and lines[-1] == "[50 more matching lines omitted]"  # capped
    assert lines[0].endswith("notes.txt:1:match 0")
    assert failed.startswith("tool error: the text to replace was not found")
    steps = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert [s.call.name for s in steps] == ["write", "read", "edit", "glob", "grep", "edit"]
    assert steps[-1].result is not None and steps[-1].result.isError


async def test_image_results_follow_as_a_user_message(fake: FakeProvider, shell_env) -> None:
    """A tool result with an image: text in the tool message, the image after it."""
    from hud.agents.openai_chat import ChatConversation
    from hud.agents.tool_agent import ModelReply, ToolCallRequest
    from hud.agents.tools.base import image_result

    convo = ChatConversation.__new__(ChatConversation)
    convo.messages = []
    call = ToolCallRequest(id="c9", name="shot", arguments={})
    convo.add_results(ModelReply(), [(call, image_result(b"PNGDATA", "image/png", "screen"))])
    assert convo.messages[0] == {"role": "tool", "tool_call_id": "c9", "content": "screen"}
    image = convo.messages[1]["content"][1]["image_url"]["url"]
    assert image.startswith("data:image/png;base64,") and convo.messages[1]["role"] == "user"
    assert json.dumps(convo.messages)
