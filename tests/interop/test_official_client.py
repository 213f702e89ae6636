"""The official hud client (Python API) driving our server.

One run of `peer_scripts/official_client.py` under the official interpreter exercises every
scenario against a dedicated server of ours; each test checks one scenario's outcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import (
    INTEROP_ENV,
    ServerProcess,
    requires_peer,
    run_peer_script,
    run_script,
    start_server,
)

pytestmark = requires_peer

SESSION_ID = re.compile(r"^sess-[0-9a-f]{8}$")
ROUTED = re.compile(r"^tcp://127\.0\.0\.1:(\d+)$")


@pytest.fixture(scope="module")
def ours() -> Iterator[ServerProcess]:
    server = start_server("ours", INTEROP_ENV)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def results(ours: ServerProcess) -> dict[str, Any]:
    return run_peer_script("official_client.py", ours.url, timeout=120)


@pytest.fixture
def scenario(results: dict[str, Any], request: pytest.FixtureRequest) -> Any:
    name = request.node.get_closest_marker("scenario").args[0]
    assert name in results, f"scenario {name!r} did not run"
    outcome = results[name]
    assert not (isinstance(outcome, dict) and "raised" in outcome), outcome
    return outcome


def uses(name: str) -> pytest.MarkDecorator:
    """Select the official-client scenario a test checks (see the ``scenario`` fixture)."""
    return pytest.mark.scenario(name)


def rpc_error(outcome: dict[str, Any]) -> tuple[str, int, str]:
    assert "error" in outcome, outcome
    e = outcome["error"]
    return e["type"], e["code"], e["message"]


# -- handshake and listing -------------------------------------------------------------
@uses("hello")
def test_hello_manifest(scenario: dict[str, Any]) -> None:
    assert SESSION_ID.match(scenario["session_id"])
    assert scenario["protocol_version"] == "hud/1.0"
    assert scenario["server"] == ["interop", "1.2.3"]
    names = [b[0] for b in scenario["bindings"]]
    assert names == ["echo", "dead", "nohost", "tools"]
    echo = scenario["bindings"][0]
    assert echo[1] == "echo/1" and ROUTED.match(echo[2]) and echo[3] == {}
    assert scenario["bindings"][3] == [
        "tools",
        "mcp/2025-11-25",
        "http://127.0.0.1:80/mcp",
        {"transport": "streamable-http"},
    ]
    # The heartbeat (hello with the own id) keeps the session.
    assert scenario["heartbeat_session_id"] == scenario["session_id"]


@uses("list")
def test_list_tasks(scenario: list[dict[str, Any]]) -> None:
    by_id = {t["id"]: t for t in scenario}
    assert list(by_id)[:3] == ["greet", "add", "parsed"]
    assert by_id["greet"] == {
        "id": "greet",
        "description": "Greet someone",
        "args": {
            "properties": {
                "name": {"title": "Name", "type": "string"},
                "punctuation": {"default": "!", "title": "Punctuation", "type": "string"},
            },
            "required": ["name"],
            "type": "object",
            "additionalProperties": False,
        },
    }
    assert by_id["add"]["returns"] == {"type": "integer"}
    assert "input" not in by_id["add"]
    assert by_id["events"]["args"] == {
        "properties": {},
        "type": "object",
        "additionalProperties": False,
    }
    assert by_id["shapes"]["args"]["additionalProperties"] is True
    assert by_id["shapes"]["args"]["properties"]["tags"] == {"default": None, "title": "Tags"}


# -- start and grade -------------------------------------------------------------------
@uses("string_answer")
def test_string_answer(scenario: dict[str, Any]) -> None:
    assert scenario["start"] == {"prompt": "Say hello to bob!"}
    assert scenario["right"] == {"score": 1.0}
    assert scenario["wrong"] == {"score": 0.0}


@uses("answer_int")
def test_answer_int_json_coercion(scenario: dict[str, Any]) -> None:
    # "2" coerced to int for the arg; "5" parsed as JSON text for Answer[int].
    assert scenario["start"] == {"prompt": "What is 2 + 3?"}
    assert scenario["json_text"] == {"score": 1.0}
    assert scenario["wrong"] == {"score": 0.0}
    assert scenario["not_json"] == {"score": 0.0}
    assert scenario["parsed_object"] == {
        "score": 1.0,
        "content": {"k": [1, 2]},
        "raw": '{"k": [1, 2]}',
    }
    assert scenario["parsed_none"] == {"score": 1.0, "content": "", "raw": ""}
    assert scenario["run_prompt"] == "What is 20 + 22?"
    assert scenario["run_reward"] == 1.0


@uses("evalres")
def test_evaluation_result_frame(scenario: dict[str, Any]) -> None:
    expected = {
        "done": True,
        "content": "c",
        "info": {},
        "isError": False,
        "subscores": [{"name": "s", "weight": 1.0, "value": 0.25, "children": None, "info": None}],
        "score": 0.25,
    }
    assert scenario["frame"] == expected
    assert scenario["keys"] == ["done", "content", "info", "isError", "subscores", "score"]
    grade = scenario["grade"]
    assert grade["reward"] == 0.25 and grade["content"] == "c" and grade["is_error"] is False
    assert grade["raw"] == expected


@uses("dictgrade")
def test_dict_grade_kept_verbatim(scenario: dict[str, Any]) -> None:
    assert scenario["frame"] == {"score": 0.5, "info": {"a": 1}, "custom": "x"}
    assert scenario["keys"] == ["score", "info", "custom"]
    assert scenario["grade"]["reward"] == 0.5
    assert scenario["grade"]["info"] == {"a": 1}
    assert scenario["grade"]["raw"]["custom"] == "x"


@uses("subscore")
def test_subscore_grade_g12(scenario: dict[str, Any]) -> None:
    # G12: our server turns a SubScore yield into a score + summary the official client accepts.
    assert scenario["frame"] == {
        "result": {
            "score": 0.75,
            "subscores": [{"name": "s", "weight": 1.0, "value": 0.75, "children": None}],
        }
    }
    assert scenario["grade"]["reward"] == 0.75 and scenario["grade"]["is_error"] is False


@uses("boolgrade")
def test_bool_grade_g7(scenario: dict[str, Any]) -> None:
    # G7: a bool reward goes out as 1.0, which the official client accepts.
    assert scenario == {"result": {"score": 1.0}}


@uses("noreward")
def test_no_second_yield_scores_zero(scenario: dict[str, Any]) -> None:
    assert scenario == {"score": 0.0}


@uses("prompts")
def test_prompt_frames(scenario: dict[str, Any]) -> None:
    assert scenario["framed"] == {
        "prompt": [{"role": "user", "content": "hi"}],
        "bindings": {"echo": {"token": "t"}},
        "extra": 5,
    }
    assert scenario["question"] == {"prompt": {"question": "x"}}
    assert scenario["run_bindings"] == {"echo": {"token": "t"}}
    assert scenario["run_prompt_text"] == "hi"
    assert scenario["question_reward"] == 1.0


@uses("errors")
def test_error_frames(scenario: dict[str, Any]) -> None:
    hpe = "HudProtocolError"
    assert rpc_error(scenario["unknown_task"]) == (hpe, -32602, "unknown task: 'nope'")
    assert rpc_error(scenario["bad_args"]) == (
        hpe,
        -32000,
        "task 'greet': bad args []: missing a required argument: 'name'",
    )
    assert rpc_error(scenario["extra_args"]) == (
        hpe,
        -32000,
        "task 'greet': bad args ['name', 'zzz']: got an unexpected keyword argument 'zzz'",
    )
    # G5: prelude exceptions are setup failures, never "unknown task".
    assert rpc_error(scenario["keyerr"]) == (
        hpe,
        -32000,
        "task 'keyerr' failed during setup: KeyError: 'boom'",
    )
    assert rpc_error(scenario["crash"]) == (
        hpe,
        -32000,
        "task 'crash' failed during setup: ValueError: kaput",
    )
    assert rpc_error(scenario["noyield"])[:2] == (hpe, -32000)
    assert rpc_error(scenario["nothing_to_grade"]) == (hpe, -32600, "no task in progress")
    assert rpc_error(scenario["strgrade"]) == (
        hpe,
        -32000,
        "task graded with str: yield a number, an object with a numeric .reward, "
        "or a dict containing a numeric 'score'",
    )
    assert rpc_error(scenario["noscore"]) == (
        hpe,
        -32000,
        "task 'noscore' graded with a dict missing a numeric 'score' (keys: ['foo'])",
    )
    assert rpc_error(scenario["bad_session_type"]) == (
        hpe,
        -32602,
        "hello: 'session_id' must be a string",
    )
    assert scenario["after"] == {"score": 1.0}


@uses("cancel")
def test_cancel(scenario: dict[str, Any]) -> None:
    assert rpc_error(scenario["grade_after"])[1:] == (-32600, "no task in progress")
    assert scenario["events"][-2:] == ["start:c1", "close:c1"]


@uses("task_run")
def test_task_and_taskset_run(scenario: dict[str, Any]) -> None:
    assert scenario["single"] == {"reward": 1.0, "runs": [[1.0, "completed"]]}
    runs = scenario["taskset"]["runs"]
    assert runs == [
        ["add-8041da5c", 1.0, "completed", "What is 1 + 2?"],
        ["greet-0fd53ef5", 0.0, "completed", "Say hello to y!"],
        ["evalres", 0.25, "completed", "evaluate me"],
    ]
    assert scenario["taskset"]["reward"] == pytest.approx(1.25 / 3)


# -- sessions --------------------------------------------------------------------------
@uses("concurrent")
def test_concurrent_grading_on_two_connections(scenario: dict[str, Any]) -> None:
    assert scenario["a"] == {"score": 1.0}
    assert scenario["b"] == {"score": 0.0}
    # Each grade sleeps 0.6 s inside the template: run one after the other would take 1.2 s.
    assert scenario["elapsed"] < 1.1
    tail = scenario["events"][-6:]
    assert sorted(tail) == sorted(
        ["start:k1", "start:k2", "answer:k1:k1", "answer:k2:wrong", "close:k1", "close:k2"]
    )


@uses("restart")
def test_restart_in_session_replaces(scenario: dict[str, Any]) -> None:
    assert scenario["mid"][-3:] == ["start:r1", "close:r1", "start:r2"]
    assert scenario["grade"] == {"score": 1.0}
    assert scenario["events"][-2:] == ["answer:r2:r2", "close:r2"]


@uses("park")
def test_disconnect_parks_and_bare_grade_adopts(scenario: dict[str, Any]) -> None:
    # Parked: started, not closed (no teardown) after the client went away.
    assert scenario["parked"][-1] == "start:p1"
    assert scenario["adopted"] == {"score": 1.0}
    assert rpc_error(scenario["then"])[1:] == (-32600, "no task in progress")
    assert scenario["events"][-2:] == ["answer:p1:p1", "close:p1"]


@uses("ambiguous")
def test_two_parked_ambiguity_and_resume(scenario: dict[str, Any]) -> None:
    a, b = scenario["ids"]
    first, second = sorted([a, b])
    assert rpc_error(scenario["ambiguous"])[1:] == (
        -32600,
        f"2 parked sessions ({first}, {second}); resume one by sending hello with its session_id",
    )
    assert scenario["resumed"] == a
    assert scenario["resumed_bindings"] == ["echo", "dead", "nohost", "tools"]
    assert scenario["first"] == {"score": 1.0}
    assert scenario["resumed2"] == b
    assert scenario["second"] == {"score": 1.0}
    assert scenario["events"][-6:] == [
        "start:a1",
        "start:a2",
        "answer:a1:a1",
        "close:a1",
        "answer:a2:a2",
        "close:a2",
    ]


@uses("sessions_errors")
def test_unknown_and_live_sessions(scenario: dict[str, Any]) -> None:
    assert rpc_error(scenario["unknown"])[1:] == (-32600, "unknown session: 'sess-00000000'")
    sid = scenario["sid"]
    assert rpc_error(scenario["live"])[1:] == (-32600, f"session '{sid}' has a live connection")
    assert scenario["still"] == {"score": 1.0}


# -- tunnels ---------------------------------------------------------------------------
@uses("tunnel")
def test_tunnel_through_official_forwarder(scenario: dict[str, Any]) -> None:
    native, routed = scenario["native"], scenario["routed"]
    assert ROUTED.match(native) and ROUTED.match(routed) and native != routed
    assert scenario["by_protocol"] == "echo"
    name, url, params = scenario["mcp"]
    assert name == "tools" and re.match(r"^http://127\.0\.0\.1:\d+/mcp$", url)
    assert url != "http://127.0.0.1:80/mcp" and params == {"transport": "streamable-http"}
    assert "no capability 'nope'" in scenario["unknown"]["message"]
    assert scenario["roundtrip_ok"] is True
    assert scenario["concurrent_ok"] == [True] * 8
    assert scenario["dead"] == ""  # the backend refused: the forwarder closes the local side
    assert scenario["after_close"] == "ConnectionRefusedError"


# -- rollouts ----------------------------------------------------------------------------
@uses("verifier")
def test_verifier_graded_on_same_connection(scenario: dict[str, Any]) -> None:
    # The verifier gets {"answer": <actor's raw grade frame>} (a dict, not a string).
    assert scenario["status"] == "completed"
    assert scenario["reward"] == 1.0
    assert scenario["grade"]["raw"] == {
        "score": 1.0,
        "content": {"score": 1.0},
        "raw": "{'score': 1.0}",
    }


@uses("timeout")
def test_rollout_timeout_cancels_task(scenario: dict[str, Any]) -> None:
    assert scenario["status"] == "error" and scenario["stop_reason"] == "timeout"
    assert scenario["reward"] == 0.0
    assert scenario["elapsed"] < 5
    assert scenario["events"][-2:] == ["start:to", "close:to"]  # tasks.cancel ran teardown


# -- the same script against our client ----------------------------------------------------
_VARYING = [
    (re.compile(r"sess-[0-9a-f]{8}"), "sess-*"),
    (re.compile(r"127\.0\.0\.1:(?!1\b|80\b)\d+"), "127.0.0.1:*"),
]


def _normalized(outcome: Any) -> Any:
    """Session ids, ephemeral ports and timings vary from run to run."""
    if isinstance(outcome, dict):
        return {k: ("*" if k == "elapsed" else _normalized(v)) for k, v in outcome.items()}
    if isinstance(outcome, list):
        return [_normalized(v) for v in outcome]
    if isinstance(outcome, str):
        for pattern, repl in _VARYING:
            outcome = pattern.sub(repl, outcome)
    return outcome


@pytest.fixture(scope="module")
def our_results() -> dict[str, Any]:
    """The official-API script, unchanged, under our package against a fresh server of ours."""
    server = start_server("ours", INTEROP_ENV)
    try:
        return run_script("ours", "official_client.py", server.url, timeout=120)
    finally:
        server.stop()


def test_official_api_script_runs_unchanged_on_our_client(
    results: dict[str, Any], our_results: dict[str, Any]
) -> None:
    """A script written against the official `HudClient` (``connect(Runtime(...))``,
    ``hello()`` attributes, ``start_task(id, args)``, ``grade({"answer": ...})``, synchronous
    ``binding(ref)``, ``Taskset.run``...) gives the same results with our client as with theirs.
    One documented difference: our ``cancel()`` returns the server's result frame (theirs
    returns None)."""
    ours = _normalized(our_results)
    theirs = _normalized(results)
    for key in ("cancel", "again"):
        assert ours["cancel"][key] == {"cancelled": True} and theirs["cancel"][key] is None
        ours["cancel"][key] = theirs["cancel"][key] = None
    assert list(ours) == list(theirs)
    for name in theirs:
        assert ours[name] == theirs[name], name
