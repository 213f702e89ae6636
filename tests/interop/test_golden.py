"""wire.md Appendix B as golden frames, byte for byte (modulo session ids and ports).

Run against our server and, as a check of the golden itself, against the official one. Each
expected line is a template: ``<SID:name>`` is a session id (the same name must see the same id,
different names different ids), ``<PORT>`` any port, ``<EXTRA>`` optional extra members our
server adds to a ``hello`` result (G3).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from .helpers import SPELLING_ENV, ServerProcess, Wire, requires_peer, start_server

PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoldenGoldenGoldenGoldenGoldenGoldenGold"
MANIFEST = (
    '{"session_id":"<SID:%s>","env":{"name":"spelling","version":"0.0.1"},'
    '"bindings":[{"name":"shell","protocol":"ssh/2","url":"ssh://127.0.0.1:<PORT>",'
    '"params":{"user":"agent","host_pubkey":"' + PUBKEY + '","shell":"bash","cwd":"/workspace"}}]'
    "<EXTRA>}"
)


class Golden:
    """Matches reply lines against templates, keeping session ids consistent."""

    def __init__(self) -> None:
        self.sessions: dict[str, str] = {}

    def match(self, template: str, line: str | None) -> dict[str, str]:
        assert line is not None, f"connection closed; expected {template}"
        pattern = ""
        names: list[str] = []
        for part in re.split(r"(<SID:\w+>|<PORT>|<EXTRA>)", template):
            if part.startswith("<SID:"):
                names.append(part[5:-1])
                pattern += r"(sess-[0-9a-f]{8})"
            elif part == "<PORT>":
                pattern += r"[1-9][0-9]{0,4}"
            elif part == "<EXTRA>":
                pattern += r'(?:,"[A-Za-z_.]+":(?:\[[^\[\]{}]*\]|"[^"]*"|true|false|[0-9.]+))*'
            else:
                pattern += re.escape(part)
        m = re.fullmatch(pattern, line)
        assert m, f"\nexpected: {template}\n     got: {line}"
        for name, sid in zip(names, m.groups(), strict=True):
            known = self.sessions.setdefault(name, sid)
            assert known == sid, f"session {name}: {sid} != {known}"
        ids = list(self.sessions.values())
        assert len(ids) == len(set(ids)), f"distinct sessions share an id: {self.sessions}"
        return dict(zip(names, m.groups(), strict=True))

    def exchange(self, wire: Wire, request: str, reply: str) -> None:
        wire.send_raw(request.encode() + b"\n")
        self.match(reply, wire.read_line())


IMPLS = ["ours", pytest.param("peer", marks=requires_peer)]


@pytest.fixture(scope="module", params=IMPLS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    proc = start_server(request.param, SPELLING_ENV)
    yield proc
    proc.stop()


def test_appendix_b_transcript(server: ServerProcess) -> None:
    g = Golden()
    with Wire(server.port) as a:
        g.exchange(
            a,
            '{"jsonrpc":"2.0","id":1,"method":"hello","params":{}}',
            '{"jsonrpc":"2.0","id":1,"result":' + MANIFEST % "A" + "}",
        )
        g.exchange(
            a,
            '{"jsonrpc":"2.0","id":2,"method":"tasks.start","params":{"id":"vowels","args":{"word":"banana"}}}',
            '{"jsonrpc":"2.0","id":2,"result":{"prompt":"How many vowels are in \'banana\'?"}}',
        )
        with Wire(server.port) as b:
            g.exchange(
                b,
                '{"jsonrpc":"2.0","id":1,"method":"tunnel.open","params":{"capability":"shell"}}',
                '{"jsonrpc":"2.0","id":1,"result":{"capability":"shell"}}',
            )
            banner = b"SSH-2.0-OpenSSH_9.6\r\n" + bytes(range(256)) * 64
            b.send_raw(banner)
            got = b.buf
            b.sock.settimeout(5)
            while len(got) < len(banner):
                chunk = b.sock.recv(65536)
                assert chunk, "tunnel closed early"
                got += chunk
            assert got == banner  # raw bytes, no framing, in order
        g.exchange(
            a,
            '{"jsonrpc":"2.0","id":3,"method":"tasks.grade","params":{"answer":"3"}}',
            '{"jsonrpc":"2.0","id":3,"result":{"score":1.0}}',
        )
        sid = g.sessions["A"]
        g.exchange(
            a,
            '{"jsonrpc":"2.0","id":4,"method":"hello","params":{"session_id":"' + sid + '"}}',
            '{"jsonrpc":"2.0","id":4,"result":' + MANIFEST % "A" + "}",
        )
        g.exchange(
            a,
            '{"jsonrpc":"2.0","id":7,"method":"tasks.start","params":{"id":"nope"}}',
            '{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"unknown task: \'nope\'"}}',
        )


def test_split_flow_bare_grade(server: ServerProcess) -> None:
    g = Golden()
    with Wire(server.port) as c:
        g.exchange(
            c,
            '{"jsonrpc":"2.0","id":1,"method":"hello","params":{}}',
            '{"jsonrpc":"2.0","id":1,"result":' + MANIFEST % "C" + "}",
        )
        g.exchange(
            c,
            '{"jsonrpc":"2.0","id":2,"method":"tasks.start","params":{"id":"vowels","args":{"word":"kiwi"}}}',
            '{"jsonrpc":"2.0","id":2,"result":{"prompt":"How many vowels are in \'kiwi\'?"}}',
        )
    # C closed without bye: its task is parked; D adopts it with a bare grade.
    with Wire(server.port) as d:
        g.exchange(
            d,
            '{"jsonrpc":"2.0","id":1,"method":"hello","params":{}}',
            '{"jsonrpc":"2.0","id":1,"result":' + MANIFEST % "D" + "}",
        )
        g.exchange(
            d,
            '{"jsonrpc":"2.0","id":2,"method":"tasks.grade","params":{"answer":"2"}}',
            '{"jsonrpc":"2.0","id":2,"result":{"score":1.0}}',
        )
        g.exchange(
            d,
            '{"jsonrpc":"2.0","id":3,"method":"tasks.grade","params":{"answer":"2"}}',
            '{"jsonrpc":"2.0","id":3,"error":{"code":-32600,"message":"no task in progress"}}',
        )


def test_split_flow_resume_and_grade_first(server: ServerProcess) -> None:
    g = Golden()
    with Wire(server.port) as c:
        g.exchange(
            c,
            '{"jsonrpc":"2.0","id":1,"method":"hello","params":{}}',
            '{"jsonrpc":"2.0","id":1,"result":' + MANIFEST % "C" + "}",
        )
        g.exchange(
            c,
            '{"jsonrpc":"2.0","id":2,"method":"tasks.start","params":{"id":"vowels","args":{"word":"queue"}}}',
            '{"jsonrpc":"2.0","id":2,"result":{"prompt":"How many vowels are in \'queue\'?"}}',
        )
    sid = g.sessions["C"]
    with Wire(server.port) as d:
        g.exchange(
            d,
            '{"jsonrpc":"2.0","id":1,"method":"hello","params":{"session_id":"' + sid + '"}}',
            '{"jsonrpc":"2.0","id":1,"result":' + MANIFEST % "C" + "}",
        )
        g.exchange(
            d,
            '{"jsonrpc":"2.0","id":2,"method":"tasks.grade","params":{"answer":"4"}}',
            '{"jsonrpc":"2.0","id":2,"result":{"score":1.0}}',
        )
    # A raw client may send tasks.grade as its very first frame.
    with Wire(server.port) as e:
        g.exchange(
            e,
            '{"jsonrpc":"2.0","id":1,"method":"tasks.start","params":{"id":"vowels","args":{"word":"aeiou","strict":true}}}',
            '{"jsonrpc":"2.0","id":1,"result":{"prompt":"How many vowels are in \'aeiou\'?"}}',
        )
    with Wire(server.port) as f:
        g.exchange(
            f,
            '{"jsonrpc":"2.0","id":9,"method":"tasks.grade","params":{"answer":"5"}}',
            '{"jsonrpc":"2.0","id":9,"result":{"score":1.0}}',
        )


def test_tasks_list_golden(server: ServerProcess) -> None:
    g = Golden()
    with Wire(server.port) as w:
        g.exchange(
            w,
            '{"jsonrpc":"2.0","id":1,"method":"tasks.list"}',
            '{"jsonrpc":"2.0","id":1,"result":{"tasks":['
            '{"id":"vowels","description":"Count vowels",'
            '"args":{"properties":{"word":{"title":"Word","type":"string"},'
            '"strict":{"default":false,"title":"Strict","type":"boolean"}},'
            '"required":["word"],"type":"object","additionalProperties":false},'
            '"input":{"type":"string"},"returns":{"type":"integer"}}]}}',
        )
