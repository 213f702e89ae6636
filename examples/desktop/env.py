"""The desktop environment: an X screen (Xvfb) shared over VNC (x11vnc) as the `screen` capability.

On start the environment runs Xvfb on a free display and x11vnc on a free loopback port. Agents
see and drive the screen through the control port's tunnel with an RFB client: screenshots,
keys and pointer events (`run.client.open("screen")` returns `hud.clients.RFBClient`).

Needs the Debian packages xvfb, x11vnc and x11-xserver-utils (xsetroot, xset).

One screen serves one task at a time: `hud eval` gives each rollout an environment process of
its own; a shared `hud serve` wants one task at a time.

Try it:

    hud eval examples/desktop/tasks.py oracle --all   # the oracle looks and types: reward 1.0
    hud serve examples/desktop/env.py                  # serve it for any agent
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import socket
import sys
from typing import Any

from hud import Environment
from hud.capabilities import Capability

env = Environment(name="desktop")

WIDTH, HEIGHT = 1024, 768
_state: dict[str, Any] = {}


def _die_with_parent() -> None:
    """Ask Linux to stop the child when the environment process dies (no orphaned servers)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def _start_xvfb() -> tuple[asyncio.subprocess.Process, str]:
    """Xvfb on the first free display (it tells us which through -displayfd)."""
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            f"{WIDTH}x{HEIGHT}x24",
            "-nolisten",
            "tcp",
            "-ac",
            "-noreset",  # keep the screen as it is when the last client goes
            pass_fds=[write_fd],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
    finally:
        os.close(write_fd)
    try:
        # Xvfb writes the number and the newline separately: read up to the newline, or it
        # dies writing to a closed pipe.
        text = await asyncio.wait_for(asyncio.to_thread(_read_line, read_fd), 30)
    finally:
        os.close(read_fd)
    if not text.strip():
        await _stop(proc)
        raise RuntimeError("Xvfb exited before choosing a display")
    return proc, f":{text.decode().strip()}"


def _read_line(fd: int) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _start_x11vnc(display: str) -> tuple[asyncio.subprocess.Process, int]:
    """x11vnc on a free loopback port, sharing ``display``; ready once it prints PORT=."""
    for _ in range(3):
        port = _free_port()
        proc = await asyncio.create_subprocess_exec(
            "x11vnc",
            "-display",
            display,
            "-rfbport",
            str(port),
            "-localhost",
            "-forever",
            "-shared",
            "-nopw",
            "-noxdamage",
            "-quiet",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        assert proc.stdout is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while line := await proc.stdout.readline():
                    if line.startswith(b"PORT="):
                        return proc, int(line[5:])
        await _stop(proc)  # port taken in between, or x11vnc failed: try another
    raise RuntimeError(f"x11vnc did not start on display {display}")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def x(program: str, *args: str) -> str:
    """Run an X client program on our display; returns its output."""
    proc = await asyncio.create_subprocess_exec(
        program,
        "-display",
        _state["display"],
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{program} failed: {out.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


@env.initialize
async def start_desktop() -> None:
    xvfb, display = await _start_xvfb()
    _state.update(xvfb=xvfb, display=display)
    vnc, port = await _start_x11vnc(display)
    _state.update(vnc=vnc, port=port)
    env.add_capability(Capability.rfb(f"rfb://127.0.0.1:{port}"))


@env.shutdown
async def stop_desktop() -> None:
    for key in ("vnc", "xvfb"):
        proc = _state.pop(key, None)
        if proc is not None:
            await _stop(proc)


# -- background colour: look at the screen -----------------------------------------------------


async def _read_background(run: Any) -> str:
    """Reference solution: take a screenshot and read a pixel away from the cursor."""
    import io

    from PIL import Image

    screen = await run.client.open("screen")
    image = Image.open(io.BytesIO(await screen.screenshot()))
    r, g, b = image.convert("RGB").getpixel((8, 8))
    return f"#{r:02x}{g:02x}{b:02x}"


def _rgb(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"#?([0-9a-fA-F]{6})\b", text)
    if match is None:
        return None
    value = int(match.group(1), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


async def _until_vnc_shows(color: tuple[int, ...], timeout: float = 10.0) -> None:
    """Wait until x11vnc (which polls the X screen) serves the new background."""
    from hud.clients.rfb_client import RFBClient

    async with await RFBClient.connect(Capability.rfb(f"127.0.0.1:{_state['port']}")) as vnc:
        async with asyncio.timeout(timeout):
            while True:
                await vnc.refresh()
                if vnc.image().getpixel((8, 8)) == color:
                    return
                await asyncio.sleep(0.02)


@env.template(solution=_read_background)
async def background_color():
    """Tell the colour of the desktop background (set at random when the task starts)."""
    color = tuple(random.randrange(256) for _ in range(3))
    await x("xsetroot", "-solid", "#{:02x}{:02x}{:02x}".format(*color))
    await _until_vnc_shows(color)
    answer = yield (
        "Look at the screen (the `screen` capability, VNC). What colour is the desktop "
        "background? Answer with its hex code, like #1a2b3c."
    )
    seen = _rgb(str(answer))
    close = seen is not None and all(abs(a - b) <= 2 for a, b in zip(seen, color, strict=True))
    yield 1.0 if close else 0.0


# -- caps lock: press a key --------------------------------------------------------------------


async def _caps_lock_on() -> bool:
    match = re.search(r"Caps Lock:\s+(on|off)", await x("xset", "q"))
    return match is not None and match.group(1) == "on"


async def _wait_caps_lock(on: bool, tries: int = 40) -> bool:
    """Poll until Caps Lock is ``on`` (a key event may still be on its way); its final state."""
    for _ in range(tries):
        state = await _caps_lock_on()
        if state == on:
            return state
        await asyncio.sleep(0.05)
    return not on


async def _press_caps_lock(run: Any) -> str:
    """Reference solution: tap Caps Lock through VNC."""
    screen = await run.client.open("screen")
    await screen.key("Caps_Lock")
    return "done"


@env.template(solution=_press_caps_lock)
async def caps_lock():
    """Switch Caps Lock on with a key press over VNC."""
    if await _caps_lock_on():  # a previous task left it on: switch it off through our own VNC
        from hud.clients.rfb_client import RFBClient

        async with await RFBClient.connect(Capability.rfb(f"127.0.0.1:{_state['port']}")) as vnc:
            await vnc.key("Caps_Lock")
        if await _wait_caps_lock(False):
            raise RuntimeError("could not switch Caps Lock off")
    yield "Using the `screen` capability (VNC), switch Caps Lock on, then answer 'done'."
    yield 1.0 if await _wait_caps_lock(True) else 0.0


if __name__ == "__main__":
    asyncio.run(env.serve())
