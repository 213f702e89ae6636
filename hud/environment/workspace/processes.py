"""Starting a workspace command as a child of the server, and ending it with everything it
started (each command leads its own process group)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import termios
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hud.environment.workspace.routing import ENDED, Session
from hud.environment.workspace.sandbox import SessionSandbox


def set_ctty() -> None:  # runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _preexec(*steps: Callable[[], None] | None) -> Callable[[], None]:
    def run() -> None:  # in the child between fork and exec
        for step in steps:
            if step is not None:
                step()

    return run


def identity(uid: int | None, gid: int | None) -> dict[str, Any]:
    """``create_subprocess_exec`` arguments running as ``uid``/``gid`` (when this process may
    switch)."""
    if uid is None or os.geteuid() != 0:
        return {}
    return {"user": uid, "group": gid if gid is not None else uid, "extra_groups": []}


async def spawn(
    sandbox: SessionSandbox,
    command: Sequence[str],
    session: Session,
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    tty: int | None = None,
    term: str | None = None,
    stdin: int | None = asyncio.subprocess.PIPE,
    files_only: bool = False,
) -> asyncio.subprocess.Process:
    """Start ``command`` for ``session`` (its pipes, or the terminal ``tty``)."""
    if session.ended:
        raise RuntimeError(ENDED)
    argv, host_cwd = sandbox.argv(
        command, session, cwd=cwd, tty=tty is not None, files_only=files_only
    )
    penv = sandbox.environ(session, cwd, term=term, extra=env)
    who = identity(sandbox.uid, sandbox.gid)
    cgroup = session.cgroup
    if cgroup is not None:
        who["preexec_fn"] = _preexec(cgroup.join, set_ctty if tty is not None else None)
    elif tty is not None:
        who["preexec_fn"] = set_ctty
    if tty is not None:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=tty,
            stdout=tty,
            stderr=tty,
            cwd=host_cwd,
            env=penv,
            start_new_session=True,
            **who,
        )
    else:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=host_cwd,
            env=penv,
            start_new_session=True,
            **who,
        )
    session.procs.add(proc)
    return proc


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the command's process group (its background jobs too)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def kill_proc(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL a command still running, with its process group."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


async def kill_all(session: Session) -> None:
    """End every command of ``session`` and wait (5 s each at most) for them to exit."""
    procs = list(session.procs)
    for proc in procs:
        kill_proc(proc)
    for proc in procs:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)
    session.procs.clear()


def signal_group(proc: asyncio.subprocess.Process, signum: int) -> None:
    """Send ``signum`` to a running command's process group."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)


def exit_code(code: int | None) -> int | None:
    """A shell-style exit code (128 + signal for a command killed by a signal)."""
    if code is None:
        return None
    return 128 - code if code < 0 else code
