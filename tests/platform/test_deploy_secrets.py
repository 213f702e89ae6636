"""A deployed environment run from a platform taskset on this machine (SQLite and PostgreSQL):
`hud eval "<taskset>" oracle --runtime docker` scores 1.0 on the deployed scaffold, and a secret
set with `hud deploy --env` is read by the environment at run time while appearing in no API
reply, build log or its stream, platform log, trace or CLI output (spec platform.md §3.2, §4,
§13). The one exception, on an explicit opt-in only: ``POST /v2/registry/<id>/runtime`` with
``include_secrets`` (``hud eval … --runtime docker --env-secrets``, running the environment on
the caller's machine) returns the values; without it, only their names."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.platform.deploy_helpers import (
    cli_env,
    deploy,
    linked,
    python_base,
    remove_platform_images,
    scaffold,
    team_key,
)
from tests.platform.helpers import Platform, make_home, requires_extra, run_cli

pytestmark = [requires_extra]

SECRET_TEMPLATE = '''

import hashlib
import os


@env.template(solution="ok")
async def secret_check():
    """Scores 1.0 only when the deployed secret reached the environment."""
    answer = yield "Say ok."
    seen = hashlib.sha256(os.environ.get("DEPLOY_SECRET", "").encode()).hexdigest()
    yield 1.0 if str(answer).strip() == "ok" and seen == "{digest}" else 0.0
'''


def _texts(platform: Platform, key: str, env_id: str, build_id: str, taskset_id: str) -> list[str]:
    """Every API reply about the environment, its build, its taskset and the eval's traces."""
    out: list[str] = []
    with platform.api(key) as api:

        def get(path: str, **params: Any) -> Any:
            reply = api.get(path, params=params)
            assert reply.status_code == 200, (path, reply.text)
            out.append(reply.text)
            return reply.json()

        get("/v2/registry", limit=500)
        get(f"/v2/registry/{env_id}")
        get(f"/v2/builds/{build_id}/status")
        get(f"/v2/builds/{build_id}")
        for body in (None, {}, {"include_secrets": False}):  # no opt-in: names, no values
            reply = api.post(f"/v2/registry/{env_id}/runtime", json=body)
            assert reply.status_code == 200, reply.text
            assert reply.json()["secret_names"] == ["DEPLOY_SECRET"]
            assert "environment_variables" not in reply.json()
            out.append(reply.text)
        get(f"/v2/tasksets/{taskset_id}")
        get(f"/v2/tasksets/{taskset_id}/export")
        for job in get("/v2/jobs", limit=100)["items"]:
            for trace in get(f"/v2/jobs/{job['id']}/traces", limit=100)["items"]:
                get(f"/v2/trace/{trace['id']}")
                get(f"/v2/trace/{trace['id']}/spans")
                get(f"/v2/trace/{trace['id']}/events")
    out.append(json.dumps(_stream(platform, key, build_id)))
    return out


def _stream(platform: Platform, key: str, build_id: str) -> list[Any]:
    """The build-log WebSocket's frames (§3.3), to its end."""
    from websockets.sync.client import connect

    url = platform.url.replace("http://", "ws://") + f"/v2/builds/{build_id}/logs?api_key={key}"
    with connect(url) as ws:
        frames = [json.loads(raw) for raw in ws]
    assert frames[-1]["type"] == "complete", frames[-3:]
    return frames


# PostgreSQL only. SQLite: secrets stored and kept out of replies in test_deploy.py's scaffold
# test, a deployed taskset run scoring 1.0 in test_deploy_registry.py.
@pytest.mark.cases(lambda platform: platform == "postgresql")
def test_platform_taskset_eval_with_a_secret(
    platform: Platform, work: Path, request: pytest.FixtureRequest
) -> None:
    python_base()
    request.addfinalizer(lambda: remove_platform_images(platform))
    secret = f"s3cret-{uuid.uuid4().hex}"
    key = team_key(platform)
    home = make_home()
    project = scaffold(work, "demo_env")
    digest = hashlib.sha256(secret.encode()).hexdigest()
    with open(project / "env.py", "a") as fh:
        fh.write(SECRET_TEMPLATE.format(digest=digest))
    shown = deploy(platform, key, home, project, "--env", f"DEPLOY_SECRET={secret}", "--json",
                   ours=True)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-3000:]
    reply = json.loads(shown.stdout)
    assert reply["env_var_keys"] == ["DEPLOY_SECRET"]
    env_id = linked(project)["registry_id"]

    rows = [
        {"env": "demo_env", "id": "count", "args": {"sentence": "banana", "letter": "a"},
         "slug": "count-a"},
        {"env": "demo_env", "id": "secret_check", "args": {}, "slug": "secret"},
    ]  # fmt: skip
    (project / "rows.json").write_text(json.dumps(rows))
    env = cli_env(platform, key, home)
    synced = run_cli(["sync", "tasks", "secret-set", "rows.json", "-y"], env, cwd=project,
                     ours=True)  # fmt: skip
    assert synced.returncode == 0, synced.stdout + synced.stderr
    taskset_id = linked(project)["taskset_id"]

    # on this machine with the secret: an explicit opt-in (the platform sends it only then)
    ran = run_cli(["eval", "secret-set", "oracle", "--runtime", "docker", "--env-secrets",
                   "--all", "--yes", "--json"], env, cwd=project, timeout=600,
                  ours=True)  # fmt: skip
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-3000:]
    report = json.loads(ran.stdout)
    rewards = {r["slug"]: r["reward"] for r in report["runs"]}
    assert rewards == {"count-a": 1.0, "secret": 1.0}

    # the secret is nowhere the platform or the CLI shows anything
    texts = _texts(platform, key, env_id, reply["build_id"], taskset_id)
    assert any("DEPLOY_SECRET" in t for t in texts)  # its name is listed, not its value
    texts += [shown.stdout, shown.stderr, synced.stdout, ran.stdout, ran.stderr]
    texts += [p.read_text(errors="replace") for p in (platform.data_dir / "builds").glob("*")]
    texts.append(platform.log.read_text(errors="replace"))
    texts += [
        p.read_text(errors="replace")
        for p in (project / ".hud").rglob("*")
        if p.is_file() and p.stat().st_size < 10_000_000
    ]
    for path in platform.data_dir.glob("platform.db*"):
        texts.append(path.read_bytes().decode("latin-1"))
    leaks = [t[:200] for t in texts if secret in t]
    assert not leaks, leaks
