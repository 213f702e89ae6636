"""The control channel under hostile clients (issue 11 point 4): memory, descriptors, idle
connections, parked sessions and `{}` stay bounded, and legitimate rollouts keep working.

Servers run on loopback; the heavy scenarios run the server in a subprocess so its memory and
descriptor limit are its own. Every loop and wait here is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hud.clients import connect
from hud.environment import Environment
from hud.environment.server import Server, ServerLimits
from tests.conftest import hud_env

MiB = 1024 * 1024
#: The documented bound (ServerLimits): the server's peak RSS under the flood below.
RSS_BOUND_MIB = 300

ENV_PY = """\
from hud import Environment

env = Environment(name="limits")


@env.template
async def echo(word: str, blob: str = ""):
    answer = yield f"say {word} ({len(blob)} bytes attached)"
    yield 1.0 if answer == word else 0.0
"""


# -- helpers ------------------------------------------------------------------------------------
def _template_env(torn: list[str] | None = None) -> Environment:
    env = Environment(name="limits")

    @env.template
    async def echo(word: str, blob: str = ""):  # type: ignore[no-untyped-def]
        try:
            answer = yield f"say {word}"
            yield 1.0 if answer == word else 0.0
        finally:
            if torn is not None:
                torn.append(word)

    return env


@contextlib.asynccontextmanager
async def served(limits: ServerLimits, torn: list[str] | None = None) -> AsyncIterator[Server]:
    server = Server(_template_env(torn), "127.0.0.1", 0, limits=limits)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def rollout(port: int, word: str = "ok") -> float:
    async with connect(f"127.0.0.1:{port}", heartbeat=None) as client:
        await client.start("echo", {"word": word})
        grade = await client.grade(word)
    return float(grade["score"])


async def read_line(reader: asyncio.StreamReader, timeout: float = 10) -> bytes:
    return await asyncio.wait_for(reader.readline(), timeout)


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "env.py").write_text(ENV_PY)
    return tmp_path


class ServerProcess:
    """``python -m hud.environment.server`` in a child (optionally under ``ulimit -n``)."""

    def __init__(self, project: Path, *args: str, nofile: int | None = None) -> None:
        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hud.environment.server", "env.py", "--port", "0", *args],
            cwd=project,
            env=hud_env(project),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=limit,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        assert line.startswith("HUD_SERVE_PORT="), self.stop()
        self.port = int(line.strip().split("=", 1)[1])

    def status(self, key: str) -> int:
        """A ``/proc/PID/status`` figure in KiB (VmRSS, VmHWM)."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        for row in text.splitlines():
            if row.startswith(key + ":"):
                return int(row.split()[1])
        raise AssertionError(f"no {key} in /proc status")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        """Terminate; returns its stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode("utf-8", "replace")


@pytest.fixture
def server_process(project: Path) -> Iterator[type[ServerProcess]]:
    started: list[ServerProcess] = []

    def start(*args: str, nofile: int | None = None) -> ServerProcess:
        proc = ServerProcess(project, *args, nofile=nofile)
        started.append(proc)
        return proc

    yield start  # type: ignore[misc]
    for proc in started:
        proc.stop()


# -- JSON-RPC: `{}` ------------------------------------------------------------------------------
@pytest.mark.parametrize("frame", [b"{}", b'{"jsonrpc":"2.0"}', b'{"jsonrpc":"2.0","method":7}'])
async def test_empty_object_gets_invalid_request(frame: bytes) -> None:
    async with served(ServerLimits()) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame + b"\n" + b'{"jsonrpc":"2.0","id":1,"method":"tasks.cancel"}\n')
        reply = json.loads(await read_line(reader))
        assert reply["id"] is None
        assert reply["error"]["code"] == -32600  # Invalid Request
        assert json.loads(await read_line(reader))["result"] == {"cancelled": True}  # kept
        writer.close()


# -- idle connections ----------------------------------------------------------------------------
async def test_connection_without_a_frame_is_closed_after_the_idle_timeout() -> None:
    async with served(ServerLimits(idle_timeout=0.3)) as server:
        silent = await asyncio.open_connection("127.0.0.1", server.port)
        partial = await asyncio.open_connection("127.0.0.1", server.port)
        partial[1].write(b'{"jsonrpc":"2.0","id":1,"method":"hel')  # never completed
        for reader, _ in (silent, partial):
            reply = json.loads(await read_line(reader, timeout=20))
            assert reply["id"] is None and "timed out" in reply["error"]["message"]
            assert await asyncio.wait_for(reader.read(), 20) == b""
        await wait_until(lambda: not server._connections)
        assert await rollout(server.port) == 1.0


async def test_idle_timeout_spares_sessions_waiting_between_frames() -> None:
    """A client holding a started task while its agent thinks is not idle."""
    async with served(ServerLimits(idle_timeout=0.2)) as server:
        async with connect(f"127.0.0.1:{server.port}", heartbeat=None) as client:
            await client.start("echo", {"word": "w"})
            await asyncio.sleep(1.0)
            grade = await client.grade("w")
        assert (grade["score"]) == 1.0


# -- connection limit ----------------------------------------------------------------------------
async def test_connection_limit_sheds_idle_connections_first() -> None:
    async with served(ServerLimits(max_connections=8, idle_timeout=0)) as server:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(8)]
        await wait_until(lambda: len(server._connections) == 8)
        assert await rollout(server.port) == 1.0  # made room by closing the oldest idle one
        reply = json.loads(await read_line(idle[0][0]))
        assert reply["id"] is None and "server busy" in reply["error"]["message"]
        for _, writer in idle:
            writer.close()


async def test_connection_limit_refuses_when_every_connection_is_busy() -> None:
    async with (
        served(ServerLimits(max_connections=8, idle_timeout=0)) as server,
        contextlib.AsyncExitStack() as stack,
    ):
        clients = []
        for i in range(8):
            client = await stack.enter_async_context(
                connect(f"127.0.0.1:{server.port}", heartbeat=None)
            )
            await client.start("echo", {"word": f"w{i}"})
            clients.append(client)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        reply = json.loads(await read_line(reader))
        assert "server busy" in reply["error"]["message"]
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        for i, client in enumerate(clients):  # the busy ones were left alone
            assert (await client.grade(f"w{i}"))["score"] == 1.0


# -- parked sessions -----------------------------------------------------------------------------
async def _park(port: int, word: str, blob: str = "") -> None:
    async with connect(f"127.0.0.1:{port}", heartbeat=None) as client:
        await client.start("echo", {"word": word, "blob": blob})


async def test_parked_sessions_beyond_the_count_evict_the_oldest_with_teardown() -> None:
    torn: list[str] = []
    async with served(ServerLimits(max_parked=2), torn) as server:
        for word in ("p1", "p2", "p3"):
            await _park(server.port, word)
        await wait_until(lambda: torn == ["p1"])
        assert sorted(s.runner.args["word"] for s in server.parked()) == ["p2", "p3"]


async def test_parked_sessions_beyond_the_bytes_evict_the_oldest() -> None:
    torn: list[str] = []
    async with served(ServerLimits(max_parked_bytes=3 * MiB), torn) as server:
        for word in ("b1", "b2", "b3"):
            await _park(server.port, word, "x" * MiB)
        await wait_until(lambda: torn == ["b1"])
        assert len(server.parked()) == 2
        assert server._parked_bytes <= 3 * MiB


# -- memory under a flood ------------------------------------------------------------------------
def _hold_frame(port: int, size: int) -> socket.socket:
    """A connection that sends ``size`` bytes of a frame without its newline (what the
    server does not read stays in the kernel)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(False)
    head = b'{"jsonrpc":"2.0","id":1,"method":"hello","params":{"x":"'
    chunk = b"a" * MiB
    sent, pending = 0, head
    deadline = time.monotonic() + 20
    while sent < size and time.monotonic() < deadline:
        if not pending:
            pending = chunk[: size - sent]
        try:
            n = sock.send(pending)
        except BlockingIOError:
            break  # the server stopped reading: the rest would wait in the kernel
        sent += n
        pending = pending[n:]
    return sock


def _park_raw(port: int, frame: bytes) -> None:
    """Start a task with a prebuilt ``tasks.start`` frame and disconnect (it stays parked)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(frame)
        reply = sock.makefile("rb").readline()
    assert b'"result"' in reply, reply[:300]


def test_rss_stays_bounded_under_large_frames_and_parked_sessions(server_process: Any) -> None:
    server = server_process()  # default limits
    holders: list[socket.socket] = []
    try:
        for _ in range(20):
            holders.append(_hold_frame(server.port, int(15.9 * MiB)))
            assert server.status("VmHWM") < RSS_BOUND_MIB * 1024, "over the bound while holding"
        assert asyncio.run(rollout(server.port)) == 1.0  # small requests are still served
        blob = "b" * (15 * MiB)
        for i in range(100):
            params = {"id": "echo", "args": {"word": f"park{i}", "blob": blob}}
            frame = {"jsonrpc": "2.0", "id": 1, "method": "tasks.start", "params": params}
            _park_raw(server.port, json.dumps(frame).encode() + b"\n")
            assert server.status("VmHWM") < RSS_BOUND_MIB * 1024, f"over after {i} parked"
        assert asyncio.run(rollout(server.port)) == 1.0  # legitimate rollouts still succeed
        peak = server.status("VmHWM") / 1024
        assert peak < RSS_BOUND_MIB, f"peak RSS {peak:.0f} MiB"
        assert server.alive()
    finally:
        for sock in holders:
            sock.close()


# -- descriptor exhaustion -----------------------------------------------------------------------
def test_rollout_completes_under_ulimit_with_300_idle_connections(server_process: Any) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"this test needs 1024 descriptors for its own connections (hard {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1024), hard))
    server = server_process(nofile=256)
    idle: list[socket.socket] = []
    try:
        for _ in range(300):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", server.port))
            idle.append(sock)
        time.sleep(0.5)  # let the server run into its descriptor limit

        async def legit() -> float:
            return await asyncio.wait_for(rollout(server.port), 10)

        assert asyncio.run(legit()) == 1.0
        assert server.alive()
    finally:
        for sock in idle:
            sock.close()
        err = server.stop()
    floods = [line for line in err.splitlines() if "accept" in line]
    assert len(floods) <= 2, f"the log is flooded: {floods[:5]}"
