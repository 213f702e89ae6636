"""Helpers of the deploy / taskset tests: Docker, offline base images, scaffolds, and removing
exactly the images a test platform built (they carry its ``io.hud.platform`` label)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.platform.helpers import REPO, Platform, base_env, run_cli

DOCKER_TESTS = REPO / "tests" / "docker"


def need_docker() -> None:
    from hud.eval.runtimes.docker import daemon_available

    if not daemon_available():
        pytest.skip("no Docker daemon (run .ci/docker-setup.sh)")


def python_base() -> str:
    """The offline ``python:3.11-slim`` stand-in (tests/docker/images.py) the scaffold's
    Dockerfile starts FROM."""
    need_docker()
    if str(DOCKER_TESTS) not in sys.path:
        sys.path.insert(0, str(DOCKER_TESTS))
    try:
        import images
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"tests/docker/images.py unavailable: {exc}")
    try:
        return images.python_image()
    except Exception as exc:
        pytest.skip(f"cannot build the offline python base image: {exc}")


def platform_label(platform: Platform) -> str:
    from hud.platform.services.builds import platform_id

    return platform_id(platform.data_dir)


def remove_platform_images(platform: Platform) -> None:
    """Remove the images (and their dangling parents) this test platform built."""
    from hud.eval.runtimes.docker import docker_client
    from hud.platform.services.builds import IMAGE_LABEL

    client = docker_client()
    for image in client.images.list(filters={"label": f"{IMAGE_LABEL}={platform_label(platform)}"}):
        for tag in image.tags or [image.id]:
            try:
                client.images.remove(tag, force=True)
            except Exception:
                pass


def scaffold(parent: Path, name: str) -> Path:
    """A `hud init` project (our CLI) in ``parent / name``."""
    proc = run_cli(["init", name, "--dir", str(parent)], base_env(parent), cwd=parent, ours=True)
    assert proc.returncode == 0, proc.stderr
    return parent / name


def cli_env(platform: Platform, key: str, home: Path) -> dict[str, str]:
    return {**base_env(home), **platform.client_env(key), "HUD_CLI_ANALYTICS_ENABLED": "0"}


def deploy(
    platform: Platform, key: str, home: Path, project: Path, *args: str, ours: bool = False
) -> Any:
    argv = ["deploy", str(project), "--yes", *args]
    if not ours and "--no-env" not in args and "--env-file" not in args:
        argv.append("--no-env")
    return run_cli(argv, cli_env(platform, key, home), cwd=project, timeout=600, ours=ours)


def linked(project: Path) -> dict[str, Any]:
    return json.loads((project / ".hud" / "config.json").read_text())


def team_key(platform: Platform) -> str:
    """A key of a new team of its own (registry names and versions are per team)."""
    import uuid

    team = f"team-{uuid.uuid4().hex[:8]}"
    proc = platform.hud("team", "add", team)
    assert proc.returncode == 0, proc.stderr
    return platform.new_key("--team", team)
