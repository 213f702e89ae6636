"""`export()`: HUD tasks become Harbor task folders that the official `harbor` CLI runs (oracle
scores 1.0) and that our own Harbor loader runs too (oracle 1.0, nop 0.0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, labelled_containers

from hud.agents.offline import NopAgent, OracleAgent
from hud.integrations.harbor import adapt, export
from tests.conftest import hud_env

HARBOR = REPO / ".peer" / "harbor" / "bin" / "harbor"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "hud", "init", "demo"],
        cwd=tmp_path,
        env=hud_env(tmp_path),
        check=True,
        capture_output=True,
        timeout=60,
    )
    return tmp_path / "demo"


async def test_export_layout(demo: Path, tmp_path: Path) -> None:
    folders = await export(demo / "tasks.py", tmp_path / "out")
    assert [f.name for f in folders] == ["count-4376680e", "count-e8d5ddbb"]
    task = folders[0]
    toml = (task / "task.toml").read_text()
    assert 'hud_task = "count"' in toml and "[environment.healthcheck]" in toml
    assert "Strawberry world" in (task / "instruction.md").read_text()
    assert "/workspace/answer.txt" in (task / "instruction.md").read_text()
    dockerfile = (task / "environment" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/hud_entrypoint.sh"]' in dockerfile
    assert list((task / "environment").glob("openhud-*.whl"))
    assert "printf '%s' 4" in (task / "solution" / "solve.sh").read_text()
    assert "hud task grade count" in (task / "tests" / "test.sh").read_text()


async def test_exported_tasks_run_under_our_harbor_loader(
    python_image: str, demo: Path, tmp_path: Path
) -> None:
    await export(demo / "tasks.py", tmp_path / "out")
    result = adapt(tmp_path / "out")
    assert not result.failures and len(result.taskset) == 2
    oracle = await result.taskset.run(OracleAgent(), max_concurrent=2)
    assert [r.reward for r in oracle.runs] == [1.0, 1.0], [r.grade for r in oracle.runs]
    nop = await result.taskset.run(NopAgent(), max_concurrent=2)
    assert [r.reward for r in nop.runs] == [0.0, 0.0]


@pytest.mark.skipif(not HARBOR.exists(), reason="official harbor CLI not installed in .peer/harbor")
async def test_exported_task_runs_under_official_harbor(
    python_image: str, demo: Path, tmp_path: Path
) -> None:
    folders = await export(demo / "tasks.py", tmp_path / "out")
    jobs = tmp_path / "jobs"
    env = {**hud_env(tmp_path), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env["PATH"] = os.environ.get("PATH", "")
    proc = subprocess.run(
        [str(HARBOR), "run", "-p", str(folders[0]), "-a", "oracle", "-o", str(jobs), "-n", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = list(jobs.glob("*/*/result.json"))
    assert results, proc.stdout[-2000:]
    trial = json.loads(results[0].read_text())
    assert trial.get("exception_info") is None, trial.get("exception_info")
    assert trial["verifier_result"]["rewards"] == {"reward": 1.0}
    assert not labelled_containers()
