"""A build the platform was running when it died (SIGKILL) is failed by the sweep at the next
start on the same data dir, with a reason; the Docker daemon drops the build (no container of it
is left) and a redeploy works (spec platform.md §3.2)."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.platform.deploy_helpers import (
    deploy,
    python_base,
    remove_platform_images,
    scaffold,
    team_key,
)
from tests.platform.helpers import Platform, make_home, requires_extra

pytestmark = [requires_extra]


@pytest.fixture
def platform_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="hud-platform-restart-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _wait(
    what: str, check: Callable[[], bool], timeout: float = 300, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"still waiting for {what} after {timeout:g} s\n{tail}")
        time.sleep(0.2)


def _step_containers(marker: str) -> list[str]:
    from hud.eval.runtimes.docker import docker_client

    return [
        c["Id"]
        for c in docker_client().api.containers(all=True)
        if marker in str(c.get("Command") or "")
    ]


def test_build_killed_with_the_platform_fails_at_restart(platform_dir: Path) -> None:
    from hud.platform.client.context import pack

    python_base()
    platform = Platform("sqlite", platform_dir / "data").start()
    try:
        key = team_key(platform)
        project = scaffold(platform_dir, "restart_env")
        dockerfile = project / "Dockerfile.hud"
        original = dockerfile.read_text()
        marker = f"sweep-marker-{uuid.uuid4().hex[:12]}"
        dockerfile.write_text(original + f"RUN echo {marker} && sleep 900\n")
        with platform.api(key) as api:
            slot = api.post("/v2/builds/upload-url").json()
            build_id = slot["build_id"]
            put = httpx.put(slot["upload_url"], content=pack(project), timeout=60)
            assert put.status_code == 200, put.text
            started = api.post(
                "/v2/builds/trigger", json={"build_id": build_id, "name": "restart_env"}
            )
            assert started.status_code == 200, started.text
        log = platform.data_dir / "builds" / f"{build_id}.log"

        def sleeping() -> bool:
            text = log.read_text(errors="replace") if log.exists() else ""
            assert "Build failed" not in text, f"the build ended early:\n{text[-3000:]}"
            return bool(_step_containers(marker))

        _wait("the build's sleeping step", sleeping, log=log)

        platform.stop(signal.SIGKILL)
        platform.start()
        with platform.api(key) as api:
            status = api.get(f"/v2/builds/{build_id}/status").json()
        assert status["status"] == "FAILED", status
        assert "platform stopped during this build" in status["error_message"]
        assert "restarted" in log.read_text()
        # the daemon dropped the build whose client died: its step's container is gone
        _wait("the killed build's container to go", lambda: not _step_containers(marker), 120)

        dockerfile.write_text(original)
        again = deploy(platform, key, make_home(), project, "--json", ours=True)
        assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
        with platform.api(key) as api:
            env = api.get("/v2/registry", params={"search": "restart_env"}).json()["items"]
        assert env[0]["latest_build"]["version"] == "2"
        assert [t["id"] for t in env[0]["latest_build"]["manifest"]["tasks"]] == ["count"]
    finally:
        platform.stop()
        remove_platform_images(platform)
