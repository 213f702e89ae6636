"""Rollout containers (issue 11 point 5): limited by default, and gone within seconds when the
`hud eval` that started them is killed with SIGKILL (not only at the next run).

Needs a Docker daemon and the local test images (tests/docker/images.py); skipped otherwise.
Only containers of the processes started here are looked at.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hud import Task
from hud.eval.runtimes import docker as hd
from tests.conftest import REPO, hud_env

DOCKER_TESTS = REPO / "tests" / "docker"
BOXENV = DOCKER_TESTS / "envs" / "boxenv"
#: The acceptance bound: no container of a SIGKILLed `hud eval` is running this long after.
GONE_WITHIN_S = 10


@pytest.fixture(scope="module")
def box_image() -> str:
    if not hd.daemon_available():
        pytest.skip("no Docker daemon (run .ci/docker-setup.sh)")
    sys.path.insert(0, str(DOCKER_TESTS))
    import images  # tests/docker/images.py: local base images, cached by tag

    hud_image = images.hud_image()
    tag = f"hud-test/boxenv:{hud_image.split(':')[-1]}"
    if not hd.image_exists(tag):
        hd.build_image(BOXENV, tag, buildargs={"HUD_IMAGE": hud_image})
    return tag


def containers_of(pid: int) -> list[dict[str, Any]]:
    owner = f"{hd.owner_id().rsplit(':', 1)[0]}:{pid}"
    found = hd.docker_client().api.containers(
        all=True, filters={"label": [hd.LABEL, f"{hd.OWNER_LABEL}={owner}"]}
    )
    return list(found)


def remove_all(pid: int) -> None:
    for info in containers_of(pid):
        hd.remove_container(info["Id"])


def test_sigkill_of_hud_eval_leaves_no_container(box_image: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "env.py").write_text((BOXENV / "env.py").read_text())
    rows = [
        {"env": "boxenv", "id": "slow", "slug": f"s{i}", "args": {"seconds": 300},
         "runtime_config": {"image": box_image}}
        for i in range(2)
    ]  # fmt: skip
    (src / "tasks.json").write_text(json.dumps(rows))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hud", "eval", "tasks.json", "oracle", "--all", "--yes"],
        cwd=src,
        env=hud_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not any(c["State"] == "running" for c in containers_of(proc.pid)):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no container started"
            time.sleep(0.2)
        time.sleep(1.0)  # mid-rollout
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < GONE_WITHIN_S:
            if not containers_of(proc.pid):
                break
            time.sleep(0.2)
        running = [c["Names"] for c in containers_of(proc.pid) if c["State"] == "running"]
        assert not running, f"still running {GONE_WITHIN_S}s after SIGKILL: {running}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        remove_all(proc.pid)


async def test_containers_are_limited_by_default(box_image: str) -> None:
    row = Task(env="boxenv", id="shout", args={"text": "x"})
    async with hd.DockerRuntime(box_image)(row) as rt:
        host = hd.docker_client().api.inspect_container(rt.params["container"])["HostConfig"]
    assert host["Memory"] == hd.DEFAULT_MEMORY_MB * 1024 * 1024
    assert host["NanoCpus"] == int(min(hd.DEFAULT_CPUS, os.cpu_count() or 1) * 1e9)
    assert host["PidsLimit"] == hd.DEFAULT_PIDS


async def test_row_resources_override_the_default_limits(box_image: str) -> None:
    row = Task(
        env="boxenv",
        id="shout",
        args={"text": "x"},
        runtime_config={"image": box_image, "resources": {"cpu": 0.5, "memory_mb": 300}},
    )
    runtime = hd.DockerRuntime(pids=64)
    async with runtime(row) as rt:
        host = hd.docker_client().api.inspect_container(rt.params["container"])["HostConfig"]
    assert host["Memory"] == 300 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 64
