"""Copying bytes between an SSH channel and a command, through pipes or a PTY, until the
command exits (then its status is reported) or the client goes away (then it is killed)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import termios
from typing import Any

import asyncssh

from hud.environment.workspace.processes import exit_code, kill_group, kill_proc, signal_group
from hud.environment.workspace.routing import Session
from hud.environment.workspace.ssh_streams import (
    CHANNEL_EVENTS,
    CHANNEL_GONE,
    channel_to_pipe,
    pipe_to_channel,
)


class LossAware:
    """Mixed into a server process: ``on_lost`` runs when the client's connection drops."""

    on_lost: Any = None


async def relay(
    process: asyncssh.SSHServerProcess[bytes],
    proc: asyncio.subprocess.Process,
    session: Session,
    *,
    pty: int | None = None,
) -> None:
    """Copy bytes between the channel and the command until the command exits (then
    report its status) or the client closes the channel (then kill the command)."""
    lost = asyncio.Event()
    if isinstance(process, LossAware):
        process.on_lost = lost.set
    if pty is not None:
        outputs = [asyncio.ensure_future(pty_to_channel(pty, process.stdout))]
        feeder = asyncio.ensure_future(channel_to_pty(process, proc, pty))
    else:
        assert proc.stdout is not None and proc.stderr is not None
        outputs = [
            asyncio.ensure_future(pipe_to_channel(proc.stdout, process.stdout)),
            asyncio.ensure_future(pipe_to_channel(proc.stderr, process.stderr)),
        ]
        feeder = asyncio.ensure_future(
            channel_to_pipe(process, proc, lambda event: forward_signal(proc, event))
        )
    waiter = asyncio.ensure_future(proc.wait())
    gone = asyncio.ensure_future(lost.wait())
    try:
        await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiter.done():
            kill_proc(proc)
        code = await asyncio.shield(waiter)
        # Background jobs end with the command (as in the sandbox, whose pid namespace
        # dies with it); then the output pipes reach EOF.
        kill_group(proc)
        session.procs.discard(proc)
        gone.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*outputs), 10)
        for task in (*outputs, feeder):
            task.cancel()
        if proc.stdin is not None:
            proc.stdin.close()
    if lost.is_set():
        return
    with contextlib.suppress(Exception):
        process.exit(exit_code(code) or 0)


async def pty_to_channel(master: int, dst: Any) -> None:
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(master, ready.set)
    try:
        while True:
            await ready.wait()
            ready.clear()
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                continue
            except OSError:  # EIO: every holder of the terminal is gone
                return
            if not data:
                return
            dst.write(data)
            await dst.drain()
    except CHANNEL_GONE:
        pass
    finally:
        loop.remove_reader(master)


async def channel_to_pty(
    process: asyncssh.SSHServerProcess[bytes], proc: asyncio.subprocess.Process, master: int
) -> None:
    with contextlib.suppress(*CHANNEL_GONE):
        while True:
            try:
                data = await process.stdin.read(65536)
            except asyncssh.TerminalSizeChanged as change:
                set_winsize(master, change.width, change.height)
                continue
            except CHANNEL_EVENTS as event:
                forward_signal(proc, event)
                continue
            if not data:
                return
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(master, view) :]
                except BlockingIOError:
                    await asyncio.sleep(0.01)


def set_winsize(fd: int, cols: int, rows: int) -> None:
    if cols and rows:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def forward_signal(proc: asyncio.subprocess.Process, event: Exception) -> None:
    """Forward a client's signal (or break, as SIGINT) to the command's process group."""
    if isinstance(event, asyncssh.TerminalSizeChanged):
        return
    name = getattr(event, "signal", "INT") if isinstance(event, asyncssh.SignalReceived) else "INT"
    signum = getattr(signal, f"SIG{name}", None)
    if signum is not None:
        signal_group(proc, signum)
