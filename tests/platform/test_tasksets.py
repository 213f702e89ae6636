"""Tasksets and `hud sync` against a live platform (SQLite and PostgreSQL), with the official
0.6.21 CLI and with ours: `sync env` links a directory, `sync tasks` creates a taskset, a second
run changes nothing, an edited row is an update; rows that do not fit the deployed environment's
manifest are refused one line per row and nothing is written (spec platform.md §1, §4)."""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections.abc import Iterator
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
from tests.platform.helpers import Platform, make_home, requires_extra, requires_peer, run_cli

pytestmark = [requires_extra]

ROWS = [
    {"env": "demo_env", "id": "count", "args": {"sentence": "banana", "letter": "a"},
     "slug": "count-a"},
    {"env": "demo_env", "id": "count", "args": {"sentence": "cherry", "letter": "r"},
     "slug": "count-r", "columns": {"difficulty": "easy"}},
]  # fmt: skip


@pytest.fixture(scope="module")
def deployed(platform: Platform) -> Iterator[dict[str, Any]]:
    """The scaffold deployed (our CLI) by a team of its own."""
    python_base()
    work = Path(tempfile.mkdtemp(prefix="hud-tasksets-"))
    key = team_key(platform)
    project = scaffold(work, "demo_env")
    proc = deploy(platform, key, make_home(), project, ours=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    yield {"key": key, "work": work, "project": project, "env_id": linked(project)["registry_id"]}
    remove_platform_images(platform)
    shutil.rmtree(work, ignore_errors=True)


def _cli(platform: Platform, key: str, cwd: Path, *args: str, ours: bool) -> Any:
    return run_cli(list(args), cli_env(platform, key, make_home()), cwd=cwd, ours=ours)


def _export(platform: Platform, key: str, taskset_id: str) -> dict[str, dict[str, Any]]:
    with platform.api(key) as api:
        reply = api.get(f"/v2/tasksets/{taskset_id}/export")
        assert reply.status_code == 200, reply.text
        return {t["name"]: t for t in reply.json()["tasks"]}


@pytest.mark.parametrize("ours", [False, True], ids=["official", "ours"])
def test_sync_env_and_tasks(
    platform: Platform, deployed: dict[str, Any], ours: bool, request: pytest.FixtureRequest
) -> None:
    if not ours:
        for mark in requires_peer:
            request.applymarker(mark)
    key = deployed["key"]
    here = Path(tempfile.mkdtemp(dir=deployed["work"]))
    linked_env = _cli(platform, key, here, "sync", "env", "demo_env", ".", ours=ours)
    assert linked_env.returncode == 0, linked_env.stdout + linked_env.stderr
    link = linked(here)
    assert link["registry_id"] == deployed["env_id"]
    assert link["scope"]["origin"] == platform.url

    (here / "tasks.json").write_text(json.dumps(ROWS))
    name = f"set-{'ours' if ours else 'official'}"
    first = _cli(platform, key, here, "sync", "tasks", name, "tasks.json", "--yes", ours=ours)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    taskset_id = linked(here)["taskset_id"]
    remote = _export(platform, key, taskset_id)
    assert set(remote) == {"count-a", "count-r"}
    assert remote["count-r"]["scenario"] == "count" and remote["count-r"]["env"] == "demo_env"
    assert remote["count-r"]["columns"] == {"difficulty": "easy"}
    assert remote["count-a"]["args"] == {"sentence": "banana", "letter": "a"}

    second = _cli(platform, key, here, "sync", "tasks", name, "tasks.json", "--yes", ours=ours)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    assert "Unchanged: 2" in out or "2 unchanged" in out
    assert {t["version"] for t in _export(platform, key, taskset_id).values()} == {1}

    edited = [dict(ROWS[0]), {**ROWS[1], "args": {"sentence": "cherries", "letter": "r"}}]
    (here / "tasks.json").write_text(json.dumps(edited))
    third = _cli(platform, key, here, "sync", "tasks", name, "tasks.json", "--yes", ours=ours)
    out = third.stdout + third.stderr
    assert third.returncode == 0, out
    assert "Update: 1" in out or "1 update" in out
    after = _export(platform, key, taskset_id)
    assert after["count-r"]["args"]["sentence"] == "cherries" and after["count-r"]["version"] == 2
    assert after["count-a"]["version"] == 1


def test_our_sync_plan_dry_run_and_export(platform: Platform, deployed: dict[str, Any]) -> None:
    key = deployed["key"]
    here = Path(tempfile.mkdtemp(dir=deployed["work"]))
    assert _cli(platform, key, here, "sync", "env", "demo_env", ours=True).returncode == 0
    (here / "tasks.json").write_text(json.dumps(ROWS))
    dry = _cli(platform, key, here, "sync", "tasks", "dry-set", "tasks.json", "--dry-run",
               "--json", ours=True)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["create"] == ["count-a", "count-r"] and plan["uploaded"] is False
    with platform.api(key) as api:
        assert api.get("/v2/tasksets/by-name/dry-set").status_code == 404  # nothing written
    done = _cli(platform, key, here, "sync", "tasks", "dry-set", "tasks.json", "-y", ours=True)
    assert done.returncode == 0, done.stderr
    # a row only on the platform is reported remote-only, and kept
    (here / "tasks.json").write_text(json.dumps(ROWS[:1]))
    plan2 = _cli(platform, key, here, "sync", "tasks", "dry-set", "tasks.json", "--dry-run",
                 ours=True)  # fmt: skip
    assert "Remote-only: count-r" in plan2.stdout and "1 unchanged" in plan2.stdout
    for suffix in (".json", ".jsonl", ".csv"):
        target = here / f"out{suffix}"
        got = _cli(platform, key, here, "sync", "tasks", "dry-set", "--export", str(target),
                   ours=True)  # fmt: skip
        assert got.returncode == 0, got.stderr
        text = target.read_text()
        if suffix == ".json":
            rows = json.loads(text)
        elif suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines()]
        else:
            rows = [{**r, "args": json.loads(r["args"])} for r in csv.DictReader(text.splitlines())]
        assert sorted(r["slug"] for r in rows) == ["count-a", "count-r"]
        assert {r["slug"]: r["args"] for r in rows}["count-a"] == ROWS[0]["args"]


BAD = [
    ROWS[0],
    {"env": "demo_env", "id": "nope", "args": {}, "slug": "bad-template"},
    {"env": "demo_env", "id": "count", "args": {"sentence": "x"}, "slug": "bad-missing"},
    {"env": "demo_env", "id": "count", "args": {"sentence": 3, "letter": "a", "x": 1},
     "slug": "bad-types"},
    {"env": "not-deployed", "id": "count", "args": {}, "slug": "bad-env"},
]  # fmt: skip


def test_rows_checked_against_the_manifest(platform: Platform, deployed: dict[str, Any]) -> None:
    key = deployed["key"]
    here = Path(tempfile.mkdtemp(dir=deployed["work"]))
    # server side: one line per bad row, and nothing written
    items = [
        {"name": r["slug"], "env": {"name": r["env"]}, "task_id": r["id"], "args": r["args"]}
        for r in BAD
    ]
    with platform.api(key) as api:
        reply = api.post("/v2/tasks/upload", json={"taskset_name": "bad-set", "tasks": items})
        assert reply.status_code == 422, reply.text
        lines = reply.json()["detail"].splitlines()
        assert len(lines) == 4
        assert "task bad-template: environment 'demo_env' has no template 'nope'" in lines[0]
        assert "(templates: count)" in lines[0]
        assert lines[1] == "task bad-missing: count: missing argument(s) letter"
        assert (
            "argument sentence should be string" in lines[2] and "unknown argument(s) x" in lines[2]
        )
        assert "'not-deployed' has no successful build" in lines[3]
        assert api.get("/v2/tasksets/by-name/bad-set").status_code == 404

    # our CLI checks rows against the linked environment before uploading
    assert _cli(platform, key, here, "sync", "env", "demo_env", ours=True).returncode == 0
    (here / "tasks.json").write_text(json.dumps(BAD[:4]))
    proc = _cli(platform, key, here, "sync", "tasks", "bad-set", "tasks.json", "-y", ours=True)
    assert proc.returncode == 1
    err = proc.stderr
    assert "3 task(s) do not fit environment 'demo-env'" in err
    assert "task bad-missing: count: missing argument(s) letter" in err
    assert "Traceback" not in err
    with platform.api(key) as api:
        assert api.get("/v2/tasksets/by-name/bad-set").status_code == 404
