"""The build API's edges without building anything (SQLite and PostgreSQL): upload tokens,
triggers out of order, the log stream's access check (close 4003), and our `hud deploy`'s
one-line refusals of bad input."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.platform.deploy_helpers import cli_env, team_key
from tests.platform.helpers import Platform, make_home, requires_extra, run_cli

pytestmark = [requires_extra]


def test_upload_and_trigger_edges(platform: Platform) -> None:
    key = team_key(platform)
    with platform.api(key) as api:
        slot = api.post("/v2/builds/upload-url").json()
        build_id, url = slot["build_id"], slot["upload_url"]
        assert url.startswith(platform.url) and "token=" in url
        # triggering before the upload is refused, and names the fix
        early = api.post("/v2/builds/trigger", json={"build_id": build_id, "name": "x"})
        assert early.status_code == 422 and "upload_url" in early.json()["detail"]
        # a wrong token is a 404, and so is another team's build
        assert httpx.put(url.split("?")[0] + "?token=nope", content=b"x").status_code == 404
        assert api.get(f"/v2/builds/{uuid.uuid4()}/status").status_code == 404
        assert httpx.put(url, content=b"not a tarball").status_code == 200
        missing = api.post("/v2/builds/trigger", json={"build_id": build_id})
        assert missing.status_code == 422 and "name" in missing.json()["detail"]
        bad = api.post(
            "/v2/builds/trigger",
            json={"build_id": build_id, "name": "x", "environment_variables": {"A": 1}},
        )
        assert bad.status_code == 422
        # unauthenticated registry calls are refused
    assert httpx.get(f"{platform.url}/v2/registry").status_code == 401


def test_log_stream_refuses_a_bad_key(platform: Platform) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    key = team_key(platform)
    with platform.api(key) as api:
        build_id = api.post("/v2/builds/upload-url").json()["build_id"]
    ws_url = platform.url.replace("http://", "ws://") + f"/v2/builds/{build_id}/logs"
    with connect(f"{ws_url}?api_key=wrong") as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    with (
        connect(f"{ws_url}?api_key={team_key(platform)}") as ws,
        pytest.raises(ConnectionClosed) as other,
    ):
        ws.recv(timeout=10)
    assert other.value.rcvd is not None and other.value.rcvd.code == 4003


def _ours(platform: Platform, key: str, cwd: Path, *args: str) -> object:
    return run_cli(list(args), cli_env(platform, key, make_home()), cwd=cwd, ours=True)


def test_our_deploy_refuses_bad_input(platform: Platform, tmp_path: Path) -> None:
    key = team_key(platform)
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _ours(platform, key, empty, "deploy", ".", "--yes")
    assert proc.returncode == 1 and "no Environment(...) declaration" in proc.stderr
    assert "Traceback" not in proc.stderr
    env_dir = tmp_path / "one"
    env_dir.mkdir()
    (env_dir / "env.py").write_text("from hud import Environment\nenv = Environment('one')\n")
    (env_dir / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    bad = _ours(platform, key, env_dir, "deploy", ".", "--yes", "-e", "NOEQUALS")
    assert bad.returncode == 1 and "--env 'NOEQUALS' is not KEY=VALUE" in bad.stderr
    (env_dir / ".env").write_text("TOKEN=abc\n")
    seeded = _ours(platform, key, env_dir, "deploy", ".", "--yes")
    assert seeded.returncode == 1 and "--env-file .env" in seeded.stderr
    # --all --dry-run lists every environment directory, building nothing
    two = tmp_path / "two"
    two.mkdir()
    (two / "env.py").write_text("from hud import Environment\nenv = Environment(name='two')\n")
    (two / "compose.yaml").write_text("services: {}\n")
    listed = _ours(platform, key, tmp_path, "deploy", ".", "--all", "--dry-run", "--no-env",
                   "--json")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    plans = json.loads(listed.stdout)
    assert sorted(p["name"] for p in plans) == ["one", "two"]
    assert all(p["dry_run"] for p in plans)
