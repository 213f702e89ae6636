"""Images for more than one machine: `hud platform serve --registry HOST:PORT` pushes each built
image to a real registry (Debian's `docker-registry`, on loopback); with the local copy removed,
a rollout of the deployed environment pulls it back (spec platform.md §3.2; issue 13 pt 4)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.platform.deploy_helpers import (
    cli_env,
    deploy,
    linked,
    python_base,
    remove_platform_images,
    scaffold,
)
from tests.platform.helpers import Platform, free_port, make_home, requires_extra, run_cli

pytestmark = [requires_extra]

REGISTRY = shutil.which("docker-registry")


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    """A `docker-registry serve` of our own on a free loopback port."""
    if not REGISTRY:
        pytest.skip("docker-registry is not installed (Debian package docker-registry)")
    root = Path(tempfile.mkdtemp(prefix="hud-registry-"))
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = open(root / "registry.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log, stderr=log)
    address = f"127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://{address}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"docker-registry exited: {(root / 'registry.log').read_text()}")
            time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pushing_platform(registry: str) -> Iterator[Platform]:
    """A platform of its own (SQLite) that pushes its images to `registry`."""
    base = Path(tempfile.mkdtemp(prefix="hud-platform-registry-"))
    platform = Platform("sqlite", base / "data", extra_args=("--registry", registry))
    try:
        yield platform.start()
    finally:
        platform.stop()
        remove_platform_images(platform)
        shutil.rmtree(base, ignore_errors=True)


def test_pushed_image_is_pulled_by_a_rollout(pushing_platform: Platform, registry: str) -> None:
    from hud.eval.runtimes.docker import docker_client, image_exists

    platform = pushing_platform
    python_base()
    work = Path(tempfile.mkdtemp(prefix="hud-registry-deploy-"))
    try:
        key = platform.new_key()
        home = make_home()
        project = scaffold(work, "demo_env")
        shown = deploy(platform, key, home, project, ours=True)
        out = shown.stdout + shown.stderr
        assert shown.returncode == 0, out[-3000:]
        assert f"Pushed {registry}/" in out
        with platform.api(key) as api:
            env = api.get(f"/v2/registry/{linked(project)['registry_id']}").json()
        uri = env["latest_build"]["uri"]
        repo, _, tag = uri.removeprefix(f"{registry}/").rpartition(":")
        assert uri.startswith(f"{registry}/hud-env/demo-env-")
        tags = httpx.get(f"http://{registry}/v2/{repo}/tags/list", timeout=10).json()
        assert tags["tags"] == [tag]

        # another machine has no local copy: remove ours, then run a rollout of the env
        docker_client().images.remove(uri, force=True)
        assert not image_exists(uri)
        rows = [{"env": "demo_env", "id": "count", "args": {"sentence": "aa", "letter": "a"},
                 "slug": "count-aa"}]  # fmt: skip
        (project / "rows.json").write_text(json.dumps(rows))
        env_vars = cli_env(platform, key, home)
        synced = run_cli(["sync", "tasks", "pulled", "rows.json", "-y"], env_vars, cwd=project,
                         ours=True)  # fmt: skip
        assert synced.returncode == 0, synced.stdout + synced.stderr
        ran = run_cli(["eval", "pulled", "oracle", "--runtime", "docker", "--all", "--yes",
                       "--json"], env_vars, cwd=project, timeout=600, ours=True)  # fmt: skip
        assert ran.returncode == 0, (ran.stdout + ran.stderr)[-3000:]
        assert [r["reward"] for r in json.loads(ran.stdout)["runs"]] == [1.0]
        assert image_exists(uri), "the rollout pulled the image from the registry"
    finally:
        shutil.rmtree(work, ignore_errors=True)
