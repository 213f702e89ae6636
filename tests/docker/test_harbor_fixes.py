"""Harbor fixes: the task image follows its base image (and `rebuild`), task.toml `artifacts`
land in the job record, and the Dockerfile's base images are found."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from hud.eval.runtimes.docker import build_image, docker_client
from hud.integrations.harbor.taskdir import load_task
from hud.integrations.harbor.trial import build
from tests.conftest import hud_env


def _task_dir(root: Path, dockerfile: str, *, toml: str = "", solve: str = "true") -> Path:
    task = root / "task"
    (task / "environment").mkdir(parents=True)
    (task / "tests").mkdir()
    (task / "solution").mkdir()
    (task / "instruction.md").write_text("Do it.\n")
    (task / "task.toml").write_text(toml + '[task]\nname = "hud-tests/fixes"\n')
    (task / "environment" / "Dockerfile").write_text(dockerfile)
    (task / "tests" / "test.sh").write_text("#!/bin/sh\necho 1 > /logs/verifier/reward.txt\n")
    (task / "solution" / "solve.sh").write_text(f"#!/bin/sh\n{solve}\n")
    return task


def _cat(image: str, path: str) -> str:
    out = docker_client().containers.run(image, ["cat", path], remove=True)
    return out.decode().strip()


async def test_changed_base_image_gets_a_fresh_task_image(base_image: str, tmp_path: Path) -> None:
    """The cache key holds the base image's id: rebuilding the base under the same name
    rebuilds the task image (before: the stale image kept being served); ``rebuild=True``
    builds again without the layer cache."""
    base = f"hud-test/harbor-base:{uuid.uuid4().hex[:10]}"
    made: list[str] = [base]
    ctx = tmp_path / "base"
    ctx.mkdir()
    try:
        for content in ("one", "two"):
            (ctx / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo {content} > /base.txt\n")
            build_image(ctx, base)
            if content == "one":
                task = load_task(_task_dir(tmp_path, f"FROM {base}\nRUN date +%s%N > /built\n"))
                first = await build(task)
                assert first is not None
                made.append(first)
                assert _cat(first, "/base.txt") == "one"
        second = await build(task)
        assert second is not None
        made.append(second)
        assert second != first, "a changed base image must change the task image's key"
        assert _cat(second, "/base.txt") == "two"
        assert await build(task) == second  # cached while the base stays the same
        stamp = _cat(second, "/built")
        assert await build(task, rebuild=True) == second
        assert _cat(second, "/built") != stamp, "rebuild runs the Dockerfile again"
    finally:
        for ref in made:
            try:
                docker_client().images.remove(ref, force=True)
            except Exception:
                pass


def test_artifacts_are_collected_into_the_job_record(base_image: str, tmp_path: Path) -> None:
    toml = (
        'artifacts = ["/data/out.txt", '
        '{ source = "/data/dir", destination = "d", exclude = ["*.log"] }]\n'
    )
    solve = (
        "mkdir -p /data/dir /logs/artifacts && echo result > /data/out.txt && "
        "echo kept > /data/dir/a.txt && echo noise > /data/dir/b.log && "
        "echo extra > /logs/artifacts/extra.txt"
    )
    task = _task_dir(tmp_path, f"FROM {base_image}\n", toml=toml, solve=solve)
    jobs = tmp_path / "jobs"
    proc = subprocess.run(
        [sys.executable, "-m", "hud", "eval", str(task), "oracle", "--yes", "--json",
         "--jobs-dir", str(jobs)],
        cwd=REPO, env=hud_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert [r["reward"] for r in out["runs"]] == [1.0]
    (trace_file,) = jobs.glob("*/traces/*.jsonl")
    header: dict[str, Any] = json.loads(trace_file.read_text().splitlines()[0])
    artifacts = header["grade"]["info"]["artifacts"]
    files = {k: base64.b64decode(v).decode().strip() for k, v in artifacts["files"].items()}
    assert files == {"out.txt": "result", "d/a.txt": "kept", "extra.txt": "extra"}
    by_source = {e["source"]: e for e in artifacts["manifest"]}
    assert by_source["/data/out.txt"]["status"] == "ok"
    assert [f["path"] for f in by_source["/data/dir"]["files"]] == ["d/a.txt"]


@pytest.mark.parametrize(
    ("dockerfile", "expected"),
    [
        ("FROM debian:bookworm-slim\n", ["debian:bookworm-slim"]),
        (
            "ARG BASE=python:3.12-slim\nFROM ${BASE} AS build\nRUN true\n"
            "FROM --platform=linux/amd64 build\nFROM scratch\nCOPY --from=build / /\n",
            ["python:3.12-slim"],
        ),
        ("FROM a:1 as x\nFROM x\nFROM b:2\nFROM $UNSET\n", ["a:1", "b:2"]),
    ],
)
def test_base_images_of_a_dockerfile(tmp_path: Path, dockerfile: str, expected: list[str]) -> None:
    from hud.integrations.harbor.trial import base_images

    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile)
    assert base_images(path) == expected


def test_unreachable_base_image_exits_non_zero(base_image: str, tmp_path: Path) -> None:
    """No rollout could even start (the base image can neither be found nor pulled): `hud eval`
    exits non-zero by default, with the reason on one line."""
    task = _task_dir(tmp_path, "FROM 127.0.0.1:1/hud-tests/no-such-base:latest\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hud", "eval", str(task), "oracle", "--yes",
         "--jobs-dir", str(tmp_path / "jobs")],
        cwd=REPO, env=hud_env(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "no-such-base" in proc.stderr and "Traceback" not in proc.stderr


def test_hud_eval_rebuild_flag(base_image: str, tmp_path: Path) -> None:
    """`hud eval --rebuild` builds the task image again without the layer cache."""
    from hud.integrations.harbor.trial import _base_ids, image_tag

    task = _task_dir(tmp_path, f"FROM {base_image}\nRUN date +%s%N > /built\n")
    tag = image_tag(load_task(task), _base_ids(load_task(task)))
    stamps = []
    try:
        for extra in ([], [], ["--rebuild"]):
            proc = subprocess.run(
                [sys.executable, "-m", "hud", "eval", str(task), "oracle", "--yes", *extra,
                 "--jobs-dir", str(tmp_path / "jobs")],
                cwd=REPO, env=hud_env(tmp_path), capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-2000:]
            stamps.append(_cat(tag, "/built"))
        assert stamps[0] == stamps[1], "cached without --rebuild"
        assert stamps[2] != stamps[1], "--rebuild ran the Dockerfile again"
    finally:
        try:
            docker_client().images.remove(tag, force=True)
        except Exception:
            pass
