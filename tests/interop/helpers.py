"""Helpers for interop tests: server subprocesses (ours and the official package), raw frames.

The official ``hud`` package lives in ``.peer/hud`` (``make peer``) and is only ever *run*: its
server as ``python -m hud.environment.server``, its client through small scripts in
``peer_scripts/`` executed by the peer interpreter, its CLI as ``.peer/hud/bin/hud``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ENVS = REPO / "tests" / "envs"
INTEROP_DIR = ENVS / "interop"
INTEROP_ENV = INTEROP_DIR / "env.py"
SPELLING_ENV = ENVS / "spelling" / "env.py"
SCRIPTS = Path(__file__).resolve().parent / "peer_scripts"
#: The official package's virtualenv (override with HUD_PEER_VENV, e.g. to try another release).
PEER_VENV = Path(os.environ.get("HUD_PEER_VENV") or REPO / ".peer" / "hud")
PEER_BIN = PEER_VENV / "bin"
PEER_PY = PEER_BIN / "python"
PEER_HUD = PEER_BIN / "hud"
HAVE_PEER = PEER_PY.exists()
PEER_SKIP_REASON = f"official hud package not installed at {PEER_VENV} (run `make peer`)"

#: ``pytestmark`` for modules that need the official package.
requires_peer = [pytest.mark.peer, pytest.mark.skipif(not HAVE_PEER, reason=PEER_SKIP_REASON)]

READY_TIMEOUT = 60.0

_HOME = Path(tempfile.mkdtemp(prefix="hud-interop-home-"))
_CWD = Path(tempfile.mkdtemp(prefix="hud-interop-cwd-"))
# Seed the official CLI's upgrade-check cache so it never calls PyPI during tests.
(_HOME / ".hud" / ".cache").mkdir(parents=True)
(_HOME / ".hud" / ".cache" / "version_check.json").write_text(
    json.dumps({"latest": "0.6.21", "checked_at": time.time() + 365 * 86400})
)


def _base_environ() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HUD_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env.update(
        HOME=str(_HOME),
        HUD_CLI_ANALYTICS_ENABLED="0",
        HUD_TELEMETRY_ENABLED="0",
        NO_COLOR="1",
        TERM="dumb",
        COLUMNS="200",
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
    )
    return env


def peer_environ() -> dict[str, str]:
    """Environment for the official package: no PYTHONPATH (it must not import our ``hud``)."""
    return _base_environ()


def our_environ() -> dict[str, str]:
    env = _base_environ()
    env["PYTHONPATH"] = str(REPO)
    return env


# -- server subprocesses ---------------------------------------------------------------
class ServerProcess:
    """A server subprocess that announced ``HUD_SERVE_PORT=<port>`` on stdout."""

    def __init__(self, impl: str, argv: list[str], environ: dict[str, str]) -> None:
        self.impl = impl
        self.argv = argv
        self.host = "127.0.0.1"
        self.port = 0
        self.output: list[str] = []
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            cwd=_CWD,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                message = f"{impl} server did not announce a port: {self.describe()}"
                raise RuntimeError(message) from None
            if line is None:
                self.stop()
                raise RuntimeError(f"{impl} server exited before serving: {self.describe()}")
            if line.startswith("HUD_SERVE_PORT="):
                self.port = int(line.strip().split("=", 1)[1])
                break

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def describe(self) -> str:
        return f"argv={self.argv} stdout={''.join(self.output)!r} stderr={self.stderr()[-3000:]!r}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()


def start_server(impl: str, path: Path | str, *extra: str, cli: bool = False) -> ServerProcess:
    """Start ``impl`` ("ours" or "peer") serving ``path`` on an ephemeral port."""
    if impl == "ours":
        if cli:
            argv = [sys.executable, "-m", "hud", "serve", str(path), "-p", "0", *extra]
        else:
            argv = [sys.executable, "-m", "hud.environment.server", str(path), "--port", "0"]
            argv += extra
        return ServerProcess(impl, argv, our_environ())
    if impl == "peer":
        if not HAVE_PEER:
            pytest.skip(PEER_SKIP_REASON)
        if cli:
            argv = [str(PEER_HUD), "serve", str(path), "-p", "0", *extra]
        else:
            argv = [str(PEER_PY), "-m", "hud.environment.server", str(path), "--port", "0"]
            argv += extra
        return ServerProcess(impl, argv, peer_environ())
    raise ValueError(impl)


def shared_server(
    pool: dict[tuple[str, str], ServerProcess], impl: str, path: Path
) -> ServerProcess:
    """A server from the session pool (started on first use). Users must leave nothing parked."""
    key = (impl, str(path))
    server = pool.get(key)
    if server is None or server.proc.poll() is not None:
        server = pool[key] = start_server(impl, path)
    return server


# -- the official package, run as a black box ------------------------------------------
def run_peer(
    argv: list[str], *, timeout: float = 60.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    if not HAVE_PEER:
        pytest.skip(PEER_SKIP_REASON)
    return subprocess.run(
        argv,
        cwd=_CWD,
        env=peer_environ(),
        input=input,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def run_script(
    impl: str, name: str, *args: str, input: str | None = None, timeout: float = 60.0
) -> Any:
    """Run ``peer_scripts/<name>`` under ``impl``'s interpreter ("peer" = the official package,
    "ours" = this repo); returns the JSON object printed on its last stdout line."""
    argv = [str(SCRIPTS / name), *args]
    if impl == "peer":
        proc = run_peer([str(PEER_PY), *argv], timeout=timeout, input=input)
    else:
        proc = subprocess.run(
            [sys.executable, *argv],
            cwd=_CWD,
            env=our_environ(),
            input=input,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
        )
    assert proc.returncode == 0, f"{impl} {name} failed ({proc.returncode}):\n{proc.stderr[-5000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"{impl} {name} printed nothing; stderr:\n{proc.stderr[-5000:]}"
    return json.loads(lines[-1])


def run_peer_script(name: str, *args: str, timeout: float = 60.0) -> Any:
    """Run ``peer_scripts/<name>`` under the official interpreter; returns its JSON output."""
    return run_script("peer", name, *args, timeout=timeout)


def peer_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the official ``hud`` CLI."""
    return run_peer([str(PEER_HUD), *args], timeout=timeout)


# -- raw frames ------------------------------------------------------------------------
class Wire:
    """A raw control connection: send frames (or bytes), read newline-terminated replies."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.next_id = 0
        self.lines: list[str] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, frame: dict[str, Any]) -> None:
        self.send_raw(json.dumps(frame, separators=(",", ":")).encode() + b"\n")

    def read_line(self, timeout: float | None = None) -> str | None:
        """One reply line (without the newline) or None on EOF."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode("utf-8")
        self.lines.append(text)
        return text

    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        line = self.read_line(timeout)
        return None if line is None else json.loads(line)

    def request(self, method: str, params: Any = None, *, id: Any = None) -> dict[str, Any]:
        """Send a request with ``params`` (omitted when None) and return the reply frame."""
        if id is None:
            self.next_id += 1
            id = self.next_id
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            frame["params"] = params
        self.send(frame)
        reply = self.recv()
        assert reply is not None, f"connection closed after {method}"
        return reply

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        """Request and return ``result`` (fails on an error frame)."""
        reply = self.request(method, params)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, method: str, params: Any = None) -> tuple[int, str]:
        """Request and return ``(code, message)`` (fails unless an error frame)."""
        reply = self.request(method, params)
        assert "error" in reply, reply
        assert set(reply["error"]) == {"code", "message"}, reply
        return reply["error"]["code"], reply["error"]["message"]

    def at_eof(self, timeout: float = 2.0) -> bool:
        """True when the peer closed the connection (no more bytes within ``timeout``)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def events(port: int) -> list[str]:
    """The interop env's lifecycle log (via its ``events`` task on a fresh connection)."""
    with Wire(port) as w:
        frame = w.call("tasks.start", {"id": "events"})
        w.call("tasks.cancel")
    return frame["events"]


def cleanup_temp_dirs() -> None:
    shutil.rmtree(_HOME, ignore_errors=True)
    shutil.rmtree(_CWD, ignore_errors=True)
