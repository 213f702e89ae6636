"""Envelope and framing behaviour (wire.md §2-§4), each side against its own documented rules.

Where the spec marks **Our behavior** (G1, G4, G6) the two servers differ on purpose: the
reference drops the connection silently, ours answers with an error frame and keeps it.
"""

from __future__ import annotations

import json

import pytest

from .helpers import INTEROP_ENV, ServerProcess, Wire, requires_peer, shared_server

IMPLS = ["ours", pytest.param("peer", marks=requires_peer)]
MiB = 1024 * 1024


@pytest.fixture(params=IMPLS)
def server(
    request: pytest.FixtureRequest, server_pool: dict[tuple[str, str], ServerProcess]
) -> ServerProcess:
    return shared_server(server_pool, request.param, INTEROP_ENV)


def test_notifications_get_no_reply(server: ServerProcess) -> None:
    with Wire(server.port) as w:
        w.send({"jsonrpc": "2.0", "method": "nope"})
        w.send({"jsonrpc": "2.0", "method": "tasks.start", "params": {"id": "nope"}})
        w.send(
            {
                "jsonrpc": "2.0",
                "method": "tasks.start",
                "params": {"id": "greet", "args": {"name": "n"}},
            }
        )
        # The notification ran: the task is in progress on this session.
        assert w.request("tasks.grade", {"answer": "hello n"}, id=7) == {
            "jsonrpc": "2.0",
            "id": 7,
            "result": {"score": 1.0},
        }


@pytest.mark.parametrize("rid", ["abc", 0, -3, 2**40, "sess-x"])
def test_ids_echoed_unchanged(server: ServerProcess, rid: object) -> None:
    with Wire(server.port) as w:
        reply = w.request("tasks.cancel", {}, id=rid)
    assert reply == {"jsonrpc": "2.0", "id": rid, "result": {"cancelled": True}}


def test_params_absent_or_null(server: ServerProcess) -> None:
    with Wire(server.port) as w:
        w.send({"jsonrpc": "2.0", "id": 1, "method": "hello", "params": None})
        assert "session_id" in w.recv()["result"]
        w.send({"jsonrpc": "2.0", "id": 2, "method": "tasks.start", "params": None})
        assert w.recv()["error"] == {
            "code": -32602,
            "message": "tasks.start: 'id' must be a string",
        }


def test_large_frames_both_ways(server: ServerProcess) -> None:
    # Well past asyncio's 64 KiB default line limit (G1: at least 16 MiB).
    name = "x" * (2 * MiB)
    with Wire(server.port) as w:
        start = w.call("tasks.start", {"id": "greet", "args": {"name": name}})
        assert start == {"prompt": f"Say hello to {name}!"}
        assert w.call("tasks.grade", {"answer": f"hello {name}"}) == {"score": 1.0}


def test_oversize_frame_error_then_close(server: ServerProcess) -> None:
    with Wire(server.port) as w:
        frame = {"jsonrpc": "2.0", "id": 1, "method": "tasks.start"}
        frame["params"] = {"id": "greet", "args": {"name": "x" * (16 * MiB + 1)}}
        w.send(frame)
        reply = w.recv()
        assert reply is not None
        assert reply["id"] is None and reply["error"]["code"] == -32000
        assert reply["error"]["message"].startswith("Control-channel frame ")
        assert "16777216" in reply["error"]["message"]
        assert w.at_eof()


def test_bye_closes(server: ServerProcess) -> None:
    with Wire(server.port) as w:
        assert w.call("bye") == {"goodbye": True}
        assert w.at_eof()


def test_eof_before_any_frame(server: ServerProcess) -> None:
    with Wire(server.port) as w:
        w.sock.shutdown(1)
        assert w.at_eof()


def test_tunnel_preface_without_id_gets_no_reply(server: ServerProcess) -> None:
    with Wire(server.port) as w:
        w.send({"jsonrpc": "2.0", "method": "tunnel.open", "params": {"capability": "echo"}})
        w.send_raw(b"raw\n")
        assert w.read_line(timeout=5) == "raw"  # the first bytes back are the echo


# -- deliberate differences ------------------------------------------------------------
@pytest.mark.parametrize("garbage", [b"not json\n", b"\n", b"{bad\n"])
def test_malformed_json(server: ServerProcess, garbage: bytes) -> None:
    with Wire(server.port) as w:
        w.send_raw(garbage)
        if server.impl == "peer":
            assert w.at_eof()  # reference: closed, no reply
            return
        reply = w.recv()  # G4: -32700, id null, connection kept
        assert reply is not None and reply["id"] is None
        assert reply["error"]["code"] == -32700
        assert w.call("tasks.cancel") == {"cancelled": True}


def test_malformed_json_mid_session(server: ServerProcess) -> None:
    with Wire(server.port) as w:
        w.call("tasks.start", {"id": "greet", "args": {"name": "m"}})
        w.send_raw(b"{oops\n")
        if server.impl == "peer":
            assert w.at_eof()  # reference: dropped; the task is parked
            with Wire(server.port) as other:
                assert other.call("tasks.grade", {"answer": "hello m"}) == {"score": 1.0}
            return
        assert w.recv()["error"]["code"] == -32700
        assert w.call("tasks.grade", {"answer": "hello m"}) == {"score": 1.0}


def test_top_level_array(server: ServerProcess) -> None:
    with Wire(server.port) as w:
        w.send_raw(
            b"[" + json.dumps({"jsonrpc": "2.0", "id": 1, "method": "hello"}).encode() + b"]\n"
        )
        if server.impl == "peer":
            assert w.at_eof()  # reference: no batches, connection killed
            return
        assert w.recv() == {  # G6
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": "invalid request: a frame must be a JSON object"},
        }
        assert w.call("tasks.cancel") == {"cancelled": True}


def test_non_object_params(server: ServerProcess) -> None:
    with Wire(server.port) as w:
        code, message = w.error("tasks.start", [1])
    if server.impl == "peer":
        assert (code, message) == (-32000, "'list' object has no attribute 'get'")
    else:
        assert (code, message) == (-32602, "params must be an object")  # G6
