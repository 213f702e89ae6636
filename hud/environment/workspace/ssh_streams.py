"""Copying between an SSH server channel and a local command's pipes (asyncssh).

Shared by the workspace's SSH server and the Harbor container shell.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncssh

__all__ = ["CHANNEL_EVENTS", "CHANNEL_GONE", "channel_to_pipe", "pipe_to_channel"]

#: What a dead channel raises when written to.
CHANNEL_GONE = (ConnectionError, OSError, asyncssh.Error, RuntimeError)
#: Out-of-band events a channel read raises (signals, breaks, terminal size).
CHANNEL_EVENTS = (asyncssh.SignalReceived, asyncssh.BreakReceived, asyncssh.TerminalSizeChanged)


async def pipe_to_channel(src: asyncio.StreamReader, dst: Any) -> None:
    """Copy until EOF; once the channel is gone, keep reading (and dropping) to EOF."""
    channel_ok = True
    while data := await src.read(65536):
        if not channel_ok:
            continue
        try:
            dst.write(data)
            await dst.drain()
        except CHANNEL_GONE:
            channel_ok = False


async def channel_to_pipe(
    process: asyncssh.SSHServerProcess[bytes],
    proc: asyncio.subprocess.Process,
    on_event: Callable[[Exception], None] | None = None,
) -> None:
    """Copy the channel's input to ``proc``'s stdin until EOF, then close it; out-of-band
    events (signals, breaks, resizes) go to ``on_event`` (else are ignored)."""
    assert proc.stdin is not None
    try:
        while True:
            try:
                data = await process.stdin.read(65536)
            except CHANNEL_EVENTS as event:
                if on_event is not None:
                    on_event(event)
                continue
            if not data:
                break
            proc.stdin.write(data)
            await proc.stdin.drain()
    except CHANNEL_GONE:
        pass
    finally:
        with contextlib.suppress(Exception):
            proc.stdin.close()
