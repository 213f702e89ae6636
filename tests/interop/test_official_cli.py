"""The official `hud task` CLI (0.6.21) attached to our `hud serve`.

`hud task start` parks the task on our server (the CLI disconnects without `bye`); a separate
`hud task grade` adopts it with a bare `tasks.grade`. Each flow gets its own server (a bare grade
adopts *any* single parked task), and the flows run in parallel to keep the module fast; each
test then checks one flow's recorded outcome.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .helpers import (
    INTEROP_DIR,
    INTEROP_ENV,
    ServerProcess,
    Wire,
    events,
    peer_cli,
    requires_peer,
    start_server,
)

pytestmark = requires_peer

Flow = Callable[[ServerProcess], dict[str, Any]]
FLOWS: dict[str, Flow] = {}


def flow(fn: Flow) -> Flow:
    FLOWS[fn.__name__] = fn
    return fn


def parked(server: ServerProcess) -> dict[str, Any]:
    """What a bare ``tasks.grade`` on a fresh connection gets (consumes a parked task!)."""
    with Wire(server.port) as w:
        return w.request("tasks.grade", {"answer": ""})


NOTHING_PARKED = {"code": -32600, "message": "no task in progress"}


@flow
def plain(server: ServerProcess) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["start"] = peer_cli(
        "task", "start", "track", "--args", '{"tag": "cli"}', "--url", server.url
    )
    out["events_after_start"] = events(server.port)
    out["grade"] = peer_cli("task", "grade", "track", "--answer", "cli", "--url", server.url)
    out["events_after_grade"] = events(server.port)
    out["parked_after"] = parked(server)
    return out


@flow
def fallback(server: ServerProcess) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["grade"] = peer_cli(
        "task", "grade", "greet", "--args", '{"name": "Eve"}', "--answer", "hello Eve",
        "--url", server.url,
    )  # fmt: skip
    out["parked_after"] = parked(server)
    return out


@flow
def slug_as_id(server: ServerProcess) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["start"] = peer_cli("task", "start", "greet-c01881c9", "--url", server.url)
    out["parked_after"] = parked(server)
    return out


@flow
def by_source(server: ServerProcess) -> dict[str, Any]:
    source = str(INTEROP_DIR / "tasks.py")
    out: dict[str, Any] = {}
    out["start"] = peer_cli(
        "task", "start", "greet-c01881c9", "--source", source, "--url", server.url, "--json"
    )
    out["grade"] = peer_cli(
        "task", "grade", "greet-c01881c9", "--source", source, "--answer", "hello Ada",
        "--url", server.url, "--json",
    )  # fmt: skip
    out["parked_after"] = parked(server)
    return out


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServerProcess]]:
    started: dict[str, ServerProcess] = {}
    try:
        for name in FLOWS:
            started[name] = start_server("ours", INTEROP_ENV, cli=True)
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def outcomes(servers: dict[str, ServerProcess]) -> dict[str, Any]:
    def run(name: str) -> Any:
        try:
            return FLOWS[name](servers[name])
        except Exception as exc:  # reported by the test that reads this flow
            return exc

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(FLOWS, pool.map(run, FLOWS), strict=True))


def outcome(outcomes: dict[str, Any], name: str) -> dict[str, Any]:
    result = outcomes[name]
    if isinstance(result, Exception):
        raise result
    return result


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout={proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_serve_banner(servers: dict[str, ServerProcess]) -> None:
    server = servers["plain"]
    text = "".join(server.output)
    assert "interop" in text
    assert f"tcp://127.0.0.1:{server.port}" in text
    assert f"HUD_SERVE_PORT={server.port}\n" in server.output


def test_start_prints_prompt_and_parks_then_grade_prints_reward(outcomes: dict[str, Any]) -> None:
    out = outcome(outcomes, "plain")
    assert ok(out["start"]) == "track cli\n"
    assert out["events_after_start"][-1] == "start:cli"  # parked, not torn down
    assert ok(out["grade"]) == "1.0\n"
    assert out["events_after_grade"][-2:] == ["answer:cli:cli", "close:cli"]
    assert out["parked_after"]["error"] == NOTHING_PARKED


def test_grade_without_start_falls_back_to_start_and_grade(outcomes: dict[str, Any]) -> None:
    # The bare tasks.grade fails (-32600 no task in progress); the CLI then starts + grades.
    out = outcome(outcomes, "fallback")
    assert ok(out["grade"]) == "1.0\n"
    assert out["parked_after"]["error"] == NOTHING_PARKED


def test_slug_without_source_is_sent_as_id(outcomes: dict[str, Any]) -> None:
    # 0.6.21 sends TASK verbatim when attaching without --source.
    out = outcome(outcomes, "slug_as_id")
    assert out["start"].returncode == 1, out["start"]
    assert "hud rpc error -32602: unknown task: 'greet-c01881c9'" in out["start"].stderr
    assert out["parked_after"]["error"] == NOTHING_PARKED


def test_slug_resolved_by_source_with_json_output(outcomes: dict[str, Any]) -> None:
    out = outcome(outcomes, "by_source")
    assert json.loads(ok(out["start"])) == {"prompt": "Say hello to Ada!"}
    assert json.loads(ok(out["grade"])) == {"score": 1.0}
    assert out["parked_after"]["error"] == NOTHING_PARKED
