"""Container tests: need a Docker daemon (started here when possible) and local base images.

No image registry is reachable, so `images.py` builds the base images with debootstrap and
``docker import`` (cached by tag). Without a daemon that can start, every test here is skipped
with the reason. After the session no container this test run caused may be left behind; only
those (labelled with the run's ``io.hud.session``, see tests/conftest.py) are ever reaped here,
never other processes' containers on the shared daemon.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

_REASON: str | None = None
_CHECKED = False


def _start_dockerd() -> str | None:
    """Start dockerd in the background if we can; None when a daemon answers."""
    from hud.eval.runtimes import docker as hd

    if hd.daemon_available():
        return None
    if not shutil.which("dockerd"):
        return "no Docker daemon and dockerd is not installed (run .ci/docker-setup.sh)"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "no Docker daemon, and starting dockerd needs root"
    log = open("/tmp/hud-dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
    subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    for _ in range(60):
        time.sleep(1)
        hd._client = None
        if hd.daemon_available():
            return None
    return "dockerd did not come up within 60 s (see /tmp/hud-dockerd.log)"


def docker_reason() -> str | None:
    global _REASON, _CHECKED
    if not _CHECKED:
        _CHECKED = True
        try:
            _REASON = _start_dockerd()
        except Exception as exc:  # pragma: no cover - environment specific
            _REASON = f"Docker unavailable: {exc}"
    return _REASON


@pytest.fixture(autouse=True)
def _need_docker() -> None:
    reason = docker_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def base_image() -> str:
    if docker_reason():
        pytest.skip(docker_reason() or "")
    import images

    return images.base_image()


@pytest.fixture(scope="session")
def python_image(base_image: str) -> str:
    import images

    return images.python_image()


@pytest.fixture(scope="session")
def hud_image(python_image: str) -> str:
    import images

    return images.hud_image()


def session_id() -> str:
    from hud.eval.runtimes.docker import SESSION_ENV

    return os.environ[SESSION_ENV]


def labelled_containers(owner: str | None = None) -> list[dict]:
    """Labelled containers this test run caused (of ``owner`` only, when given)."""
    from hud.eval.runtimes.docker import LABEL, OWNER_LABEL, SESSION_LABEL, docker_client

    wanted = [LABEL, f"{SESSION_LABEL}={session_id()}"]
    found = docker_client().api.containers(all=True, filters={"label": wanted})
    if owner is None:
        return found
    return [c for c in found if (c.get("Labels") or {}).get(OWNER_LABEL) == owner]


def labelled_networks() -> list[dict]:
    """Labelled networks this test run caused."""
    from hud.eval.runtimes.docker import LABEL, SESSION_LABEL, docker_client

    wanted = [LABEL, f"{SESSION_LABEL}={session_id()}"]
    return docker_client().api.networks(filters={"label": wanted})


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Fail the session if a container this run caused outlives it (and remove those only)."""
    yield
    if docker_reason():
        return
    from hud.eval.runtimes.docker import docker_client

    api = docker_client().api
    left = labelled_containers()
    names = [c.get("Names") for c in left]
    for info in left:
        with contextlib.suppress(Exception):
            api.remove_container(info["Id"], force=True, v=True)
    for net in labelled_networks():
        with contextlib.suppress(Exception):
            api.remove_network(net["Id"])
    assert not left, f"containers left behind by the suite: {names}"
