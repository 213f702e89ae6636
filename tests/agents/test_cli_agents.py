"""`hud eval … openai_compatible` end to end (a CLI subprocess) against a fake local server."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.agents.fakes import FakeProvider, Recorded, Reply


def count_answers(request: Recorded) -> Reply:
    """Answer the demo's counting prompt correctly (as a good model would)."""
    prompt = request.body["messages"][-1]["content"][0]["text"]
    match = re.search(r"does '(.)' appear in: '(.*)'\?", prompt)
    assert match, prompt
    letter, sentence = match.groups()
    return Reply(text=str(sentence.lower().count(letter.lower())))


def test_hud_eval_openai_compatible_against_a_local_server(
    demo_project: Path, run_hud, tmp_path: Path
) -> None:
    with FakeProvider(handler=count_answers) as fake:
        proc = run_hud(
            "eval",
            "demo/tasks.py",
            "openai_compatible",
            "-c",
            f"base_url=http://127.0.0.1:{fake.port}/v1",
            "-c",
            "temperature=0.5",
            "-m",
            "some-model",
            "--all",
            "--json",
            "--jobs-dir",
            str(tmp_path / "jobs"),
            cwd=demo_project.parent,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    text = json.dumps(result)
    assert len(fake.requests) == 2
    for request in fake.requests:
        assert request.path == "/v1/chat/completions"
        assert request.body["model"] == "some-model" and request.body["temperature"] == 0.5
        assert request.headers["authorization"] == "Bearer EMPTY"
    rewards = re.findall(r'"reward": ([0-9.]+)', text)
    assert rewards and all(float(r) == 1.0 for r in rewards), text


def test_hud_eval_missing_key_is_one_line(demo_project: Path, run_hud, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    proc = run_hud("eval", "demo/tasks.py", "claude", cwd=demo_project.parent)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "Error: ANTHROPIC_API_KEY is not set: run `hud set ANTHROPIC_API_KEY=...` or export it"
    ]
