"""Project defaults for `hud eval` (`.hud_eval.toml`, `[tool.hud]`), through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hud.eval.project_config import (
    ProjectConfigError,
    find_project_config,
    load_project_config,
)
from tests.agents.fakes import FakeProvider, Recorded
from tests.agents.test_cli_agents import count_answers


@pytest.fixture
def project(demo_project: Path, tmp_path: Path) -> Path:
    """A private copy of the `hud init demo` scaffold's parent directory."""
    shutil.copytree(demo_project, tmp_path / "demo")
    return tmp_path


def _system_and_model(request: Recorded) -> tuple[str | None, str]:
    messages = request.body["messages"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    return system, request.body["model"]


def test_agent_sections_and_eval_defaults_reach_the_agent(
    project: Path, run_hud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROJECT_PROMPT", "Count carefully.")
    with FakeProvider(handler=count_answers) as fake:
        (project / ".hud_eval.toml").write_text(
            "[eval]\n"
            'source = "demo/tasks.py"\n'
            'agent = "openai_compatible"\n'
            'model = "file-model"\n'
            "all = true\n"
            "max_concurrent = 1\n"
            "[agent]\n"
            "temperature = 0.25\n"
            'system_prompt = "${PROJECT_PROMPT}"\n'
            "[openai_compatible]\n"
            f'base_url = "http://127.0.0.1:{fake.port}/v1"\n'
            "[claude]\n"
            "temperature = 0.75\n"
        )
        proc = run_hud("eval", "--json", cwd=project, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "using defaults from .hud_eval.toml" in proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["run_count"] == 2 and doc["mean_reward"] == 1.0, doc
        assert len(fake.requests) == 2
        for request in fake.requests:
            assert _system_and_model(request) == ("Count carefully.", "file-model")
            assert request.body["temperature"] == 0.25  # [agent], not [claude]

        # Flags win over the file.
        fake.requests.clear()
        proc = run_hud(
            "eval",
            "demo/tasks.py",
            "openai_compatible",
            *("-m", "cli-model", "-c", "temperature=0.5", "--task-ids", "0", "--json"),
            cwd=project,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["run_count"] == 1
        (request,) = fake.requests
        assert _system_and_model(request) == ("Count carefully.", "cli-model")
        assert request.body["temperature"] == 0.5


def test_pyproject_tool_hud_table(project: Path, run_hud) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.hud.eval]\nsource = "demo/tasks.py"\nagent = "nop"\n'
        "group_size = 2\ntask_ids = [0]\n"
    )
    proc = run_hud("eval", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["run_count"] == 2 and doc["mean_reward"] == 0.0, doc
    assert len({run["slug"] for run in doc["runs"]}) == 1


def test_invalid_files_are_one_line_errors(project: Path, run_hud) -> None:
    config = project / ".hud_eval.toml"
    config.write_text("[eval\nagent = 'oracle'\n")
    proc = run_hud("eval", "demo/tasks.py", "oracle", cwd=project)
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[0]
    assert line.startswith("Error: .hud_eval.toml: invalid TOML"), proc.stderr
    assert "Traceback" not in proc.stderr

    config.write_text('[eval]\nmax_concurrent = "many"\n')
    proc = run_hud("eval", "demo/tasks.py", "oracle", cwd=project)
    assert proc.returncode == 1
    assert "[eval] max_concurrent must be an integer, got 'many'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_keys_warn_and_the_run_goes_on(project: Path, run_hud) -> None:
    (project / ".hud_eval.toml").write_text('[eval]\nagnet = "claude"\nagent = "oracle"\n')
    proc = run_hud("eval", "demo/tasks.py", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "[eval] key 'agnet' ignored" in proc.stderr
    assert json.loads(proc.stdout)["mean_reward"] == 1.0


def test_library_reader(tmp_path: Path) -> None:
    assert find_project_config(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_project_config(tmp_path) is None  # no [tool.hud]: not a project config
    path = tmp_path / ".hud_eval.toml"
    path.write_text(
        '[eval]\ngroup = 3\ntask_ids = ["a", 2]\n'
        '[agent]\napi_key = "${KEY}"\nbase_url = "http://${HOST}:1/v1"\n'
        "[Claude]\ntemperature = 0.1\n"
    )
    assert find_project_config(tmp_path) == path
    values = {"KEY": "k-1"}
    config = load_project_config(path, lookup=values.get)
    assert config.eval == {"group_size": 3, "task_ids": ["a", 2]}
    assert config.task_ids == "a,2"
    assert config.agent_settings(["claude"]) == {
        "api_key": "k-1",
        "base_url": "http://:1/v1",  # unset variables are empty, as in the reference
        "temperature": 0.1,
    }
    assert config.agent_settings(["openai"]) == {"api_key": "k-1", "base_url": "http://:1/v1"}
    path.write_text("[eval]\nmax_steps = 0\n")
    with pytest.raises(ProjectConfigError, match="max_steps must be > 0"):
        load_project_config(path, lookup=values.get)
    path.write_text("[eval]\nall = 1\n")
    with pytest.raises(ProjectConfigError, match="all must be true or false"):
        load_project_config(path, lookup=values.get)
