"""`hud models` (spec platform.md §10) with our CLI and the official 0.6.21 CLI on a live
platform: the catalog, forks (409 on a second fork), the checkpoint tree, the head; moving the
head changes which upstream the gateway calls for the fork's name."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.fakes import FakeProvider, Reply
from tests.platform.gateway_helpers import add_upstream, unique
from tests.platform.helpers import (
    HAVE_PEER,
    PEER_HUD,
    Platform,
    base_env,
    make_home,
    requires_extra,
    run_cli,
)

pytestmark = requires_extra


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    """Three upstreams that say who they are."""
    made = {n: FakeProvider(handler=lambda _r, n=n: Reply(text=f"from-{n}")) for n in "ABC"}
    for fake in made.values():
        fake.__enter__()
    yield made
    for fake in made.values():
        fake.__exit__(None, None, None)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hud-models-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def cli(platform: Platform, key: str, cwd: Path, which: str, *args: str) -> Any:
    env = {**base_env(make_home()), **platform.client_env(key)}
    if which == "official":
        args = (*args, "--yes") if args[:2] in (("models", "fork"),) or "--set" in args else args
    return run_cli(list(args), env, cwd=cwd, ours=which == "ours")


def ask(platform: Platform, key: str, model: str, **extra: Any) -> str:
    """One chat call through the gateway; the upstream's answer names it."""
    body = {"model": model, "messages": [{"role": "user", "content": "who?"}], **extra}
    with platform.api(key) as api:
        reply = api.post("/gateway/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()["choices"][0]["message"]["content"]


# The official CLI runs this on SQLite (ours covers PostgreSQL).
@pytest.mark.cases(lambda which, platform: which == "ours" or platform == "sqlite")
@pytest.mark.parametrize("which", ["ours", "official"])
def test_models_round_trip_and_head_routes_the_gateway(
    which: str, platform: Platform, fakes: dict[str, FakeProvider], workdir: Path
) -> None:
    if which == "official" and not HAVE_PEER:
        pytest.skip(f"official hud not installed at {PEER_HUD} (make peer)")
    source = unique("base-model")
    add_upstream(platform, "openai_compatible", fakes["A"].url + "/v1", source)
    team = unique("models-team")
    assert platform.hud("team", "add", team).returncode == 0
    key = platform.new_key("--team", team, "--name", "models")
    fork_name = unique("fork")

    listed = cli(platform, key, workdir, which, "models", "list")
    assert listed.returncode == 0, listed.stderr
    assert source in listed.stdout and "openai_compatible" in listed.stdout

    forked = cli(platform, key, workdir, which, "models", "fork", source, "--name", fork_name)
    assert forked.returncode == 0, forked.stderr
    slug = f"{team}/{fork_name}"
    assert slug in forked.stdout
    again = cli(platform, key, workdir, which, "models", "fork", source, "--name", fork_name)
    assert again.returncode == 1 and "already exists" in again.stdout + again.stderr
    assert "Traceback" not in again.stderr

    with platform.api(key) as api:
        catalog = api.get("/v2/models", params={"limit": 1000}).json()["items"]
        model = next(m for m in catalog if m["model_name"] == slug)
        assert model["is_trainable"] and model["sdk_agent_type"] == "openai_compatible"
        c1 = api.post(f"/v2/models/{model['id']}/checkpoints", json={
            "name": "step-10", "base_url": fakes["B"].url + "/v1", "model": "served-b",
            "metrics": {"mean_reward": 0.5, "num_traces": 8}})  # fmt: skip
        assert c1.status_code == 200, c1.text
        c2 = api.post(f"/v2/models/{model['id']}/checkpoints", json={
            "name": "step-20", "base_url": fakes["C"].url + "/v1", "parent_id": c1.json()["id"],
            "metrics": {"mean_reward": 0.75}})  # fmt: skip
        assert c2.status_code == 200, c2.text
        bad = api.post(f"/v2/models/{model['id']}/checkpoints",
                       json={"name": "x", "metrics": {"note": "text"}})  # fmt: skip
        assert bad.status_code == 422 and "metrics.note" in bad.json()["detail"]
        src = next(m for m in catalog if m["model_name"] == source)
        shared = api.post(f"/v2/models/{src['id']}/checkpoints", json={"name": "x"})
        assert shared.status_code == 422 and "fork it" in shared.json()["detail"]

    trees = cli(platform, key, workdir, which, "models", "checkpoints", fork_name)
    assert trees.returncode == 0, trees.stderr
    for name in ("base", "step-10", "step-20"):
        assert name in trees.stdout
    if which == "ours":  # a tree: step-20 sits under step-10, under base
        lines = trees.stdout.splitlines()
        depth = {n: next(ln.index(n) for ln in lines if n in ln) for n in ("base", "step-10",
                                                                          "step-20")}  # fmt: skip
        assert depth["base"] < depth["step-10"] < depth["step-20"]
    raw = cli(platform, key, workdir, which, "models", "checkpoints", fork_name, "--json")
    rows = json.loads(raw.stdout)
    parents = {r["name"]: r["prev_model_checkpoint_id"] for r in rows}
    ids = {r["name"]: r["id"] for r in rows}
    assert parents == {"base": None, "step-10": ids["base"], "step-20": ids["step-10"]}
    assert [r["name"] for r in rows if r["is_active"]] == ["base"]

    # The head decides which upstream serves the fork's name.
    assert ask(platform, key, slug) == "from-A"  # base: the source model's upstream
    for checkpoint, expected in (("step-10", "from-B"), (ids["step-20"], "from-C"),
                                 ("base", "from-A")):  # fmt: skip
        moved = cli(platform, key, workdir, which, "models", "head", fork_name, "--set", checkpoint)
        assert moved.returncode == 0, moved.stderr
        assert ask(platform, key, slug) == expected
    assert fakes["B"].requests[-1].body["model"] == "served-b"
    assert fakes["C"].requests[-1].body["model"] == slug  # no served name: the catalog's
    # A call naming a checkpoint (the official client's extra_body.checkpoint) goes there.
    assert ask(platform, key, slug, checkpoint="step-20") == "from-C"
    assert "checkpoint" not in fakes["C"].requests[-1].body
    with platform.api(key) as api:
        body = {"model": slug, "checkpoint": "nope", "messages": []}
        assert api.post("/gateway/chat/completions", json=body).status_code == 404
    shown = cli(platform, key, workdir, which, "models", "head", fork_name)
    assert "base" in shown.stdout
    missing = cli(platform, key, workdir, which, "models", "head", fork_name, "--set", "nope")
    assert missing.returncode == 1


def test_our_fork_if_not_exists(platform: Platform, fakes: dict[str, FakeProvider],
                                workdir: Path) -> None:  # fmt: skip
    source = unique("base-model")
    add_upstream(platform, "openai_compatible", fakes["A"].url + "/v1", source)
    key = platform.new_key("--name", "models-ine")
    name = unique("fork")
    first = cli(platform, key, workdir, "ours", "models", "fork", source, "--name", name, "--json")
    second = cli(platform, key, workdir, "ours", "models", "fork", source, "--name", name,
                 "--if-not-exists", "--json")  # fmt: skip
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert json.loads(first.stdout)["id"] == json.loads(second.stdout)["id"]
    unknown = cli(platform, key, workdir, "ours", "models", "head", "no-such-model")
    assert unknown.returncode == 1 and "not found" in unknown.stderr
