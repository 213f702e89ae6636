"""`ContainerShell`: an SSH server (``ssh/2``, the ``shell`` capability) whose sessions run
inside a container through ``docker exec``.

It listens on ``127.0.0.1`` with a fresh ed25519 host key and accepts one fresh client key. The
login name picks the container user: the advertised name runs as the task's agent user, any
other name (``root`` for instance, which Harbor agents use for setup and the oracle uses to place
``/solution``) runs as that user. Commands run with ``<shell> -c``; a session without a command
gets the shell itself; sessions asking for a PTY get a TTY exec.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading

import asyncssh

from hud.capabilities import Capability
from hud.environment.workspace.ssh_streams import channel_to_pipe, pipe_to_channel
from hud.eval.runtimes.docker import docker_client, in_thread

log = logging.getLogger("hud.harbor")


class ContainerShell:
    """SSH front door to ``docker exec`` in one container."""

    def __init__(
        self,
        container: str,
        *,
        login: str = "root",
        user: str | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        shell: str = "bash",
    ) -> None:
        self.container = container
        self.login = login
        self.user = user
        self.workdir = workdir
        self.env = dict(env or {})
        self.shell = shell
        self._server: asyncssh.SSHAcceptor | None = None
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        self._client_key = asyncssh.generate_private_key("ssh-ed25519")
        self._procs: set[asyncio.subprocess.Process] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def client_key(self) -> str:
        return self._client_key.export_private_key().decode()

    def capability(self, name: str = "shell") -> Capability:
        return Capability.ssh(
            f"ssh://127.0.0.1:{self.port}",
            self._host_key.export_public_key().decode().strip(),
            user=self.login,
            client_key=self.client_key,
            shell=self.shell,
            cwd=self.workdir,
            isolation="none",
            name=name,
        )

    async def start(self) -> ContainerShell:
        authorized = asyncssh.import_authorized_keys(self._client_key.export_public_key().decode())
        self._server = await asyncssh.create_server(
            _Auth,
            "127.0.0.1",
            0,
            server_host_keys=[self._host_key],
            authorized_client_keys=authorized,
            process_factory=self._handle,
            encoding=None,
            allow_pty=True,
            keepalive_interval=15,
        )
        return self

    async def close(self) -> None:
        for proc in list(self._procs):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def exec_user(self, login: str) -> str | None:
        """The container user for an SSH login name (None = the image's default user)."""
        if login == self.login:
            return self.user
        return login

    # -- sessions --------------------------------------------------------------------------
    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        login = process.get_extra_info("username") or self.login
        user = self.exec_user(login)
        command = process.command
        env = {**self.env, **{str(k): str(v) for k, v in (process.env or {}).items()}}
        try:
            if process.get_terminal_type():
                code = await self._tty(process, command, user, env)
            else:
                code = await self._pipe(process, command, user, env)
        except Exception as exc:
            log.debug("shell session failed: %s", exc)
            with contextlib.suppress(Exception):
                process.stderr.write(f"hud shell: {exc}\n".encode())
            code = 255
        with contextlib.suppress(Exception):
            process.exit(code)

    def _argv(self, command: str | None, user: str | None, env: dict[str, str]) -> list[str]:
        argv = ["docker", "exec", "-i"]
        if user:
            argv += ["-u", user]
        if self.workdir:
            argv += ["-w", self.workdir]
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        argv.append(self.container)
        argv += [self.shell, "-c", command] if command is not None else [self.shell]
        return argv

    async def _pipe(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        command: str | None,
        user: str | None,
        env: dict[str, str],
    ) -> int:
        proc = await asyncio.create_subprocess_exec(
            *self._argv(command, user, env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._procs.add(proc)
        assert proc.stdin and proc.stdout and proc.stderr

        feeder = asyncio.create_task(channel_to_pipe(process, proc))
        try:
            await asyncio.gather(
                pipe_to_channel(proc.stdout, process.stdout),
                pipe_to_channel(proc.stderr, process.stderr),
            )
            code = await proc.wait()
        finally:
            feeder.cancel()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            self._procs.discard(proc)
        return code

    async def _tty(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        command: str | None,
        user: str | None,
        env: dict[str, str],
    ) -> int:
        api = docker_client().api
        cmd = [self.shell, "-c", command] if command is not None else [self.shell, "-l"]
        term = process.get_terminal_type() or "xterm"
        exec_id = (
            await in_thread(
                api.exec_create,
                self.container,
                cmd,
                stdin=True,
                tty=True,
                user=user or "",
                workdir=self.workdir,
                environment={"TERM": term, **env},
            )
        )["Id"]
        wrapped = await in_thread(api.exec_start, exec_id, tty=True, socket=True)
        sock = getattr(wrapped, "_sock", wrapped)
        width, height, *_ = process.get_terminal_size()
        if width and height:
            with contextlib.suppress(Exception):
                await in_thread(api.exec_resize, exec_id, height=height, width=width)
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def reader() -> None:
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    loop.call_soon_threadsafe(process.stdout.write, data)
            except OSError:
                pass
            finally:
                loop.call_soon_threadsafe(done.set)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()

        async def pump_in() -> None:
            while True:
                try:
                    data = await process.stdin.read(65536)
                except asyncssh.TerminalSizeChanged as change:
                    with contextlib.suppress(Exception):
                        await in_thread(
                            api.exec_resize, exec_id, height=change.height, width=change.width
                        )
                    continue
                except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                    continue
                if not data:
                    break
                await in_thread(sock.sendall, data)

        feeder = asyncio.create_task(pump_in())
        try:
            await done.wait()
        finally:
            feeder.cancel()
            with contextlib.suppress(OSError):
                sock.close()
        info = await in_thread(api.exec_inspect, exec_id)
        code = info.get("ExitCode")
        return int(code) if isinstance(code, int) else 255


class _Auth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False


def _quiet_asyncssh() -> None:
    if not os.environ.get("HUD_DEBUG_SSH"):
        logging.getLogger("asyncssh").setLevel(logging.WARNING)


_quiet_asyncssh()
