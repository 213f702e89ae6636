"""A virtual X screen for tests: Xvfb on a free display served by x11vnc (skipped without)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

BINARIES = ("Xvfb", "x11vnc", "xsetroot", "xset")
SIZE = (320, 240)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def caps_lock(display: str) -> bool:
    """Whether Caps Lock is on on X ``display``."""
    out = subprocess.run(["xset", "-display", display, "q"], capture_output=True, text=True)
    return "Caps Lock:   on" in out.stdout


class Desktop:
    """Xvfb (``size``, 24-bit) on a free display with an open x11vnc server (`port`); with
    ``password``, a second server that asks for it (`secure_port`)."""

    def __init__(self, size: tuple[int, int] = SIZE, password: str | None = None) -> None:
        read_fd, write_fd = os.pipe()
        self.xvfb = subprocess.Popen(
            [
                *("Xvfb", "-displayfd", str(write_fd), "-noreset", "-nolisten", "tcp", "-ac"),
                *("-screen", "0", f"{size[0]}x{size[1]}x24"),
            ],
            pass_fds=[write_fd],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            number = pipe.readline().strip()
        assert number, "Xvfb did not start"
        self.display = f":{number.decode()}"
        self.vnc: list[subprocess.Popen[bytes]] = []
        self.tmp = tempfile.mkdtemp(prefix="hud-test-vnc-")
        self.port = self._x11vnc()
        self.password = password
        self.secure_port: int | None = None
        if password is not None:
            passwd_file = Path(self.tmp) / "passwd"
            subprocess.run(
                ["x11vnc", "-storepasswd", password, str(passwd_file)],
                check=True,
                capture_output=True,
            )
            self.secure_port = self._x11vnc("-rfbauth", str(passwd_file))

    def _x11vnc(self, *extra: str) -> int:
        port = free_port()
        proc = subprocess.Popen(
            [
                *("x11vnc", "-display", self.display, "-rfbport", str(port), "-localhost"),
                *("-forever", "-shared", "-noxdamage", "-quiet", *(extra or ("-nopw",))),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.vnc.append(proc)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(b"PORT="):
                return int(line[5:])
        raise AssertionError("x11vnc did not start")

    def x(self, *command: str) -> str:
        """Run an X client (``xset``, ``xsetroot``, ...) on this display; its stdout."""
        out = subprocess.run(
            [command[0], "-display", self.display, *command[1:]],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    def caps_lock(self) -> bool:
        return caps_lock(self.display)

    def close(self) -> None:
        for proc in [*self.vnc, self.xvfb]:
            stop(proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def desktop(size: tuple[int, int] = SIZE, password: str | None = None) -> Iterator[Desktop]:
    """A running `Desktop`; skips the test when Xvfb, x11vnc or the X utilities are missing."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install xvfb x11vnc x11-xserver-utils)")
    desk = Desktop(size, password)
    try:
        yield desk
    finally:
        desk.close()
