"""The same env file served by both implementations gives the same answers.

Raw frames go to our server and to the official one; replies are compared as parsed JSON *with
key order* (non-ASCII escaping may differ, which JSON readers cannot see). Slugs come from each
package's `Taskset.from_file` / `Task(...)` via `peer_scripts/slugs.py` run under each
interpreter. Differences the spec documents (G5, G6, G12, G21) are asserted per side.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .helpers import (
    INTEROP_DIR,
    INTEROP_ENV,
    ServerProcess,
    Wire,
    requires_peer,
    run_script,
    shared_server,
)

pytestmark = requires_peer

IMPLS = ("ours", "peer")


@pytest.fixture(scope="module")
def servers(server_pool: dict[tuple[str, str], ServerProcess]) -> dict[str, ServerProcess]:
    return {impl: shared_server(server_pool, impl, INTEROP_ENV) for impl in IMPLS}


def ordered(line: str | None) -> Any:
    """Parsed JSON where objects become lists of pairs, so key order is compared too."""
    assert line is not None, "connection closed"
    return json.loads(line, object_pairs_hook=lambda pairs: [list(p) for p in pairs])


def exchange(server: ServerProcess, frames: list[dict[str, Any]]) -> list[Any]:
    """Send frames one at a time on one connection; return the ordered replies."""
    replies = []
    with Wire(server.port) as w:
        for frame in frames:
            w.send({"jsonrpc": "2.0", **frame})
            replies.append(ordered(w.read_line()))
        w.send({"jsonrpc": "2.0", "id": "bye", "method": "bye"})
        w.read_line()
    return replies


def both(servers: dict[str, ServerProcess], frames: list[dict[str, Any]]) -> tuple[Any, Any]:
    return exchange(servers["ours"], frames), exchange(servers["peer"], frames)


def start(task: str, args: dict[str, Any] | None = None, rid: int = 1) -> dict[str, Any]:
    params: dict[str, Any] = {"id": task}
    if args is not None:
        params["args"] = args
    return {"id": rid, "method": "tasks.start", "params": params}


def grade(answer: Any, rid: int = 2) -> dict[str, Any]:
    return {"id": rid, "method": "tasks.grade", "params": {"answer": answer}}


TASK_IDS = [
    "greet", "add", "parsed", "evalres", "dictgrade", "subscore", "boolgrade", "strgrade",
    "noscore", "noreward", "framed", "question", "noyield", "keyerr", "crash", "track",
    "events", "shapes", "typed",
]  # fmt: skip


@pytest.fixture(scope="module")
def listings(servers: dict[str, ServerProcess]) -> dict[str, Any]:
    """``tasks.list`` replies (ordered form) from both servers."""
    ours, peer = both(servers, [{"id": 1, "method": "tasks.list", "params": {}}])
    return {"ours": ours[0], "peer": peer[0]}


def manifest_entries(reply: Any) -> dict[str, Any]:
    (tasks,) = [v for k, v in dict(reply)["result"] if k == "tasks"]
    return {dict(entry)["id"]: entry for entry in tasks}


def test_tasks_list_envelope_and_order(listings: dict[str, Any]) -> None:
    for reply in listings.values():
        assert [k for k, _ in reply] == ["jsonrpc", "id", "result"]
        assert list(manifest_entries(reply)) == TASK_IDS


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_task_manifest_identical(listings: dict[str, Any], task_id: str) -> None:
    ours = manifest_entries(listings["ours"])[task_id]
    peer = manifest_entries(listings["peer"])[task_id]
    assert ours == peer


def test_hello_same_manifest(servers: dict[str, ServerProcess]) -> None:
    replies = {}
    for impl, server in servers.items():
        with Wire(server.port) as w:
            replies[impl] = w.call("hello", {})
    ours, peer = replies["ours"], replies["peer"]
    # G3: ours may add result keys (the official client ignores unknown ones).
    assert list(peer) == ["session_id", "env", "bindings"]
    assert list(ours)[:3] == list(peer) and set(ours) - set(peer) <= {"features"}
    assert ours["env"] == peer["env"] == {"name": "interop", "version": "1.2.3"}
    # The echo backend's port differs per process; everything else is the same.
    for manifest in (ours, peer):
        manifest["bindings"][0]["url"] = "tcp://127.0.0.1:PORT"
    assert ours["bindings"] == peer["bindings"]


CASES: list[tuple[str, dict[str, Any] | None, Any]] = [
    ("greet", {"name": "bob"}, "hello bob"),
    ("greet", {"name": "bob"}, "hello Bob"),
    ("greet", {"name": "Zoë ✓ 😀", "punctuation": "?"}, "hello Zoë ✓ 😀"),
    ("add", {"a": 2, "b": 3}, "5"),
    ("add", {"a": "2", "b": "3"}, " 5 "),
    ("add", {"a": "5.0", "b": 1}, "6.0"),
    ("add", {"a": True, "b": 1}, "2"),
    ("add", {"a": 1.5, "b": 1}, "2.5"),
    ("add", {"a": 2, "b": 3}, 5),
    ("add", {"a": 2, "b": 3}, None),
    ("parsed", None, '{"k": [1, 2], "u": "é"}'),
    ("parsed", {}, "[1, 2]"),
    ("parsed", None, {"k": 1}),
    ("parsed", None, 5),
    ("parsed", None, "not json"),
    ("parsed", None, ""),
    ("evalres", None, "x"),
    ("dictgrade", None, "x"),
    ("noreward", None, "x"),
    ("boolgrade", None, "x"),
    ("framed", None, "x"),
    ("question", None, "y"),
    ("shapes", {"text": "t", "count": "7", "ratio": "1", "flag": "true", "tags": "[1]"}, "x"),
    ("shapes", {"text": "t", "extra": {"mood": "ok"}, "zz": [1]}, "x"),
    ("track", {"tag": "par", "delay": "0"}, "par"),
    (
        "typed",
        {
            "point": '{"x": 1}',
            "mode": '"upper"',
            "maybe": "3",
            "items": "[1,2]",
            "prompt": "hi",
            "data": {"file_id": "f"},
            "ref": '{"file_id": "g"}',
            "when": "2024-01-02",
            "anything": "5",
            "untyped": "6",
            "extra1": 1,
        },
        '[1, "0"]',
    ),
    ("typed", {"point": {"x": "1", "y": 2}, "mode": "UPPER", "maybe": "x"}, [1, 2]),
    ("typed", {"point": {"x": 1}, "ref": {"file_id": "f", "path": "/p", "zz": 1}}, "nope"),
]


@pytest.mark.parametrize(("task", "args", "answer"), CASES)
def test_prompts_and_rewards_identical(
    servers: dict[str, ServerProcess], task: str, args: Any, answer: Any
) -> None:
    ours, peer = both(servers, [start(task, args), grade(answer)])
    assert ours == peer
    assert ["result", ours[0][2][1]] == ours[0][2]  # a start result, not an error


ERRORS: list[list[dict[str, Any]]] = [
    [start("nope")],
    [start("greet", {})],
    [start("greet", {"name": "a", "zzz": 1})],
    [{"id": 1, "method": "tasks.start", "params": {"id": 5}}],
    [{"id": 1, "method": "tasks.start", "params": {"id": "greet", "args": [1]}}],
    [{"id": 1, "method": "tasks.start", "params": {}}],
    [{"id": 1, "method": "tasks.start"}],
    [grade("x", rid=1)],
    [start("strgrade"), grade("x")],
    [start("noscore"), grade("x")],
    [{"id": 1, "method": "hello", "params": {"session_id": 5}}],
    [{"id": 1, "method": "hello", "params": {"session_id": "sess-00000000"}}],
    [{"id": 1, "method": "nope"}],
    [{"id": 1, "params": {}}],
    [{"id": 1, "method": "hello"}, {"id": 2, "method": "tunnel.open", "params": {}}],
    [{"id": "abc", "method": "tasks.cancel", "params": None}],
    [{"id": 1.5, "method": "tasks.cancel"}],
]


@pytest.mark.parametrize("frames", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_error_frames_identical(servers: dict[str, ServerProcess], frames: list[Any]) -> None:
    ours, peer = both(servers, frames)
    if frames[0].get("method") == "hello" and len(frames) == 2:
        ours, peer = ours[1:], peer[1:]  # the manifests differ in ports
    assert ours == peer


def tunnel_open(server: ServerProcess, params: Any) -> tuple[Any, bool]:
    with Wire(server.port) as w:
        w.send({"jsonrpc": "2.0", "id": 1, "method": "tunnel.open", "params": params})
        return w.recv(), w.at_eof()


@pytest.mark.parametrize(
    "params", [{"capability": "nohost"}, {"capability": "dead"}, {"capability": 5}, {}]
)
def test_tunnel_errors_identical(servers: dict[str, ServerProcess], params: Any) -> None:
    ours = tunnel_open(servers["ours"], params)
    peer = tunnel_open(servers["peer"], params)
    assert ours == peer
    assert ours[1] is True  # closed after the error frame


def test_unknown_capability_g6(servers: dict[str, ServerProcess]) -> None:
    ours = tunnel_open(servers["ours"], {"capability": "nope"})
    peer = tunnel_open(servers["peer"], {"capability": "nope"})
    assert peer == (
        {
            "jsonrpc": "2.0",
            "id": 1,
            "error": {"code": -32000, "message": "\"unknown capability: 'nope'\""},
        },
        True,
    )
    assert ours == (
        {
            "jsonrpc": "2.0",
            "id": 1,
            "error": {"code": -32000, "message": "unknown capability: 'nope'"},
        },
        True,
    )


@pytest.mark.parametrize(
    ("task", "peer_error", "our_error"),
    [
        # G5: setup exceptions are not "unknown task"; ours names the task and exception type.
        (
            "crash",
            (-32000, "kaput"),
            (-32000, "task 'crash' failed during setup: ValueError: kaput"),
        ),
        (
            "keyerr",
            (-32000, "'boom'"),
            (-32000, "task 'keyerr' failed during setup: KeyError: 'boom'"),
        ),
    ],
)
def test_setup_failures_per_side(
    servers: dict[str, ServerProcess], task: str, peer_error: Any, our_error: Any
) -> None:
    for impl, expected in (("peer", peer_error), ("ours", our_error)):
        with Wire(servers[impl].port) as w:
            assert w.error("tasks.start", {"id": task}) == expected, impl
            # The session goes on and nothing is left to grade.
            assert w.error("tasks.grade", {"answer": "x"}) == (-32600, "no task in progress")


@pytest.mark.parametrize(
    "frames",
    [
        # wire.md §5.3: returning without yielding -> -32000 with an *empty* message.
        [start("noyield")],
        # wire.md §4: an exception while grading -> -32000 with str(exception).
        [start("add", {"a": None, "b": 1}), grade("1")],
    ],
    ids=["noyield", "grading-exception"],
)
def test_template_failure_messages_identical(
    servers: dict[str, ServerProcess], frames: list[Any]
) -> None:
    # No gaps.md item covers these messages, so they must match the reference.
    ours, peer = both(servers, frames)
    assert ours == peer


def test_subscore_grade_per_side(servers: dict[str, ServerProcess]) -> None:
    ours, peer = both(servers, [start("subscore"), grade("x")])
    assert dict(peer[1])["error"] == [
        ["code", -32000],
        [
            "message",
            "task graded with SubScore: yield a number, an object with a numeric .reward, "
            "or a dict containing a numeric 'score'",
        ],
    ]
    # G12
    assert json.loads(json.dumps(dict(ours[1])["result"])) == [
        ["score", 0.75],
        ["subscores", [[["name", "s"], ["weight", 1.0], ["value", 0.75], ["children", None]]]],
    ]


# -- slugs -----------------------------------------------------------------------------
SLUG_ROWS: list[list[Any]] = [
    ["t", {}],
    ["t", {"word": "ab", "n": 2}],
    ["echo", {"word": "ab", "n": 2}],
    ["count", {"sentence": "Strawberry world", "letter": "r"}],
    ["count", {"letter": "a", "sentence": "banana"}],
    ["t", {"u": "Zoë ✓ 😀", "nl": 'a\nb\t"q"\\'}],
    ["t", {"f": 1.0, "g": 0.1, "h": 1e20, "i": 10**30, "j": -0.0, "k": 1e-7}],
    ["t", {"b": True, "n": None, "e": "", "l": [], "o": {}}],
    ["t", {"nested": {"z": [1, {"y": 2, "x": [3.5, "é"]}], "a": None}}],
    ["t", {"list": [3, 1, 2]}],
    ["t", {"1": 1, "10": 2, "2": 3, "A": 4, "a": 5, "_": 6}],
]


MINT: list[list[Any]] = [
    ["greet", ["Ada"], {}],
    ["greet", [], {"name": "Ada", "punctuation": "!"}],  # G14: explicit default -> other slug
    ["add", [2], {"b": "3"}],
    ["greet", [["a", "b"]], {}],
    ["greet", [], {}],
    ["greet", ["a"], {"nope": 1}],
    ["shapes", ["t"], {"count": 2}],
    # Variadic parameters: the reference keeps them under their own names.
    ["shapes", ["t"], {"mood": "ok"}],
    ["typed", [{"x": 1}, "upper", *[None] * 10, "r1", "r2"], {"k": 1}],
]


@pytest.fixture(scope="module")
def slugs() -> dict[str, Any]:
    request = json.dumps(
        {
            "files": [str(INTEROP_DIR / "tasks.py"), str(INTEROP_DIR / "tasks.json")],
            "rows": SLUG_ROWS,
            "env": str(INTEROP_DIR / "env.py"),
            "mint": MINT,
        }
    )
    return {impl: run_script(impl, "slugs.py", input=request) for impl in IMPLS}


def test_row_slugs_identical(slugs: dict[str, Any]) -> None:
    assert slugs["ours"]["rows"] == slugs["peer"]["rows"]
    assert slugs["peer"]["rows"][2] == "echo-6080fd8f"
    assert slugs["peer"]["rows"][3:5] == ["count-4376680e", "count-e8d5ddbb"]


@pytest.mark.parametrize("index", range(len(MINT)), ids=[f"{m[0]}-{i}" for i, m in enumerate(MINT)])
def test_minted_rows_identical(slugs: dict[str, Any], index: int) -> None:
    # sdk.md §3: tmpl(*a, **kw) -> Task(args=<bound args>, defaults not applied).
    assert slugs["ours"]["minted"][index] == slugs["peer"]["minted"][index]


def test_json_taskset_identical(slugs: dict[str, Any]) -> None:
    path = str(INTEROP_DIR / "tasks.json")
    ours, peer = slugs["ours"]["files"][path], slugs["peer"]["files"][path]
    assert isinstance(peer, list), peer
    assert ours == peer


def test_py_taskset_same_rows(slugs: dict[str, Any]) -> None:
    path = str(INTEROP_DIR / "tasks.py")
    ours, peer = slugs["ours"]["files"][path], slugs["peer"]["files"][path]
    assert isinstance(peer, list) and isinstance(ours, list), (ours, peer)
    key = json.dumps
    assert sorted(map(key, ours)) == sorted(map(key, peer))


def test_py_taskset_order_per_side(slugs: dict[str, Any]) -> None:
    path = str(INTEROP_DIR / "tasks.py")
    order = {impl: [row[0] for row in slugs[impl]["files"][path]] for impl in IMPLS}
    # Reference: attributes alphabetically (alpha, explicit, middle, plain, zeta).
    assert order["peer"][:4] == ["add-001a8858", "add-0c14141b", "greet-172bf77f", "greet-bob"]
    assert order["peer"][-2:] == ["evalres", "greet-c01881c9"]
    # G21: ours keeps source order (zeta, alpha, middle, explicit, plain).
    assert order["ours"][:4] == ["greet-c01881c9", "add-001a8858", "add-0c14141b", "greet-172bf77f"]
    assert order["ours"][-2:] == ["greet-bob", "evalres"]


# -- session rules ---------------------------------------------------------------------
def session_story(server: ServerProcess) -> list[Any]:
    """Park, resume, adopt and restart in a fixed order; session ids become labels."""
    labels: dict[str, str] = {}

    def label(value: Any) -> Any:
        text = json.dumps(value)
        for sid, name in labels.items():
            text = text.replace(sid, name)
        return json.loads(text)

    def hello(w: Wire, name: str) -> None:
        labels[w.call("hello")["session_id"]] = name

    story: list[Any] = []
    p = Wire(server.port)
    hello(p, "P")
    p.call("tasks.start", {"id": "track", "args": {"tag": "sP"}})
    p.close()
    x = Wire(server.port)
    hello(x, "X")
    x.call("tasks.start", {"id": "track", "args": {"tag": "sX"}})
    psid = next(s for s, n in labels.items() if n == "P")
    xsid = next(s for s, n in labels.items() if n == "X")
    # Resume P on a connection that has a task of its own (X's).
    story.append(label(x.request("hello", {"session_id": psid})["result"]["session_id"]))
    story.append(x.request("tasks.grade", {"answer": "sP"}))
    x.close()
    with Wire(server.port) as y:
        # What became of X's own task and id?
        reply = y.request("hello", {"session_id": xsid})
        story.append(label(reply.get("error") or reply["result"]["session_id"]))
        story.append(y.request("tasks.grade", {"answer": "sX"}))
    with Wire(server.port) as z:
        story.append(z.request("tasks.grade", {"answer": ""}))
    return story


def test_resume_from_a_session_with_its_own_task(servers: dict[str, ServerProcess]) -> None:
    # wire.md §5.1: the connection becomes the resumed session ("own id discarded"). The
    # reference keeps the connection's own started task parked under its old id.
    ours, peer = session_story(servers["ours"]), session_story(servers["peer"])
    assert peer[:2] == ["P", {"jsonrpc": "2.0", "id": 4, "result": {"score": 1.0}}]
    assert ours == peer
