"""`hud serve` (and `python -m hud.environment.server`) as subprocesses."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hud.clients import HudProtocolError, connect
from tests.conftest import assert_user_error as user_error


def assert_user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """`tests.conftest.assert_user_error`, and no port was announced."""
    line = user_error(proc, *needles)
    assert "HUD_SERVE_PORT" not in proc.stdout
    return line


def write_env(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "env.py").write_text(body)
    return directory


ENV_WITH_HOOKS = """\
from hud import Environment

env = Environment(name="hooked", version="1.2.3")


@env.initialize
async def up():
    print("init-hook-ran", flush=True)


@env.shutdown
async def down():
    print("shutdown-hook-ran", flush=True)


@env.template
async def echo(word: str):
    answer = yield f"say {word}"
    yield 1.0 if answer == word else 0.0
"""

SECOND_ENV = """

other = Environment(name="other")


@other.template
async def nothing():
    yield "n"
    yield 0.0
"""


async def hello(port: int, token: str | None = None) -> dict[str, Any]:
    async with connect(f"127.0.0.1:{port}", token=token, heartbeat=None, ready_timeout=10) as c:
        await c.list_tasks()
        return {"env": c.env_info, "tasks": [t["id"] for t in await c.list_tasks()]}


# -- serving ---------------------------------------------------------------------------------


def test_serve_banner_port_line_and_stop(demo_project: Path, hud_serve: Callable) -> None:
    served = hud_serve("-p", "0", cwd=demo_project)
    banner = "\n".join(served.banner)
    assert "demo" in banner
    assert f"serving on tcp://127.0.0.1:{served.port}" in banner
    assert "1 task template(s), 0 capability(ies)" in banner
    assert served.banner[-1] == f"HUD_SERVE_PORT={served.port}"
    assert sum(line.startswith("HUD_SERVE_PORT=") for line in served.banner) == 1
    info = asyncio.run(hello(served.port))
    assert info == {"env": {"name": "demo", "version": "0.0.1"}, "tasks": ["count"]}
    code, out, err = served.stop()
    assert code == 0, err
    assert "Stopped." in out
    assert "Traceback" not in err


def test_serve_sigint_stops_cleanly(demo_project: Path, hud_serve: Callable) -> None:
    served = hud_serve("-p", "0", cwd=demo_project)
    served.proc.send_signal(signal.SIGINT)
    out, err = served.proc.communicate(timeout=20)
    assert served.proc.returncode == 0, err
    assert "Stopped." in out and "Traceback" not in err


@pytest.mark.parametrize("target", ["env.py", "env:env", ".", "env"])
def test_serve_targets_and_hooks(tmp_path: Path, hud_serve: Callable, target: str) -> None:
    project = write_env(tmp_path / "proj", ENV_WITH_HOOKS)
    served = hud_serve(target, "-p", "0", cwd=project)
    assert "init-hook-ran" in served.banner
    info = asyncio.run(hello(served.port))
    assert info == {"env": {"name": "hooked", "version": "1.2.3"}, "tasks": ["echo"]}
    code, out, err = served.stop()
    assert code == 0, err
    assert "shutdown-hook-ran" in out


def test_serve_env_name_and_attribute(
    tmp_path: Path, hud_serve: Callable, run_hud: Callable
) -> None:
    project = write_env(tmp_path / "proj", ENV_WITH_HOOKS + SECOND_ENV)
    assert_user_error(run_hud("serve", "-p", "0", cwd=project), "multiple Environments")
    for args in (["env:other"], ["--env", "other"], ["env.py", "--env", "other"]):
        served = hud_serve(*args, "-p", "0", cwd=project)
        info = asyncio.run(hello(served.port))
        assert info["env"]["name"] == "other" and info["tasks"] == ["nothing"]
        served.stop()


def test_serve_task_round_trip_over_tcp(demo_project: Path, hud_serve: Callable) -> None:
    served = hud_serve("-p", "0", cwd=demo_project)

    async def run() -> dict[str, Any]:
        async with connect(f"127.0.0.1:{served.port}", heartbeat=None) as client:
            frame = await client.start("count", {"sentence": "banana", "letter": "a"})
            assert frame == {"prompt": "How many times does 'a' appear in: 'banana'?"}
            return await client.grade("3")

    assert asyncio.run(run()) == {"score": 1.0}


def test_serve_non_loopback_warns(demo_project: Path, hud_serve: Callable) -> None:
    served = hud_serve("--host", "0.0.0.0", "-p", "0", cwd=demo_project)
    assert "serving on tcp://0.0.0.0:" in "\n".join(served.banner)
    assert asyncio.run(hello(served.port))["tasks"] == ["count"]
    code, _, err = served.stop()
    assert code == 0
    assert "without a control token" in err


def test_serve_token(demo_project: Path, hud_serve: Callable) -> None:
    served = hud_serve("-p", "0", "--token", "tok123", cwd=demo_project)
    with pytest.raises(HudProtocolError) as info:
        asyncio.run(hello(served.port))
    assert (info.value.code, info.value.message) == (
        -32001,
        "unauthorized: control token required",
    )
    assert asyncio.run(hello(served.port, token="tok123"))["tasks"] == ["count"]


def test_serve_session_ttl(demo_project: Path, hud_serve: Callable) -> None:
    served = hud_serve("-p", "0", "--session-ttl", "0.2", cwd=demo_project)

    def rpc(sock: socket.socket, file: Any, rid: int, method: str, params: dict) -> dict:
        frame = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        sock.sendall(json.dumps(frame).encode() + b"\n")
        return json.loads(file.readline())

    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock,
        sock.makefile("rb") as file,
    ):
        sid = rpc(sock, file, 1, "hello", {})["result"]["session_id"]
        args = {"sentence": "banana", "letter": "a"}
        assert "result" in rpc(sock, file, 2, "tasks.start", {"id": "count", "args": args})
    deadline = time.monotonic() + 15
    while True:
        with (
            socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock,
            sock.makefile("rb") as file,
        ):
            reply = rpc(sock, file, 1, "hello", {"session_id": sid})
        if "error" in reply:
            break
        assert time.monotonic() < deadline, "the parked session never expired"
        # a successful probe resumed (and re-parked) the session: wait past the TTL again
        time.sleep(0.5)
    assert reply["error"] == {"code": -32600, "message": f"unknown session: '{sid}'"}


def test_module_entry_point_prints_port(demo_project: Path, hud_child_env: dict) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hud.environment.server", "env.py"],
        cwd=demo_project,
        env=hud_child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("HUD_SERVE_PORT=")
        port = int(line.strip().split("=", 1)[1])
        assert port > 0
        assert asyncio.run(hello(port))["tasks"] == ["count"]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out == "", "exactly one stdout line"


# -- user errors ------------------------------------------------------------------------------


def test_serve_without_env_py(run_hud: Callable, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(run_hud("serve", "-p", "0", cwd=empty), "env")


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("nope:thing", "nope"),
        ("env:nothing", "nothing"),
        ("env.py:nothing", "nothing"),
        ("missing.py", "missing.py"),
    ],
)
def test_serve_bad_module_attribute(
    run_hud: Callable, demo_project: Path, target: str, needle: str
) -> None:
    assert_user_error(run_hud("serve", target, "-p", "0", cwd=demo_project), needle)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("def broken(:\n", "syntax"),
        ("import hud_no_such_module_xyz\n", "hud_no_such_module_xyz"),
        ("x = 1\n", "Environment"),
    ],
)
def test_serve_broken_env_file(run_hud: Callable, tmp_path: Path, body: str, needle: str) -> None:
    project = write_env(tmp_path / "broken", body)
    assert_user_error(run_hud("serve", "-p", "0", cwd=project), needle)


def test_serve_initialize_failure_is_not_a_listen_error(
    run_hud: Callable, tmp_path: Path, hud_child_env: dict
) -> None:
    project = write_env(
        tmp_path / "initfail",
        "from hud import Environment\n\n"
        "env = Environment(name='initfail')\n\n\n"
        "@env.initialize\n"
        "async def setup():\n"
        "    open('/nonexistent-hud-dir/file')\n",
    )
    line = assert_user_error(run_hud("serve", "-p", "0", cwd=project), "initfail")
    assert "cannot listen" not in line and "FileNotFoundError" in line
    proc = subprocess.run(
        [sys.executable, "-m", "hud.environment.server", "env.py"],
        cwd=project,
        env=hud_child_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "cannot listen" not in proc.stderr and "FileNotFoundError" in proc.stderr


def test_serve_port_in_use(run_hud: Callable, demo_project: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = run_hud("serve", "-p", str(port), cwd=demo_project)
    assert_user_error(proc, "cannot listen", str(port))


def test_serve_malformed_arg(run_hud: Callable, demo_project: Path) -> None:
    assert_user_error(run_hud("serve", "--arg", "novalue", "-p", "0", cwd=demo_project), "--arg")


@pytest.mark.parametrize("entry", [["hud", "serve", "-p", "0"], ["hud.environment.server"]])
def test_sigterm_right_after_port_line_runs_shutdown_hooks(
    tmp_path: Path, hud_child_env: dict, entry: list[str]
) -> None:
    """A supervisor may signal as soon as it reads the port: shutdown must still be clean."""
    project = write_env(tmp_path / "proj", ENV_WITH_HOOKS)
    proc = subprocess.Popen(
        [sys.executable, "-m", *entry],
        cwd=project,
        env=hud_child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("HUD_SERVE_PORT="):
            proc.terminate()
            break
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, (seen, out, err)
    assert "shutdown-hook-ran" in out, (seen, out, err)


def test_idle_exit_waits_for_parked_tasks(demo_project: Path, hud_child_env: dict) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hud.environment.server", "env.py", "--idle-exit", "0.3"],
        cwd=demo_project,
        env=hud_child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().strip().split("=", 1)[1])

        async def park() -> None:
            async with connect(f"127.0.0.1:{port}", heartbeat=None) as client:
                await client.start("count", {"sentence": "banana", "letter": "a"})

        asyncio.run(park())
        time.sleep(1.0)
        assert proc.poll() is None, "a parked task keeps the server up"

        async def grade() -> dict:
            async with connect(f"127.0.0.1:{port}", heartbeat=None) as client:
                return await client.grade("3")

        assert asyncio.run(grade()) == {"score": 1.0}
        assert proc.wait(timeout=15) == 0, "idle again: the server exits by itself"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=20)
