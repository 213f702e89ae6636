"""Names user scripts import from the official package resolve on ours too."""

from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path

from .helpers import PEER_PY, peer_environ, requires_peer

#: What scripts import from ``hud.agents.types`` in 0.6.21 (its own types and re-exports).
AGENT_TYPES = [
    "AgentConfig", "AgentStep", "Citation", "ClaudeAdaptiveThinkingConfig", "ClaudeCLIConfig",
    "ClaudeConfig", "ClaudeDisabledThinkingConfig", "ClaudeEffort", "ClaudeEnabledThinkingConfig",
    "ClaudeThinkingConfig", "CodexCLIConfig", "CodexReasoningEffort", "ContentBlock",
    "ContentResult", "GeminiConfig", "HostedTool", "ImageContent", "InferenceStep",
    "MCPToolCall", "MCPToolResult", "ObservationStep", "OpenAIChatConfig", "OpenAIConfig",
    "PngScreenshotEncoding", "ROBOT_STEP_SCHEMA", "RobotStepSource", "Sample",
    "ScreenshotEncoding", "StateFeature", "Step", "StepSource", "StopCondition", "SubagentStep",
    "TextContent", "ToolAgentConfig", "ToolStep", "Trace", "Usage", "VideoSegmentStep",
    "WebPScreenshotEncoding", "json_safe_value",
]  # fmt: skip


def test_agent_types_import_with_the_official_names() -> None:
    ours = importlib.import_module("hud.agents.types")
    missing = [name for name in AGENT_TYPES if not hasattr(ours, name)]
    assert not missing, f"hud.agents.types lacks {missing}"
    assert set(AGENT_TYPES) <= set(ours.__all__)
    assert ours.ROBOT_STEP_SCHEMA == "hud.robot.step.v1"
    assert ours.json_safe_value({"s": {1}, "b": b"x"}) == {"s": [1], "b": "x"}


@requires_peer[0]
@requires_peer[1]
def test_the_list_is_what_the_official_module_exports() -> None:
    """Each listed name exists in the official module (the list is not invented), and so do
    the field names of the data shapes kept only for compatibility."""
    script = "\n".join(
        [
            "import json, sys, hud.agents.types as t",
            "names = json.loads(sys.argv[1])",
            "fields = {n: sorted(getattr(t, n).model_fields) for n in names"
            " if hasattr(getattr(t, n, None), 'model_fields')}",
            "missing = [n for n in names if not hasattr(t, n)]",
            "print(json.dumps({'missing': missing, 'fields': fields}))",
        ]
    )
    proc = subprocess.run(
        [str(PEER_PY), "-c", script, json.dumps(AGENT_TYPES)],
        env=peer_environ(),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert theirs["missing"] == []
    ours = importlib.import_module("hud.agents.types")
    for name in ("Citation", "ContentResult", "Sample", "StateFeature", "InferenceStep",
                 "ObservationStep", "VideoSegmentStep", "CodexCLIConfig"):  # fmt: skip
        assert set(theirs["fields"][name]) <= set(getattr(ours, name).model_fields), name


ENV_PY = """from hud import Environment

env = Environment(name="msgs")


@env.template()
async def chat(word: str = "caf\\u00e9"):
    answer = yield [{"role": "user", "content": f"say {word} \\u2713"}]
    yield 1.0 if answer == word else 0.0
"""
TASKS_PY = "from env import chat\n\ntasks = [chat(), chat(word='na\\u00efve')]\n"


@requires_peer[0]
@requires_peer[1]
def test_task_cli_output_matches_the_official_cli(tmp_path: Path) -> None:
    """`hud task list --json` and `hud task start` (a list-of-messages prompt) print the same
    bytes as the official CLI (start/grade attached to one of our servers)."""
    import sys

    from .helpers import PEER_HUD, REPO, our_environ, start_server

    project = tmp_path / "project"
    project.mkdir()
    (project / "env.py").write_text(ENV_PY, encoding="utf-8")
    (project / "tasks.py").write_text(TASKS_PY, encoding="utf-8")

    def run(impl: str, *args: str) -> subprocess.CompletedProcess[str]:
        home = tmp_path / f"home-{impl}"
        (home / ".hud" / ".cache").mkdir(parents=True, exist_ok=True)
        env = peer_environ() if impl == "peer" else our_environ()
        env["HOME"] = str(home)
        if impl == "peer":
            cache = Path(peer_environ()["HOME"]) / ".hud" / ".cache" / "version_check.json"
            (home / ".hud" / ".cache" / "version_check.json").write_bytes(cache.read_bytes())
        argv = [str(PEER_HUD)] if impl == "peer" else [sys.executable, "-m", "hud"]
        return subprocess.run(
            [*argv, *args],
            cwd=project,
            env={**env, "PYTHONPATH": str(REPO)} if impl == "ours" else env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
        )

    server = start_server("ours", project / "env.py")
    outputs: dict[str, list[str]] = {}
    try:
        for impl in ("peer", "ours"):
            listed = run(impl, "task", "list", "--json")
            assert listed.returncode == 0, listed.stderr
            slug = json.loads(listed.stdout)[1]["slug"]
            started = run(impl, "task", "start", slug, "-s", ".", "--url", server.url)
            assert started.returncode == 0, started.stderr
            outputs[impl] = [listed.stdout, started.stdout]  # the server stop ends the task
    finally:
        server.stop()
    assert outputs["ours"] == outputs["peer"]
    assert outputs["ours"][1] == '[{"role": "user", "content": "say na\\u00efve \\u2713"}]\n'
