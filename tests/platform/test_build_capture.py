"""The manifest capture that starts before a build ends, from the image of the Dockerfile's
last file-changing step with the CMD / ENTRYPOINT of the steps after it applied to the
container: `hud deploy` of the scaffold whose last steps differ yields the manifest the built
image serves, and fails when the built image cannot serve although that earlier image can;
last steps it does not handle fall back to capturing from the image of the last step."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.deploy_helpers import (
    deploy,
    linked,
    scaffold,
    team_key,
)
from tests.platform.helpers import Platform, make_home, requires_extra

pytestmark = [requires_extra, pytest.mark.cases(lambda platform, **_: platform == "sqlite")]

SERVE = '"hud", "serve", "env.py", "--host", "0.0.0.0", "--port", "8765"'
EARLY = "Serving the image of step "  # the RUN pip install step, with what follows it
LATE = "Serving the image once"
ENV_NAME = (
    "import os\n\nfrom hud import Environment\n\n"
    'env = Environment(name=os.environ.get("ENV_NAME", "plain"))\n'
)

# (lines replacing the scaffold's `EXPOSE` + `CMD`, lines inserted before its `RUN`, success,
#  the capture the build log names, the manifest's env name)
CASES = {
    "ENTRYPOINT and CMD, exec form": (
        'EXPOSE 8765\nENTRYPOINT ["hud", "serve"]\n'
        'CMD ["env.py", "--host", "0.0.0.0", "--port", "8765"]\n',
        "",
        True,
        EARLY,
        None,
    ),
    "CMD, shell form": (
        "CMD exec hud serve env.py --host 0.0.0.0 --port 8765\nLABEL x=y\n",
        "",
        True,
        EARLY,
        None,
    ),
    "an ENTRYPOINT clears the base image's CMD": (
        f"ENTRYPOINT [{SERVE}]\nEXPOSE 8765\n",
        "",
        True,
        EARLY,
        None,
    ),
    "a CMD set earlier in the stage survives an ENTRYPOINT": (
        'ENTRYPOINT ["hud", "serve"]\n',
        'CMD ["env.py", "--host", "0.0.0.0", "--port", "8765"]\n',
        True,
        EARLY,
        None,
    ),
    "the built image's CMD cannot serve (that of the earlier image can)": (
        'EXPOSE 8765\nCMD ["python", "-c", "raise SystemExit(3)"]\n',
        f"CMD [{SERVE}]\n",
        False,
        EARLY,
        None,
    ),
    "an ENV after the last RUN: not handled": (
        f"ENV ENV_NAME=from-the-env-step\nCMD [{SERVE}]\n",
        "",
        True,
        LATE,
        "from-the-env-step",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_manifest_is_what_the_built_image_serves(
    platform: Platform, images: str, work: Path, case: str
) -> None:
    tail, before_run, ok, capture, env_name = CASES[case]
    project = scaffold(work, "tail_env")
    (project / "env.py").write_text(
        ENV_NAME
        + (project / "env.py").read_text().split('env = Environment(name="tail_env")', 1)[1]
    )
    dockerfile = (project / "Dockerfile.hud").read_text()
    head, _, _ = dockerfile.partition("EXPOSE 8765\n")
    head = head.replace("RUN pip install", f"{before_run}RUN pip install", 1)
    (project / "Dockerfile.hud").write_text(head + tail)
    key = team_key(platform)
    proc = deploy(platform, key, make_home(), project, "--no-cache", "--name", "tail", ours=True)
    out = proc.stdout + proc.stderr
    assert capture in out, out[-4000:]
    if not ok:
        assert proc.returncode == 1, out[-4000:]
        assert "FAILED" in out and "serving the built image failed" in out, out[-4000:]
        return
    assert proc.returncode == 0, out[-4000:]
    with platform.api(key) as api:
        env = api.get(f"/v2/registry/{linked(project)['registry_id']}").json()
    manifest = env["latest_build"]["manifest"]
    assert [t["id"] for t in manifest["tasks"]] == ["count"]
    assert manifest["env"]["name"] == (env_name or "plain")


@pytest.fixture
def onbuild_base(images: str) -> Iterator[str]:
    """A base image whose ONBUILD trigger sets the CMD of the stage built FROM it."""
    import io

    from hud.eval.runtimes.docker import docker_client

    tag = f"hud-test/onbuild-cmd:{uuid.uuid4().hex[:8]}"
    text = f'FROM {images}\nONBUILD CMD ["env.py", "--host", "0.0.0.0", "--port", "8765"]\n'
    client = docker_client()
    client.images.build(fileobj=io.BytesIO(text.encode()), tag=tag, rm=True)
    yield tag
    with contextlib.suppress(Exception):
        client.images.remove(tag, force=True)


def test_a_base_images_onbuild_steps_fall_back(
    platform: Platform, onbuild_base: str, work: Path
) -> None:
    """The trigger's CMD survives the ENTRYPOINT after the last RUN: the Dockerfile alone
    does not say so, and the capture waits for the image of the last step."""
    project = scaffold(work, "onbuild_env")
    dockerfile = (project / "Dockerfile.hud").read_text()
    head, _, _ = dockerfile.partition("EXPOSE 8765\n")
    head = re.sub(r"(?m)^FROM .*$", f"FROM {onbuild_base}", head, count=1)
    (project / "Dockerfile.hud").write_text(head + 'ENTRYPOINT ["hud", "serve"]\n')
    key = team_key(platform)
    proc = deploy(platform, key, make_home(), project, "--no-cache", ours=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert LATE in out and EARLY not in out, out[-4000:]
    with platform.api(key) as api:
        env = api.get(f"/v2/registry/{linked(project)['registry_id']}").json()
    assert [t["id"] for t in env["latest_build"]["manifest"]["tasks"]] == ["count"]


@pytest.mark.parametrize("cli", [False, True], ids=["api", "docker-run"])
def test_run_container_entrypoint_override(images: str, cli: bool) -> None:
    """The capture's container runs ``entrypoint + command`` whichever way it is started (the
    ``docker run`` CLI takes one word of entrypoint: the rest goes before the command)."""
    from hud.eval.runtimes.docker import docker_client, labels, remove_container, run_container

    name = f"hud-capture-test-{uuid.uuid4().hex[:8]}"
    try:
        run_container(
            "debian:bookworm-slim",
            name=name,
            labels=labels("container"),
            entrypoint=["sh", "-c"],
            command=["sleep 30", "ignored-argv0"],
            run_args=("--init",) if cli else (),
        )
        seen = docker_client().api.inspect_container(name)
        assert [seen["Path"], *seen["Args"]] == ["sh", "-c", "sleep 30", "ignored-argv0"]
        assert seen["State"]["Running"]
    finally:
        remove_container(name)
