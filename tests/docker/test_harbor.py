"""Harbor task directories run directly: `hud eval <dataset> oracle|nop`, the reward contract,
timeouts, failures with stable codes, and cleanup when a container dies mid-rollout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, labelled_containers

from hud.agents.base import Agent
from hud.agents.offline import NopAgent, OracleAgent
from hud.eval.runtimes.docker import docker_client, owner_id
from hud.eval.sources import load_source
from hud.integrations.harbor import CODES, HarborRuntime, adapt, parse_rewards
from hud.integrations.harbor.trial import RewardError
from tests.conftest import hud_env

TASKS = Path(__file__).resolve().parent / "harbor_tasks"
SHAPES = sorted(p.name for p in TASKS.iterdir() if p.is_dir())


def hud_eval(home: Path, *args: str, timeout: float = 300) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "hud", "eval", *args, "--yes", "--json"],
        cwd=REPO,
        env=hud_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize(("agent", "expected"), [("oracle", 1.0), ("nop", 0.0)])
def test_every_shape_through_hud_eval(
    base_image: str, tmp_path: Path, agent: str, expected: float
) -> None:
    assert len(SHAPES) >= 6
    out = hud_eval(
        tmp_path, str(TASKS), agent, "--all", "--max-concurrent", "4",
        "--jobs-dir", str(tmp_path / "jobs"),
    )  # fmt: skip
    rewards = {run["slug"]: run["reward"] for run in out["runs"]}
    assert rewards == dict.fromkeys(SHAPES, expected), out["runs"]
    assert out["error_count"] == 0
    assert not labelled_containers(), "trial containers outlived hud eval"


def test_single_task_dir_and_record_keeps_verifier_output(base_image: str, tmp_path: Path) -> None:
    out = hud_eval(
        tmp_path, str(TASKS / "multi-metric"), "oracle", "--jobs-dir", str(tmp_path / "jobs")
    )
    assert [r["reward"] for r in out["runs"]] == [1.0]
    trace = next((tmp_path / "jobs").glob("*/traces/*.jsonl")).read_text()
    assert '"sum_correct":1.0' in trace.replace(" ", "") and "sum=1 max=1" in trace


async def test_multi_metric_rewards_kept(base_image: str) -> None:
    result = adapt(TASKS)
    taskset = result.taskset.filter(["multi-metric", "legacy-tb"])
    job = await taskset.run(OracleAgent(), max_concurrent=2)
    grades = {run.slug: run.grade for run in job.runs}
    info = grades["multi-metric"].info
    assert info["rewards"] == {
        "reward": 1.0,
        "sum_correct": 1.0,
        "max_correct": 1.0,
        "files_checked": 2.0,
    }
    assert info["reward_file"] == "/logs/verifier/reward.json"
    assert info["exit_code"] == 0 and "sum=1 max=1" in info["stdout"]
    assert grades["legacy-tb"].reward == 1.0 and grades["legacy-tb"].info["exit_code"] == 0


def _copy_task(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / "ds" / name
    shutil.copytree(TASKS / name, dest)
    return dest


async def test_verifier_timeout_is_an_error(base_image: str, tmp_path: Path) -> None:
    task = _copy_task(tmp_path, "hello-file")
    (task / "tests" / "test.sh").write_text(
        "#!/bin/sh\nsleep 30\necho 1 > /logs/verifier/reward.txt\n"
    )
    text = (task / "task.toml").read_text().replace("timeout_sec = 60", "timeout_sec = 1.5")
    (task / "task.toml").write_text(text)
    job = await adapt(task).taskset.run(OracleAgent())
    grade = job.runs[0].grade
    assert grade.is_error and grade.reward == 0.0
    assert "timed out after 1.5s" in (grade.content or "")


async def test_timeout_multiplier_scales_the_verifier(base_image: str, tmp_path: Path) -> None:
    task = _copy_task(tmp_path, "hello-file")
    (task / "tests" / "test.sh").write_text(
        "#!/bin/sh\nsleep 2\necho 1 > /logs/verifier/reward.txt\n"
    )
    text = (task / "task.toml").read_text().replace("timeout_sec = 60", "timeout_sec = 1")
    (task / "task.toml").write_text(text)
    result = adapt(task, verifier_timeout_multiplier=10)
    assert result.taskset["hello-file"].args["task"]["verifier_timeout"] == 10
    job = await result.taskset.run(OracleAgent())
    assert job.runs[0].grade.reward == 1.0, job.runs[0].grade


async def test_no_reward_file_is_an_error(base_image: str, tmp_path: Path) -> None:
    task = _copy_task(tmp_path, "hello-file")
    (task / "tests" / "test.sh").write_text("#!/bin/sh\necho checked; echo oops >&2\n")
    job = await adapt(task).taskset.run(NopAgent())
    grade = job.runs[0].grade
    assert grade.is_error and "neither" in (grade.content or "")
    assert grade.info["stdout"].strip() == "checked" and "oops" in grade.info["stderr"]


async def test_container_dying_in_agent_phase_leaves_nothing(base_image: str) -> None:
    result = adapt(TASKS / "hello-file")
    seen: dict[str, Any] = {}
    runtime = result.runtime

    def placement(task: Any) -> Any:
        return _Remember(runtime(task), seen)

    class KillContainer(Agent):
        """Kills the task's container during its turn."""

        name = "killer"

        async def __call__(self, run: Any) -> None:
            docker_client().api.kill(seen["runtime"].params["container"])

    job = await result.taskset.run(KillContainer(), runtime=placement)
    run = job.runs[0]
    assert run.grade is None or run.grade.is_error or run.trace.status == "error"
    assert run.reward == 0.0
    assert not labelled_containers(owner_id())


class _Remember:
    """Wraps a provider's context manager and keeps the yielded runtime."""

    def __init__(self, inner: Any, seen: dict[str, Any]) -> None:
        self.inner, self.seen = inner, seen

    async def __aenter__(self) -> Any:
        rt = await self.inner.__aenter__()
        self.seen["runtime"] = rt
        return rt

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.inner.__aexit__(*exc)


def test_load_source_gives_harbor_placement() -> None:
    source = load_source(TASKS)
    assert isinstance(source.placement, HarborRuntime)
    assert source.taskset.slugs == SHAPES
    row = source.taskset["agent-user"]
    assert row.id == "run" and row.slug == "agent-user"
    assert row.agent_config == {"timeout_seconds": 120.0}
    assert row.args["instruction"].startswith("As your own user")
    assert row.args["task"]["verifier_timeout"] == 60.0
    assert source.taskset["hello-file"].columns == {
        "difficulty": "easy",
        "category": "files",
        "keywords": ["smoke"],
    }
    # identical environments share an env name; different ones do not
    envs = {t.slug: t.env for t in source.taskset}
    assert envs["hello-file"] != envs["multi-metric"]
    assert all(e.startswith("harbor_tasks-") for e in envs.values())


# -- without containers ----------------------------------------------------------------------
def _task(
    root: Path, name: str, toml: str, *, instruction: bool = True, tests: bool = True
) -> Path:
    task = root / name
    (task / "environment").mkdir(parents=True)
    (task / "environment" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (task / "task.toml").write_text(toml)
    if instruction:
        (task / "instruction.md").write_text("do it\n")
    if tests:
        (task / "tests").mkdir()
        (task / "tests" / "test.sh").write_text("#!/bin/sh\necho 1 > /logs/verifier/reward.txt\n")
    return task


def test_adapt_failures_have_stable_codes(tmp_path: Path) -> None:
    _task(tmp_path, "ok", "[task]\nname='x/ok'\n")
    _task(tmp_path, "no-instruction", "", instruction=False)
    _task(tmp_path, "no-tests", "", tests=False)
    _task(tmp_path, "steps", "[[steps]]\nname = 'a'\n")
    _task(tmp_path, "separate", "[verifier]\nenvironment_mode = 'separate'\n")
    _task(tmp_path, "allowlist", "[agent]\nnetwork_mode = 'allowlist'\n")
    _task(tmp_path, "bad-timeout", "[verifier]\ntimeout_sec = -1\n")
    _task(tmp_path, "bad-toml", "[task\n")
    nothing = _task(tmp_path, "no-env", "")
    (nothing / "environment" / "Dockerfile").unlink()
    result = adapt(tmp_path)
    assert result.taskset.slugs == ["ok"]
    codes = {Path(f.path).name: f.code for f in result.failures}
    assert codes == {
        "allowlist": "harbor.unsupported.network_allowlist",
        "bad-timeout": "harbor.invalid.timeout",
        "bad-toml": "harbor.invalid.config",
        "no-env": "harbor.invalid.no_environment",
        "no-instruction": "harbor.invalid.missing_instruction",
        "no-tests": "harbor.invalid.missing_tests",
        "separate": "harbor.unsupported.separate_verifier",
        "steps": "harbor.unsupported.steps",
    }
    assert set(codes.values()) <= set(CODES)
    assert all(f.reason for f in result.failures)


def test_adapt_rejects_other_directories(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither a Harbor task directory"):
        adapt(tmp_path)


@pytest.mark.parametrize(
    ("json_text", "txt", "score", "metrics"),
    [
        ('{"reward": 1, "accuracy": 0.5}', None, 1.0, {"reward": 1.0, "accuracy": 0.5}),
        ('{"score": 0.4, "x": 1}', "1", 0.4, {"score": 0.4, "x": 1.0}),
        ('{"accuracy": 0.9}', None, 0.9, {"accuracy": 0.9}),
        ('{"a": 1, "b": 0}', None, 0.5, {"a": 1.0, "b": 0.0}),
        ("0.75", None, 0.75, {"reward": 0.75}),
        (None, " 1\n", 1.0, {"reward": 1.0}),
    ],
)
def test_parse_rewards(
    json_text: str | None, txt: str | None, score: float, metrics: dict[str, float]
) -> None:
    got_score, got_metrics, _ = parse_rewards(json_text, txt)
    assert (got_score, got_metrics) == (score, metrics)


@pytest.mark.parametrize(
    ("json_text", "txt"),
    [("", None), ('{"reward": "high"}', None), ('{"reward": NaN}', None), (None, "inf"),
     (None, ""), (None, "yes"), ('{"ok": true}', None), (None, None), ("[]", None)],
)  # fmt: skip
def test_parse_rewards_rejects(json_text: str | None, txt: str | None) -> None:
    with pytest.raises(RewardError):
        parse_rewards(json_text, txt)
