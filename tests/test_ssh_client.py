"""`SSHClient`: commands, files and reconnects against a real workspace SSH server.

The server here runs without the sandbox (``sandbox=False``) so these tests need no
bubblewrap; the sandboxed paths are covered in `test_workspace.py`. The last tests reach the
shell through the control port's tunnel of a separate env process.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hud.capabilities import Capability
from hud.clients import connect
from hud.clients.ssh_client import CommandResult, SSHClient
from hud.environment.workspace import Workspace
from hud.environment.workspace.sandbox import bwrap_problem
from hud.eval.runtimes.subprocess import SubprocessRuntime
from hud.eval.task import Task
from hud.graders import BashGrader

REPO = Path(__file__).resolve().parents[1]
WS_ENV = REPO / "tests" / "envs" / "workspace" / "env.py"


@pytest.fixture
async def ws(tmp_path: Path) -> AsyncIterator[Workspace]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello\n")
    workspace = Workspace(root, sandbox=False)
    await workspace.start()
    try:
        yield workspace
    finally:
        await workspace.stop()


@pytest.fixture
async def sh(ws: Workspace) -> AsyncIterator[SSHClient]:
    client = await SSHClient.connect(ws.capability())
    try:
        yield client
    finally:
        await client.close()


def _without(cap: Capability, *keys: str) -> Capability:
    params = {k: v for k, v in cap.params.items() if k not in keys}
    return cap.model_copy(update={"params": params})


async def test_connect_with_key_text_or_path(ws: Workspace) -> None:
    cap = ws.capability()
    for variant in (_without(cap, "client_key_path"), _without(cap, "client_key")):
        async with await SSHClient.connect(variant) as client:
            assert (await client.run("echo hi")).stdout == "hi\n"
    with pytest.raises(ValueError, match="no client_key"):
        await SSHClient.connect(_without(cap, "client_key", "client_key_path"))
    closed = cap.with_url("ssh://127.0.0.1:1")
    with pytest.raises(ConnectionError):
        await SSHClient.connect(closed)


async def test_run_output_exit_code_cwd_and_input(sh: SSHClient, ws: Workspace) -> None:
    out = await sh.run("echo out; echo err >&2; exit 3")
    assert (out.exit_code, out.stdout, out.stderr, out.timed_out) == (3, "out\n", "err\n", False)
    assert (out.returncode, out.exit_status, out.ok, out["stdout"]) == (3, 3, False, "out\n")
    (ws.prepared_root / "sub").mkdir()
    assert (await sh.run("pwd", cwd="sub")).stdout.strip().endswith("/root/sub")
    assert (await sh.run("pwd", cwd="/tmp")).stdout.strip() == "/tmp"
    missing = await sh.run("echo never", cwd="no-such-dir")
    assert missing.exit_code != 0 and "never" not in missing.stdout
    assert (await sh.run("wc -c", input=b"12345")).stdout.strip() == "5"
    assert (await sh.run("cat", input="text in")).stdout == "text in"
    big = await sh.run("head -c 3000000 /dev/zero | tr '\\0' x")
    assert len(big.stdout) == 3_000_000
    multi = await sh.run("x=1\nif [ $x = 1 ]; then\n  echo multi\nfi", cwd="sub")
    assert multi.stdout == "multi\n"


async def test_exec_is_what_bash_grader_uses(sh: SSHClient) -> None:
    result = await sh.exec("test -f hello.txt", cwd=None, timeout=10)
    assert isinstance(result, CommandResult) and result.exit_code == 0
    assert (await BashGrader.grade(1.0, command="grep -q hello hello.txt", workspace=sh)).value == 1
    assert (await BashGrader.grade(1.0, command="grep -q nope hello.txt", workspace=sh)).value == 0


async def test_timeout_reports_partial_output(sh: SSHClient) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    out = await sh.run("echo early; sleep 30", timeout=0.5)
    assert out.timed_out and out.exit_code is None and out.stdout == "early\n"
    assert loop.time() - started < 5
    assert (await sh.run("echo still usable")).stdout == "still usable\n"


async def test_file_helpers(sh: SSHClient, ws: Workspace) -> None:
    root = ws.prepared_root
    blob = os.urandom(1 << 20) + b"\x00\n\xff"
    await sh.write_file("blob.bin", blob)
    assert (root / "blob.bin").read_bytes() == blob
    assert await sh.read_file("blob.bin") == blob
    await sh.write_file("text.txt", "héllo\n")
    assert await sh.read_text("text.txt") == "héllo\n"
    await sh.write_file("deep/er/file.txt", "x", parents=True)
    assert (root / "deep" / "er" / "file.txt").read_text() == "x"
    (root / ".hidden").write_text("")
    assert await sh.list_dir(".") == [".hidden", "blob.bin", "deep", "hello.txt", "text.txt"]
    assert await sh.list_dir(f"{root}/deep") == ["er"]
    with pytest.raises(FileNotFoundError):
        await sh.read_file("missing.txt")
    with pytest.raises(IsADirectoryError):
        await sh.read_file("deep")
    with pytest.raises(FileNotFoundError):
        await sh.write_file("no/such/dir/f.txt", "x")
    with pytest.raises(NotADirectoryError):
        await sh.list_dir("hello.txt/x")
    with pytest.raises(FileNotFoundError):
        await sh.list_dir("nowhere")


@pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap: {bwrap_problem()}")
async def test_write_outside_the_sandbox_is_a_permission_error(tmp_path: Path) -> None:
    root = tmp_path / "sandboxed"
    root.mkdir()
    async with Workspace(root) as ws, await SSHClient.connect(ws.capability()) as client:
        with pytest.raises(PermissionError):
            await client.write_file("/usr/hud-test-file", "x")
        await client.write_file("/workspace/ok.txt", "ok")
        assert (root / "ok.txt").read_text() == "ok"


async def test_reconnects_after_the_connection_drops(sh: SSHClient) -> None:
    first = sh.connection
    first.abort()
    await asyncio.sleep(0.05)
    assert (await sh.run("echo back")).stdout == "back\n"
    assert sh.connection is not first


async def test_close_is_idempotent(ws: Workspace) -> None:
    client = await SSHClient.connect(ws.capability())
    await client.close()
    await client.close()
    assert client.connection is None


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
async def test_open_shell_through_a_child_env_process(fork: bool) -> None:
    """The env runs in another process; the client only knows its control port."""
    async with SubprocessRuntime(WS_ENV, fork=fork) as runtime:
        task = Task(env="wstest", id="mark", args={"name": "tun"})
        async with runtime(task) as rt, connect(rt) as client:
            await client.start("mark", {"name": "tun"})
            shell = await client.open("shell")
            assert isinstance(shell, SSHClient)
            native = client.find_binding("shell").url
            assert shell.capability.url != native  # routed through the local forwarder
            await shell.write_file("tun.txt", "through the tunnel\n")
            assert await shell.read_text("tun.txt") == "through the tunnel\n"
            assert "setup-tun.txt" in await shell.list_dir(".")
            grade = await client.grade("done")
            assert grade["score"] == 1.0
