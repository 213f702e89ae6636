"""SFTP for the workspace: OpenSSH's sftp-server inside the sandbox when there is one, else
an in-process server confined to the session's directory."""

from __future__ import annotations

import contextlib
import os
import posixpath
from pathlib import Path
from typing import Any

import asyncssh

#: Where the OpenSSH SFTP server lives on Debian/Ubuntu and Fedora; run inside the sandbox.
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")


def find_sftp_server() -> str | None:
    return next((p for p in SFTP_SERVERS if os.access(p, os.X_OK)), None)


async def serve_confined(
    process: asyncssh.SSHServerProcess[bytes], local: Path, visible: str
) -> None:
    """Serve SFTP in-process over ``local`` shown as ``visible``."""
    server = ConfinedSFTPServer(process.channel, local, visible)
    await asyncssh.sftp.run_sftp_server(server, process.stdin, process.stdout, 3)
    with contextlib.suppress(Exception):
        process.exit(0)


class ConfinedSFTPServer(asyncssh.SFTPServer):
    """SFTP over ``local`` shown as ``visible`` (as under chroot, ``..`` stops there); paths
    resolving outside, through symlinks too, are refused. Used when the sandboxed OpenSSH
    sftp-server is unavailable (without isolation the shell can reach more anyway)."""

    def __init__(self, chan: Any, local: Path, visible: str) -> None:
        super().__init__(chan)
        self._local = os.fsencode(os.path.realpath(local))
        self._visible = os.fsencode(visible.rstrip("/") or "/")

    def _inside(self, real: bytes) -> bool:
        return real == self._local or real.startswith(self._local.rstrip(b"/") + b"/")

    def _resolved(self, local: bytes) -> bytes:
        """``local`` with every symlink followed; refused unless it stays inside."""
        real = os.fsencode(os.path.realpath(local))
        if not self._inside(real):
            raise asyncssh.SFTPPermissionDenied("outside the workspace")
        return real

    def map_path(self, path: bytes) -> bytes:
        """Client path -> local path; the parent directory must resolve inside (the last
        component is left as is, so links can be listed, read and removed)."""
        full = posixpath.normpath(posixpath.join(self._visible, path))
        base = self._visible.rstrip(b"/")
        if full == self._visible or base.startswith(full.rstrip(b"/") + b"/") or full == b"/":
            return self._local  # the root or above it: clamped, as a chroot would
        if not full.startswith(base + b"/"):
            raise asyncssh.SFTPPermissionDenied("outside the workspace")
        local = posixpath.join(self._local, full[len(base) + 1 :])
        self._resolved(posixpath.dirname(local))
        return local

    def reverse_map_path(self, path: bytes) -> bytes:
        if path == self._local:
            return self._visible
        if path.startswith(self._local + b"/"):
            return self._visible.rstrip(b"/") + path[len(self._local) :]
        raise asyncssh.SFTPNoSuchFile("not found")

    # Calls that follow a final symlink check where it leads.
    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> Any:
        self._resolved(self.map_path(path))
        return super().open(path, pflags, attrs)

    def open56(self, path: bytes, *args: Any) -> Any:
        self._resolved(self.map_path(path))
        return super().open56(path, *args)

    def stat(self, path: bytes) -> Any:
        self._resolved(self.map_path(path))
        return super().stat(path)

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> Any:
        self._resolved(self.map_path(path))
        return super().setstat(path, attrs)

    def statvfs(self, path: bytes) -> Any:
        self._resolved(self.map_path(path))
        return super().statvfs(path)

    def realpath(self, path: bytes) -> Any:
        return self.reverse_map_path(self._resolved(self.map_path(path)))

    def link(self, oldpath: bytes, newpath: bytes) -> Any:
        self._resolved(self.map_path(oldpath))
        return super().link(oldpath, newpath)

    def scandir(self, path: bytes) -> Any:
        self._resolved(self.map_path(path))
        return super().scandir(path)
