"""`hud deploy` against a live `hud platform serve` (SQLite and PostgreSQL), with the official
0.6.21 CLI (a black box) and with ours: the scaffold and a Compose environment build with their
log streamed, a broken Dockerfile ends FAILED with its error lines, the registry lists versions,
and the directory is linked through ``.hud/config.json`` (spec platform.md §1, §3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.platform.deploy_helpers import (
    deploy,
    linked,
    scaffold,
    team_key,
)
from tests.platform.helpers import Platform, make_home, requires_extra, requires_peer

pytestmark = [requires_extra]


def _one_database(official_on: str) -> pytest.MarkDecorator:
    """Builds do not depend on the database: each CLI runs the test on one of the two (the
    official CLI on ``official_on``, ours on the other), which keeps the suite short."""
    return pytest.mark.cases(lambda ours, platform: (platform == official_on) != ours)


def _registry(platform: Platform, key: str, env_id: str) -> dict:
    with platform.api(key) as api:
        reply = api.get(f"/v2/registry/{env_id}")
        assert reply.status_code == 200, reply.text
        return reply.json()


@_one_database(official_on="sqlite")
@pytest.mark.parametrize("ours", [False, True], ids=["official", "ours"])
def test_deploy_scaffold(
    platform: Platform, images: str, work: Path, ours: bool, request: pytest.FixtureRequest
) -> None:
    if not ours:
        for mark in requires_peer:
            request.applymarker(mark)
    # ours deploys the scaffold on both databases in test_deploy_secrets.py too
    key = team_key(platform)
    home = make_home()
    project = scaffold(work, "demo_env")
    proc = deploy(platform, key, home, project, ours=ours)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # the build log was streamed: docker's steps, timestamped
    assert "Step 1/" in out and "Successfully tagged" in out and "SUCCEEDED" in out
    link = linked(project)
    assert link["version"] == 1 and link["scope"]["origin"] == platform.url
    env = _registry(platform, key, link["registry_id"])
    assert env["name"] == "demo-env"
    build = env["latest_build"]
    assert build["status"] == "SUCCEEDED" and build["version"] == "1"
    assert build["uri"].endswith(":v1") and "demo-env" in build["uri"]
    assert [t["id"] for t in build["manifest"]["tasks"]] == ["count"]
    assert build["manifest"]["env"]["name"] == "demo_env"

    # the same name again is the next version of the same registry entry
    # (with a secret: stored by name, its value in no reply)
    again = deploy(platform, key, home, project, "--json", "-e", "TOKEN_X=value-4f1c9a", ours=ours)
    assert again.returncode == 0, again.stderr[-3000:]
    reply = json.loads(again.stdout)
    assert reply["build_id"] and reply["registry_id"] == link["registry_id"]
    with platform.api(key) as api:
        status = api.get(f"/v2/builds/{reply['build_id']}/status").json()
        assert status["status"] == "SUCCEEDED" and status["version"] == "2"
        env_reply = api.get(f"/v2/registry/{link['registry_id']}")
        assert env_reply.json()["secret_names"] == ["TOKEN_X"]
        assert "value-4f1c9a" not in env_reply.text + json.dumps(status) + again.stdout
        found = api.get("/v2/registry", params={"search": "demo_env", "limit": 500}).json()
        assert [e["id"] for e in found["items"]] == [link["registry_id"]]
    with platform.api(team_key(platform)) as api:  # another team sees none of it
        assert api.get(f"/v2/registry/{link['registry_id']}").status_code == 404
        assert api.get(f"/v2/builds/{reply['build_id']}/status").status_code == 404


@_one_database(official_on="sqlite")
@pytest.mark.parametrize("ours", [False, True], ids=["official", "ours"])
def test_broken_dockerfile_fails_with_its_lines(
    platform: Platform, images: str, work: Path, ours: bool, request: pytest.FixtureRequest
) -> None:
    if not ours:
        for mark in requires_peer:
            request.applymarker(mark)
    key = team_key(platform)
    project = work / "broken"
    project.mkdir()
    (project / "env.py").write_text("from hud import Environment\n\nenv = Environment('broken')\n")
    (project / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\nRUN echo broken-step-marker && exit 7\n"
    )
    # into a project named by its name (both CLIs resolve it); then no directory link is saved
    with platform.api(key) as api:
        made = api.post("/v2/projects", json={"name": "broken-builds"})
        assert made.status_code == 200, made.text
    proc = deploy(platform, key, make_home(), project, "--project", "broken-builds", ours=ours)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "FAILED" in out
    assert "broken-step-marker" in out and "returned a non-zero code: 7" in out
    assert not (project / ".hud" / "config.json").exists() or not linked(project)["registry_id"]
    with platform.api(key) as api:
        found = api.get("/v2/registry", params={"search": "broken"}).json()["items"]
        assert [e["name"] for e in found] == ["broken"]
        assert found[0]["project_id"] == made.json()["id"]
        assert found[0]["latest_build"] is None  # no successful build


@_one_database(official_on="postgresql")
@pytest.mark.parametrize("ours", [False, True], ids=["official", "ours"])
def test_deploy_compose_environment(
    platform: Platform, images: str, work: Path, ours: bool, request: pytest.FixtureRequest
) -> None:
    if not ours:
        for mark in requires_peer:
            request.applymarker(mark)
    from hud.eval.runtimes.docker import DockerError, compose_command

    try:
        compose_command()
    except DockerError as exc:
        pytest.skip(str(exc))
    key = team_key(platform)
    source = scaffold(work, "compose_env")
    project = work / "composed"
    project.mkdir()
    for item in source.iterdir():
        if item.name.endswith(".whl") or item.name in ("env.py", "pyproject.toml"):
            shutil.copy(item, project / item.name)
    shutil.copy(source / "Dockerfile.hud", project / "main.Dockerfile")
    (project / "side.Dockerfile").write_text(
        'FROM debian:bookworm-slim\nCMD ["sleep", "infinity"]\n'
    )
    (project / "compose.yaml").write_text(
        "services:\n"
        "  main:\n    build:\n      context: .\n      dockerfile: main.Dockerfile\n"
        "    depends_on: [side]\n"
        "  side:\n    build:\n      context: .\n      dockerfile: side.Dockerfile\n"
    )
    proc = deploy(platform, key, make_home(), project, ours=ours)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Building Compose project compose.yaml: main, side" in out
    build = _registry(platform, key, linked(project)["registry_id"])["latest_build"]
    assert build["status"] == "SUCCEEDED"
    services = build["runtime_config"]["compose"]["document"]["services"]
    assert services["main"]["image"] == build["uri"]
    assert services["side"]["image"].endswith("-side:v1")
    assert all("build" not in s for s in services.values())
    assert [t["id"] for t in build["manifest"]["tasks"]] == ["count"]
