"""The workspace's asyncssh server: public-key auth with the workspace's keys, nothing
forwarded; each channel runs a shell command (pipes or a PTY) or SFTP for its rollout."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from typing import TYPE_CHECKING

import asyncssh

from hud.environment.workspace.processes import spawn
from hud.environment.workspace.relay import LossAware, relay, set_winsize
from hud.environment.workspace.routing import Session
from hud.environment.workspace.sftp import serve_confined

if TYPE_CHECKING:
    from hud.environment.workspace.workspace import Workspace

log = logging.getLogger("hud.workspace")


async def create_server(ws: Workspace, host: str, port: int) -> asyncssh.SSHAcceptor:
    assert ws.keys is not None
    return await asyncssh.create_server(
        lambda: SSHServer(ws),
        host,
        port,
        server_host_keys=[ws.keys.host],
        encoding=None,
        line_editor=False,
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        keepalive_interval=15,
        keepalive_count_max=4,
    )


class SSHServer(asyncssh.SSHServer):
    """Public-key auth only, with the workspace's keys; nothing forwarded."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self.ws.key_allowed(username, key)

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        ws = self.ws
        return ServerProcess(lambda process: handle_process(ws, process), None, 0, False)


class ServerProcess(LossAware, asyncssh.SSHServerProcess[bytes]):
    """A server process that also receives ``sftp`` subsystem sessions (asyncssh would
    otherwise serve SFTP in-process, outside the sandbox)."""

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp"

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_lost is not None:
            self.on_lost()
        super().connection_lost(exc)

    def session_started(self) -> None:
        chan = self.channel
        if chan.get_subsystem() != "sftp":
            super().session_started()
            return
        stdin = asyncssh.SSHReader[bytes](self, chan)
        stdout = asyncssh.SSHWriter[bytes](self, chan)
        stderr = asyncssh.SSHWriter[bytes](self, chan, asyncssh.EXTENDED_DATA_STDERR)
        handler = self._start_process(stdin, stdout, stderr)
        if inspect.isawaitable(handler):
            chan.get_connection().create_task(handler, stdin.logger)


async def handle_process(ws: Workspace, process: asyncssh.SSHServerProcess[bytes]) -> None:
    """One channel: find its rollout from the login name, then run its shell or SFTP."""
    conn = process.get_extra_info("connection")
    username = process.get_extra_info("username") or ""
    session = ws.sessions.for_user(username)
    if isinstance(session, str):
        process.stderr.write(f"hud workspace: {session}\n".encode())
        process.exit(1)
        return
    session.conns.add(conn)
    try:
        if process.subsystem == "sftp":
            await serve_sftp(ws, process, session)
        elif process.subsystem is not None:
            process.stderr.write(f"unknown subsystem {process.subsystem!r}\n".encode())
            process.exit(1)
        else:
            await serve_shell(ws, process, session)
    except Exception as exc:
        log.warning("workspace ssh session failed: %r", exc, exc_info=True)
        with contextlib.suppress(Exception):
            process.stderr.write(f"hud workspace: {exc}\n".encode())
            process.exit(255)


async def serve_shell(
    ws: Workspace, process: asyncssh.SSHServerProcess[bytes], session: Session
) -> None:
    command = process.command
    argv = ["/bin/bash", "-lc", command] if command is not None else ["/bin/bash", "-l"]
    client_env = {
        k: v for k, v in (process.env or {}).items() if isinstance(k, str) and isinstance(v, str)
    }
    term = process.term_type
    if not term:
        proc = await spawn(ws.sandboxing, argv, session, env=client_env)
        await relay(process, proc, session)
        return
    master, slave = os.openpty()
    try:
        cols, rows, *_ = process.term_size
        set_winsize(slave, cols, rows)
        try:
            proc = await spawn(ws.sandboxing, argv, session, env=client_env, tty=slave, term=term)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        await relay(process, proc, session, pty=master)
    finally:
        os.close(master)


async def serve_sftp(
    ws: Workspace, process: asyncssh.SSHServerProcess[bytes], session: Session
) -> None:
    if ws.isolation == "bwrap" and ws._sftp_server is not None:
        argv = [ws._sftp_server, "-d", ws.guest_path]
        proc = await spawn(ws.sandboxing, argv, session, files_only=True)
        await relay(process, proc, session)
        return
    visible = ws.guest_path if ws.isolation == "bwrap" else str(session.dir)
    await serve_confined(process, session.dir, visible)
