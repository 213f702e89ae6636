"""`Workspace`: SSH exec/shell/SFTP, the bubblewrap sandbox, per-rollout state, file tracking.

Everything here runs real daemons: the asyncssh server and client, bwrap sandboxes, our
control server and its tunnels (in-process with `bind`, and in child processes with
`SubprocessRuntime`). Sandbox tests skip with the reason when bubblewrap cannot run here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from hud import Environment
from hud.capabilities import Capability
from hud.clients import connect
from hud.clients.ssh_client import SSHClient
from hud.environment.server import bind
from hud.environment.workspace import Workspace
from hud.environment.workspace.sandbox import bwrap_problem, etc_secrets
from hud.environment.workspace.sftp import SFTP_SERVERS
from hud.eval.filetracking import diff_workspace
from hud.eval.rollout import rollout
from hud.eval.runtimes.subprocess import SubprocessRuntime
from hud.graders import BashGrader

REPO = Path(__file__).resolve().parents[1]
WS_ENV = REPO / "tests" / "envs" / "workspace" / "env.py"
PEER_PY = REPO / ".peer" / "hud" / "bin" / "python"

BWRAP_PROBLEM = bwrap_problem()
needs_bwrap = pytest.mark.skipif(
    BWRAP_PROBLEM is not None, reason=f"bubblewrap unusable here: {BWRAP_PROBLEM}"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    (path / "seed.txt").write_text("seed\n")
    return path


@pytest.fixture
async def ws(root: Path) -> AsyncIterator[Workspace]:
    workspace = Workspace(root)
    await workspace.start()
    try:
        yield workspace
    finally:
        await workspace.stop()


@pytest.fixture
async def shell(ws: Workspace) -> AsyncIterator[SSHClient]:
    client = await SSHClient.connect(ws.capability())
    try:
        yield client
    finally:
        await client.close()


# -- manifest ------------------------------------------------------------------------------------


@needs_bwrap
async def test_capability_binding(ws: Workspace, root: Path) -> None:
    cap = ws.capability()
    assert (cap.name, cap.protocol) == ("shell", "ssh/2")
    assert cap.url == f"ssh://127.0.0.1:{ws.port}"
    params = cap.params
    assert params["user"] == "agent" and params["shell"] == "bash"
    assert params["host_pubkey"].startswith("ssh-ed25519 ")
    assert params["client_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert (params["cwd"], params["isolation"]) == ("/workspace", "bwrap")
    key_path = Path(params["client_key_path"])
    assert key_path.read_text() == params["client_key"]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    assert not key_path.resolve().is_relative_to(root.resolve())
    # The key and its directory are gone once the workspace stops.
    await ws.stop()
    assert not key_path.parent.exists()


@needs_bwrap
@pytest.mark.peer
@pytest.mark.skipif(not PEER_PY.exists(), reason="official hud package not in .peer/hud")
async def test_binding_matches_official_workspace(ws: Workspace, tmp_path: Path) -> None:
    """Our ssh/2 binding carries every param the official Workspace publishes (same types)."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import asyncio, json, tempfile\n"
        "from hud.environment import Workspace\n"
        "async def main():\n"
        "    ws = Workspace(tempfile.mkdtemp(), track_files=True)\n"
        "    await ws.start()\n"
        "    cap, ft = ws.capability(), ws.file_tracking_capability()\n"
        "    out = {'ssh': [cap.name, cap.protocol, cap.url.split(':')[0],\n"
        "           {k: type(v).__name__ for k, v in cap.params.items()},\n"
        "           cap.params['cwd'], cap.params['isolation'], cap.params['user']],\n"
        "           'ft': [ft.name, ft.protocol, ft.url.split(':')[0], sorted(ft.params)]}\n"
        "    await ws.stop()\n"
        "    print(json.dumps(out))\n"
        "asyncio.run(main())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUD_", "PYTHON"))}
    done = subprocess.run(
        [str(PEER_PY), "-I", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    official = json.loads(done.stdout.strip().splitlines()[-1])
    name, protocol, scheme, types, cwd, isolation, user = official["ssh"]
    cap = ws.capability()
    assert (cap.name, cap.protocol, cap.url.split(":")[0]) == (name, protocol, scheme)
    assert (cap.params["cwd"], cap.params["isolation"], cap.params["user"]) == (
        cwd,
        isolation,
        user,
    )
    ours = {k: type(v).__name__ for k, v in cap.params.items()}
    missing = {k: t for k, t in types.items() if ours.get(k) != t}
    # process_connections advertises the official sandbox's process-connection API (not ours).
    assert set(missing) <= {"process_connections"}, missing
    ft_name, ft_protocol, ft_scheme, ft_params = official["ft"]
    tracked = Workspace(ws.prepared_root, track_files=True, isolate_sessions=False)
    await tracked.start()
    try:
        ft = tracked.file_tracking_capability()
        assert [ft.name, ft.protocol, ft.url.split(":")[0], sorted(ft.params)] == [
            ft_name,
            ft_protocol,
            ft_scheme,
            ft_params,
        ]
    finally:
        await tracked.stop()


# -- exec and the sandbox -------------------------------------------------------------------------


@needs_bwrap
async def test_exec_runs_sandboxed_with_clean_env(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUD_LEAK_CHECK", "host-secret")
    monkeypatch.setenv("LEAK_CHECK_PLAIN", "host-value")
    ws = Workspace(root, env={"FOO": "bar", "HUD_API_KEY": "sk-nope"})
    await ws.start()
    try:
        async with await SSHClient.connect(ws.capability()) as sh:
            out = await sh.run("pwd; id -u; env; grep CapEff /proc/self/status; cat seed.txt")
    finally:
        await ws.stop()
    assert out.exit_code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "/workspace"
    assert "FOO=bar" in lines and "HOME=/home/agent" in lines
    assert not [line for line in lines if line.startswith("HUD_") or "host-" in line]
    assert "CapEff:\t0000000000000000" in lines
    assert lines[-1] == "seed"


@needs_bwrap
async def test_sandbox_hides_host_files(shell: SSHClient, ws: Workspace) -> None:
    """No secrets of /etc, no env source, no credentials, no host tree outside the root."""
    secret_files = [p for p, is_dir in etc_secrets() if not is_dir][:5]
    key_path = ws.capability().params["client_key_path"]
    probes = [*secret_files, __file__, key_path, str(REPO / "hud" / "__init__.py")]
    script = "; ".join(f"cat -- {json.dumps(p)} >/dev/null 2>&1 && echo LEAK {p}" for p in probes)
    out = await shell.run(script + "; ls / ; true")
    assert "LEAK" not in out.stdout, out.stdout
    visible = set(out.stdout.split())
    assert {"workspace", "usr", "etc", "tmp"} <= visible
    assert not visible & {"root", "work", "srv", "opt", "var", "mnt"}
    # Positive control: the same probe sees a file that is in the workspace.
    out = await shell.run("cat -- /workspace/seed.txt >/dev/null 2>&1 && echo READABLE")
    assert out.stdout.strip() == "READABLE"


@needs_bwrap
async def test_sandbox_blocks_writes_outside(shell: SSHClient, ws: Workspace, root: Path) -> None:
    marker = f"hud-escape-{secrets.token_hex(4)}"
    targets = ["/usr", "/etc", "/", "/bin", "/proc/sys/kernel"]
    script = "; ".join(f"touch {t}/{marker} 2>/dev/null && echo WROTE {t}" for t in targets)
    out = await shell.run(script + f"; echo x > /tmp/{marker} && echo TMP; true")
    assert "WROTE" not in out.stdout
    assert "TMP" in out.stdout  # the sandbox's own /tmp is writable ...
    assert not Path("/tmp", marker).exists()  # ... and is not the host's
    for target in targets:
        assert not Path(target, marker).exists()
    out = await shell.run(f"echo inside > {marker}")
    assert out.exit_code == 0
    assert (root / marker).read_text() == "inside\n"


@needs_bwrap
async def test_sandbox_cannot_reach_control_port(root: Path) -> None:
    """Network is unshared: the control port on loopback is unreachable; with network=True
    (the positive control) it is."""
    for network in (False, True):
        env = Environment("net")
        env.workspace(root, network=network, track_files=False)
        server = await bind(env)
        try:
            async with connect(server.url) as client:
                sh = await client.open("shell")
                probe = f"exec 3<>/dev/tcp/127.0.0.1/{server.port} && echo CONNECTED"
                out = await sh.run(probe + "; true")
        finally:
            await server.close()
        assert ("CONNECTED" in out.stdout) is network, (network, out)


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to shell_uid needs root")
async def test_shell_uid_runs_commands_as_that_user() -> None:
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="hud-uid-"))  # pytest's tmp dirs are 0700
    try:
        os.chmod(base, 0o755)
        root = base / "root"
        root.mkdir()
        (root / "seed.txt").write_text("seed\n")
        ws = Workspace(root, shell_uid=4242, shell_gid=4343)
        async with ws, await SSHClient.connect(ws.capability()) as sh:
            out = await sh.run("id -u; id -g; touch made-here; echo t > /tmp/t; cat /tmp/t")
        assert out.stdout.split() == ["4242", "4343", "t"], out
        made = (root / "made-here").stat()
        assert (made.st_uid, made.st_gid) == (4242, 4343)
        assert (root.stat().st_uid, (root / "seed.txt").stat().st_uid) == (4242, 4242)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@needs_bwrap
async def test_tmp_and_home_persist_within_a_session(shell: SSHClient) -> None:
    await shell.run("echo one > /tmp/keep; echo two > ~/.keep")
    out = await shell.run("cat /tmp/keep ~/.keep")
    assert out.stdout.split() == ["one", "two"]


@needs_bwrap
async def test_exit_codes_timeouts_and_kill(shell: SSHClient) -> None:
    assert (await shell.run("exit 7")).exit_code == 7
    assert (await shell.run("kill -TERM $$")).exit_code == 128 + 15
    marker = f"{secrets.randbelow(10**6) + 10**6}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    out = await shell.run(f"echo begun; sleep {marker}", timeout=0.5)
    assert out.timed_out and out.exit_code is None
    assert loop.time() - started < 5
    assert out.stdout == "begun\n"
    for _ in range(50):  # the server kills the command once the client gives up
        ps = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
        if not ps.stdout.strip():
            break
        await asyncio.sleep(0.1)
    assert not ps.stdout.strip(), "the timed-out command is still running"


@needs_bwrap
async def test_interactive_shell_with_pty(shell: SSHClient) -> None:
    proc = await shell.connection.create_process(
        term_type="xterm", term_size=(100, 30), encoding="utf-8"
    )
    proc.stdin.write("stty size; tty >/dev/null && echo HAS_TTY; echo $((6*7)); exit 3\n")
    output = await asyncio.wait_for(proc.stdout.read(), 20)
    await asyncio.wait_for(proc.wait(), 20)
    assert "30 100" in output and "HAS_TTY" in output and "42" in output
    assert proc.exit_status == 3


@needs_bwrap
async def test_dropped_interactive_session_is_killed(shell: SSHClient) -> None:
    marker = f"{secrets.randbelow(10**6) + 2 * 10**6}"
    proc = await shell.connection.create_process(term_type="xterm", encoding="utf-8")
    proc.stdin.write(f"sleep {marker}\n")
    await asyncio.sleep(0.5)
    assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).stdout
    proc.close()  # the client goes away mid-command
    for _ in range(50):
        ps = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
        if not ps.stdout.strip():
            break
        await asyncio.sleep(0.1)
    assert not ps.stdout.strip(), "the abandoned shell is still running"
    assert (await shell.run("echo alive")).stdout == "alive\n"  # the connection survives


HAVE_SFTP_SERVER = any(os.access(p, os.X_OK) for p in SFTP_SERVERS)


@needs_bwrap
@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(
            "sandboxed",
            marks=pytest.mark.skipif(
                not HAVE_SFTP_SERVER,
                reason="OpenSSH sftp-server not installed (apt-get install openssh-sftp-server)",
            ),
        ),
        "in-process",
    ],
)
async def test_sftp_is_confined(mode: str, shell: SSHClient, ws: Workspace, root: Path) -> None:
    """SFTP sees the workspace at /workspace and nothing of the host: the OpenSSH server in a
    files-only sandbox, or (without it) our in-process server refusing paths that resolve out."""
    if mode == "in-process":
        ws._sftp_server = None
    await shell.run("ln -s /etc/hostname host-link; ln -s /etc host-dir")
    sftp = await shell.sftp()
    try:
        assert await sftp.getcwd() == "/workspace"
        async with sftp.open("/workspace/via-sftp.txt", "w") as fh:
            await fh.write("hello sftp\n")
        assert (root / "via-sftp.txt").read_text() == "hello sftp\n"
        assert "seed.txt" in await sftp.listdir(".")
        async with sftp.open("seed.txt") as fh:
            assert await fh.read() == "seed\n"
        for path in ("/etc/shadow", "/etc/hostname", "host-link", "/tmp/x", "../../etc/shadow"):
            with pytest.raises(asyncssh.SFTPError):
                async with sftp.open(path) as fh:
                    await fh.read()
        for path in ("/usr/hud-sftp-escape", "/hud-sftp-escape"):
            with pytest.raises(asyncssh.SFTPError):
                async with sftp.open(path, "w") as fh:
                    await fh.write("x")
        if mode == "sandboxed":
            allowed = {".", "..", "workspace", "usr", "etc", "dev", "tmp", "bin", "sbin", "lib"}
            assert set(await sftp.listdir("/")) <= allowed | {"lib32", "lib64", "libx32"}
            assert set(await sftp.listdir("/etc")) <= {".", "..", "passwd", "group"}
            assert set(await sftp.listdir("/tmp")) == {".", ".."}  # empty, not the session's
        else:  # as under chroot: / and .. stop at the workspace
            assert set(await sftp.listdir("/")) == set(await sftp.listdir("/workspace"))
            with pytest.raises(asyncssh.SFTPError):
                await sftp.listdir("/workspace/host-dir")
    finally:
        sftp.exit()


async def test_unisolated_mode_says_so(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hud.workspace"):
        ws = Workspace(root, sandbox=False)
        await ws.start()
    try:
        params = ws.capability().params
        assert params["isolation"] == "none"
        assert params["cwd"] == str(root.resolve())
        assert any("WITHOUT isolation" in r.getMessage() for r in caplog.records)
        async with await SSHClient.connect(ws.capability()) as sh:
            out = await sh.run("pwd; env | grep -c '^HUD_' ; true")
        assert out.stdout.split()[0] == str(root.resolve())
    finally:
        await ws.stop()
    with pytest.raises(RuntimeError, match="isolation required"):
        await Workspace(root, sandbox=False, require_isolation=True).start()


async def test_unisolated_sftp_refuses_links_out(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret\n")
    (root / "escape").symlink_to(outside)
    ws = Workspace(root, sandbox=False)
    await ws.start()
    try:
        async with await SSHClient.connect(ws.capability()) as sh:
            sftp = await sh.sftp()
            try:
                visible = str(root.resolve())
                async with sftp.open(f"{visible}/seed.txt") as fh:
                    assert await fh.read() == "seed\n"
                for path in (f"{visible}/escape", str(outside), "/etc/hostname", "../x"):
                    with pytest.raises(asyncssh.SFTPError):
                        async with sftp.open(path) as fh:
                            await fh.read()
            finally:
                sftp.exit()
    finally:
        await ws.stop()


async def test_public_key_auth_only(ws: Workspace) -> None:
    cap = ws.capability()
    host, port = "127.0.0.1", ws.port
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            host, port, username="agent", client_keys=[stranger], known_hosts=None
        )
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            host, port, username="agent", password="agent", client_keys=None, known_hosts=None
        )
    key = asyncssh.import_private_key(cap.params["client_key"])
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(host, port, username="root", client_keys=[key], known_hosts=None)
    conn = await asyncssh.connect(host, port, username="agent", client_keys=[key], known_hosts=None)
    conn.close()


@needs_bwrap
async def test_bash_grader_runs_in_the_sandbox(ws: Workspace) -> None:
    score = await BashGrader.grade(
        1.0, command='test "$PWD" = /workspace && test -f seed.txt', workspace=ws
    )
    assert score.value == 1.0, score.info
    score = await BashGrader.grade(1.0, command="grep -q root /etc/shadow", workspace=ws)
    assert score.value == 0.0


# -- through the control server -------------------------------------------------------------------


def _ws_env(root: Path, **kw: Any) -> tuple[Environment, Workspace]:
    env = Environment("wsenv")
    ws = env.workspace(root, **kw)

    @env.template()
    async def mark(name: str):
        (ws.root / f"setup-{name}.txt").write_text(f"setup {name}\n")
        yield f"write {name}.txt"
        grade = await BashGrader.grade(1.0, command=f"test -f {name}.txt", workspace=ws)
        yield {"score": grade.value, "info": {"files": sorted(os.listdir(ws.root))}}

    return env, ws


async def test_open_shell_goes_through_the_tunnel(root: Path) -> None:
    """All SSH bytes cross the control port: a counting relay in front of it sees them."""
    env, ws = _ws_env(root, track_files=False)
    server = await bind(env)
    counted = [0]

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                counted[0] += len(data)
                dst.write(data)
                await dst.drain()
        dst.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    front = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        async with connect(f"tcp://127.0.0.1:{front.sockets[0].getsockname()[1]}") as client:
            sh = await client.open("shell")
            assert isinstance(sh, SSHClient)
            assert await client.open("shell") is sh  # cached per name
            native = client.find_binding("shell").url
            assert native == ws.ssh_url
            assert sh.capability.url != native and sh.capability.native_url == native
            before = counted[0]
            out = await sh.run("head -c 2000000 /dev/zero | tr '\\0' x")
            assert len(out.stdout) == 2_000_000
            assert counted[0] - before > 2_000_000
    finally:
        front.close()
        await server.close()


async def _agent_rollout(
    url: str, name: str, wrote: asyncio.Barrier, results: dict[str, Any]
) -> None:
    async with connect(url) as client:
        await client.start("mark", {"name": name})
        sh = await client.open("shell")
        await sh.run(f"echo {name} > {name}.txt; echo {name} > /tmp/tmp-{name}")
        await wrote.wait()  # both rollouts have written before either looks
        seen = await sh.run("ls; ls /tmp")
        results[name] = {
            "seen": seen.stdout.split(),
            "grade": await client.grade("done"),
            "user": sh.user,
        }


async def test_concurrent_rollouts_never_see_each_other(root: Path) -> None:
    env, _ = _ws_env(root, track_files=False)
    server = await bind(env)
    try:
        results: dict[str, Any] = {}
        wrote = asyncio.Barrier(2)
        await asyncio.gather(
            *(_agent_rollout(server.url, n, wrote, results) for n in ("alice", "bob"))
        )
        for me, other in (("alice", "bob"), ("bob", "alice")):
            seen = results[me]["seen"]
            assert {f"{me}.txt", f"setup-{me}.txt", f"tmp-{me}", "seed.txt"} <= set(seen)
            assert not [f for f in seen if other in f], (me, seen)
            grade = results[me]["grade"]
            assert grade["score"] == 1.0
            assert not [f for f in grade["info"]["files"] if other in f]
        assert results["alice"]["user"] != results["bob"]["user"]
        # Both rollouts ended: the prepared root is as it was, and a third one starts clean.
        assert sorted(os.listdir(root)) == ["seed.txt"]
        later: dict[str, Any] = {}
        await _agent_rollout(server.url, "carol", asyncio.Barrier(1), later)
        assert set(later["carol"]["seen"]) == {"carol.txt", "setup-carol.txt", "seed.txt"} | {
            "tmp-carol"
        }
    finally:
        await server.close()
    assert sorted(os.listdir(root)) == ["seed.txt"]


async def test_hello_names_each_sessions_user(root: Path) -> None:
    env, ws = _ws_env(root, track_files=True)
    server = await bind(env)
    try:
        async with connect(server.url) as a, connect(server.url) as b:
            user_a = a.find_binding("shell").params["user"]
            assert user_a.startswith("agent-") and user_a != b.find_binding("shell").params["user"]
            await a.hello(a.session_id)  # the heartbeat: same session, same user
            assert a.find_binding("shell").params["user"] == user_a
            token = a.find_binding("filetracking").params["session"]
            assert user_a == f"agent-{token}"
            assert "session" not in ws.file_tracking_capability().params  # only in hello
    finally:
        await server.close()


async def test_task_start_hook_failure_fails_the_start(root: Path) -> None:
    env, _ = _ws_env(root, track_files=False)
    seen: list[str | None] = []

    @env.task_start
    def boom() -> None:
        raise OSError("disk full")

    @env.teardown
    def note() -> None:
        from hud.environment import current_session_id

        seen.append(current_session_id.get())

    server = await bind(env)
    try:
        async with connect(server.url) as client:
            with pytest.raises(Exception, match="failed during setup: OSError: disk full"):
                await client.start("mark", {"name": "x"})
            assert seen == [client.session_id]
    finally:
        await server.close()
    assert sorted(os.listdir(root)) == ["seed.txt"]


async def test_login_without_session_user(root: Path) -> None:
    """The plain user reaches the only running rollout; with two running it is refused, and a
    finished rollout's user is refused."""
    env, ws = _ws_env(root, track_files=False)
    server = await bind(env)
    key = asyncssh.import_private_key(ws.capability().params["client_key"])

    async def plain(user: str = "agent") -> tuple[int | None, str]:
        async with asyncssh.connect(
            "127.0.0.1", ws.port, username=user, client_keys=[key], known_hosts=None
        ) as conn:
            done = await conn.run("ls", check=False)
            return done.exit_status, str(done.stdout) + str(done.stderr)

    try:
        async with connect(server.url) as a, connect(server.url) as b:
            await a.start("mark", {"name": "one"})
            code, text = await plain()
            assert code == 0 and "setup-one.txt" in text
            await b.start("mark", {"name": "two"})
            code, text = await plain()
            assert code != 0 and "2 tasks are running" in text
            user_a = (await a.open("shell")).user
            await a.grade("x")
            code, text = await plain(user_a)
            assert code != 0 and "task has ended" in text
            code, text = await plain()
            assert code == 0 and "setup-two.txt" in text and "setup-one.txt" not in text
            await b.grade("x")
    finally:
        await server.close()


async def test_client_keys_withheld_without_token(root: Path) -> None:
    env, ws = _ws_env(root, track_files=False)
    server = await bind(env, host="0.0.0.0")
    try:
        async with connect(f"tcp://127.0.0.1:{server.port}") as client:
            params = client.find_binding("shell").params
            assert "client_key" not in params and "client_key_path" not in params
            assert params["host_pubkey"] == ws.ssh_host_pubkey
            with pytest.raises(ValueError, match="no client_key"):
                await client.open("shell")
    finally:
        await server.close()
    env, ws = _ws_env(root, track_files=False)
    server = await bind(env, host="0.0.0.0", token="sekrit")
    try:
        async with connect(f"tcp://127.0.0.1:{server.port}", token="sekrit") as client:
            assert "client_key" in client.find_binding("shell").params
            sh = await client.open("shell")
            assert (await sh.run("echo ok")).stdout == "ok\n"
    finally:
        await server.close()


@needs_bwrap
async def test_subprocess_runtime_rollouts_stay_apart() -> None:
    """Forked env processes share the root made at import; concurrent rollouts still do not
    meet, one of them works in the root itself, and the root is restored afterwards."""
    sys.path.insert(0, str(WS_ENV.parent))
    try:
        import env as ws_env_module  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(WS_ENV.parent))
    wrote = asyncio.Barrier(2)
    seen: dict[str, list[str]] = {}

    class Agent:
        def __init__(self, name: str) -> None:
            self.name = name

        async def __call__(self, run: Any) -> None:
            sh = await run.client.open("shell")
            await sh.run(f"echo {self.name} > {self.name}.txt")
            await wrote.wait()
            seen[self.name] = (await sh.run("ls")).stdout.split()
            run.trace.content = "done"

    async with SubprocessRuntime(WS_ENV) as runtime:
        runs = await asyncio.gather(
            *(
                rollout(ws_env_module.mark(name=n), Agent(n), runtime=runtime)
                for n in ("ann", "ben")
            )
        )
    for run, (me, other) in zip(runs, (("ann", "ben"), ("ben", "ann")), strict=True):
        assert run.reward == 1.0, run.trace.steps
        assert not [f for f in seen[me] if other in f], seen
        assert f"{me}.txt" in seen[me]
        assert not [f for f in run.grade.info["files"] if other in f]
    assert sorted(r.grade.info["inplace"] for r in runs) == [False, True]


OFFICIAL_ROLLOUT = """
import asyncio, glob, json, os, sys
from hud import Runtime
from hud.eval import rollout
from hud.eval.task import Task

class Config:
    timeout_seconds = None

class Agent:
    config = Config()
    async def __call__(self, run):
        shell = await run.client.open("shell")
        done = await shell.run("echo official > official.txt; ls")
        run.trace.content = str(done.stdout)

async def main():
    task = Task(env="wstest", id="mark", args={"name": "official"})
    run = await rollout(task, Agent(), runtime=lambda t: _Place(sys.argv[1]))
    spans = []
    for path in glob.glob(os.path.join(os.environ["HUD_TELEMETRY_LOCAL_DIR"], "*.jsonl")):
        spans += [json.loads(line) for line in open(path)]
    files = [p["path"] for s in spans if s["name"].startswith("filetracking.")
             for p in (s["attributes"]["hud.payload"].get("patches") or [])]
    print(json.dumps({"reward": run.reward, "seen": run.trace.content, "tracked": files}))

class _Place:
    def __init__(self, url):
        self.url = url
    async def __aenter__(self):
        return Runtime(self.url)
    async def __aexit__(self, *exc):
        return None

asyncio.run(main())
"""


@needs_bwrap
@pytest.mark.peer
@pytest.mark.skipif(not PEER_PY.exists(), reason="official hud package not in .peer/hud")
async def test_official_rollout_against_our_workspace(tmp_path: Path) -> None:
    """The official client and its rollout (SSH client, file-tracking observer) work with our
    workspace: the per-session user from hello, the shell through the tunnel, the tracker."""
    server = subprocess.Popen(
        [sys.executable, "-m", "hud.environment.server", str(WS_ENV)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = await asyncio.to_thread(server.stdout.readline)
        assert line.startswith("HUD_SERVE_PORT="), line
        url = f"tcp://127.0.0.1:{line.split('=', 1)[1].strip()}"
        script = tmp_path / "official_rollout.py"
        script.write_text(OFFICIAL_ROLLOUT)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUD_", "PYTHON"))}
        env.update(HUD_TELEMETRY_LOCAL_DIR=str(tmp_path / "spans"), HUD_API_KEY="")
        done = await asyncio.to_thread(
            subprocess.run,
            [str(PEER_PY), "-I", str(script), url],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.terminate()
        server.wait(20)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["reward"] == 1.0
    assert {"official.txt", "setup-official.txt", "seed.txt"} <= set(result["seen"].split())
    assert "official.txt" in result["tracked"]
    assert "setup-official.txt" in result["tracked"]  # reported by `setup`, as the reference


# -- file tracking -------------------------------------------------------------------------------


async def test_file_tracking_records_the_agents_changes(root: Path) -> None:
    (root / "edit.txt").write_text("one\ntwo\n")
    (root / "gone.txt").write_text("bye\n")
    env, _ = _ws_env(root, track_files=True)
    server = await bind(env)

    async def agent(run: Any) -> None:
        sh = await run.client.open("shell")
        await sh.run(
            "echo z > zed.txt; echo new > new.txt; printf 'one\\n2\\n' > edit.txt; rm gone.txt; "
            "printf '\\x00\\x01\\x02' > blob.bin; mkdir -p d/e && echo deep > d/e/f.txt"
        )
        run.trace.content = "ok"  # the rollout records the workspace diff after the agent

    try:
        run = await rollout(_task(env, "mark", name="zed"), agent, runtime=_at(server.url))
    finally:
        await server.close()
    steps = [s for s in run.trace.steps if "filetracking" in s.extra]
    assert len(steps) == 1
    report = steps[0].extra["filetracking"]
    by_path = {p["path"]: p for p in report["patches"]}
    assert set(by_path) == {"zed.txt", "new.txt", "edit.txt", "gone.txt", "blob.bin", "d/e/f.txt"}
    assert "setup-zed.txt" not in by_path  # setup's change is not the agent's
    assert by_path["new.txt"]["status"] == "added" and "+new" in by_path["new.txt"]["patch"]
    assert by_path["edit.txt"]["status"] == "modified"
    assert "-two" in by_path["edit.txt"]["patch"] and "+2" in by_path["edit.txt"]["patch"]
    assert by_path["gone.txt"]["status"] == "deleted"
    assert by_path["blob.bin"]["binary"] and "Binary files" in by_path["blob.bin"]["patch"]
    text = steps[0].messages[0]["content"][0]["text"]
    assert "6 changed" in text and "~ edit.txt" in text and "- gone.txt" in text
    assert run.trace.status == "completed" and run.reward == 1.0


async def test_file_tracking_protocol_like_the_reference(root: Path) -> None:
    """An official-style observer: setup reports setup's changes, diff advances."""
    env, _ = _ws_env(root, track_files=True)
    server = await bind(env)
    try:
        async with connect(server.url) as client:
            assert client.find_binding("filetracking").params["setup_diff"] is True
            await client.start("mark", {"name": "obs"})
            reader, writer = await client.open_tunnel("filetracking")

            async def call(method: str) -> dict[str, Any]:
                frame = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}
                writer.write(json.dumps(frame).encode() + b"\n")
                await writer.drain()
                return json.loads(await reader.readline())

            setup = (await call("setup"))["result"]
            assert [p["path"] for p in setup["patches"]] == ["setup-obs.txt"]
            sh = await client.open("shell")
            await sh.run("echo a > a.txt")
            first = (await call("diff"))["result"]
            assert [p["path"] for p in first["patches"]] == ["a.txt"]
            assert (await call("diff"))["result"]["patches"] == []
            snap = (await call("snapshot"))["result"]
            assert {f["path"] for f in snap["files"]} >= {"a.txt", "seed.txt"}
            assert (await call("advance"))["result"] == {"advanced": True}
            flushed = (await call("flush"))["result"]
            assert flushed["diff"]["patches"] == [] and "capture" in flushed
            error = (await call("nope"))["error"]
            assert "unknown filetracking method" in error["message"]
            writer.close()
            await client.grade("x")
    finally:
        await server.close()


async def test_no_tracking_binding_means_no_step(root: Path) -> None:
    env, _ = _ws_env(root, track_files=False)
    server = await bind(env)

    async def agent(run: Any) -> None:
        assert await diff_workspace(run) is None
        run.trace.content = "ok"

    try:
        run = await rollout(_task(env, "mark", name="q"), agent, runtime=_at(server.url))
    finally:
        await server.close()
    assert not [s for s in run.trace.steps if "filetracking" in s.extra]


def test_env_workspace_defaults_to_tracking(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = Environment("t")
    assert env.workspace(root).track_files is True
    monkeypatch.setenv("HUD_FILE_TRACKING_ENABLED", "false")
    from hud.settings import reload

    reload()
    try:
        assert Environment("u").workspace(root).track_files is False
    finally:
        monkeypatch.delenv("HUD_FILE_TRACKING_ENABLED")
        reload()


# -- helpers -------------------------------------------------------------------------------------


def _task(env: Environment, template: str, **args: Any) -> Any:
    return env.tasks[template](**args)


def _at(url: str) -> Any:
    """A placement that hands out an already running server."""
    from hud.eval.runtime import Runtime

    @contextlib.asynccontextmanager
    async def place(task: Any) -> AsyncIterator[Runtime]:
        yield Runtime(url)

    return place


def test_capability_factory_round_trip() -> None:
    cap = Capability.ssh("ssh://127.0.0.1:2222", "ssh-ed25519 AAAA", isolation="bwrap")
    assert Capability.from_binding(cap.to_binding()) == cap


def test_official_network_parameters_are_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Env files written for the official package pass these; they construct, and say they are
    not enforced (the sandbox reaches no more than ``network`` allows)."""
    from hud.environment import Workspace

    with caplog.at_level("WARNING", logger="hud.workspace"):
        ws = Workspace(tmp_path, allowed_hosts=["pypi.org"], local_aliases=["db"], ports=[8080])
    assert ws.allowed_hosts == ["pypi.org"] and ws.ports == (8080,)
    assert "not enforced" in caplog.text and "has no network" in caplog.text
