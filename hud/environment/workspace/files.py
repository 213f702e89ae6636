"""Reading a rollout's files from the host without following the agent's links out of it.

A grader runs on the host with the server's rights; a path it reads inside the workspace may
be a symlink the agent planted (``answer.txt -> /etc/shadow``). `open_beneath` resolves the
path beneath the root with ``openat2(RESOLVE_BENEATH)`` (links that stay inside are followed;
``..``, absolute links and links leading out raise), or, where the kernel lacks openat2, walks
it component by component with ``O_NOFOLLOW`` (then no symlink is followed at all). Only
regular files open (a FIFO would block the grader).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import stat
import sys
from pathlib import Path, PurePosixPath

from hud.protocol.errors import HudError

#: openat2(2) syscall numbers (the same on every 64-bit Linux architecture we run on).
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08


class WorkspacePathError(HudError, PermissionError):
    """A path that leaves the workspace root (through ``..``, an absolute path or a link)."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


#: Whether openat2 works here (None: not tried yet); Linux only.
_openat2_works: bool | None = None if sys.platform.startswith("linux") else False
#: Flags to open a path without reading it (O_PATH is Linux only).
_PATH_ONLY = getattr(os, "O_PATH", os.O_RDONLY | os.O_NONBLOCK)


def _openat2(dirfd: int, path: str, flags: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    how = _OpenHow(flags | os.O_CLOEXEC, 0, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
    nr = _SYS_OPENAT2[platform.machine()]
    fd = libc.syscall(nr, dirfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def _walk(dirfd: int, parts: list[str], flags: int) -> int:
    """Open ``parts`` below ``dirfd`` refusing every symlink (O_NOFOLLOW at each step)."""
    fd = os.dup(dirfd)
    try:
        for part in parts[:-1]:
            nxt = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
            )
            os.close(fd)
            fd = nxt
        last = parts[-1] if parts else "."
        return os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def relative_parts(path: str | os.PathLike[str], guest_path: str = "/workspace") -> list[str]:
    """``path`` as components below the root: relative, or absolute under ``guest_path``
    (the agent's view); ``..`` and other absolute paths raise `WorkspacePathError`."""
    text = os.fspath(path)
    pure = PurePosixPath(text)
    if pure.is_absolute():
        guest = PurePosixPath(guest_path)
        if pure != guest and guest not in pure.parents:
            raise WorkspacePathError(f"{text!r} is outside the workspace ({guest_path})")
        pure = pure.relative_to(guest)
    parts = [p for p in pure.parts if p != "."]
    if ".." in parts:
        raise WorkspacePathError(f"{text!r} leaves the workspace ('..' is not allowed)")
    return parts


def open_beneath(root: Path, path: str | os.PathLike[str], guest_path: str = "/workspace") -> int:
    """A read-only fd of the regular file ``path`` beneath ``root``; raises
    `WorkspacePathError` when it leads out, the usual `OSError` otherwise."""
    global _openat2_works
    parts = relative_parts(path, guest_path)
    flags = os.O_RDONLY | os.O_NONBLOCK
    rootfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = -1
        if _openat2_works is not False and platform.machine() in _SYS_OPENAT2:
            try:
                fd = _openat2(rootfd, "/".join(parts) or ".", flags)
                _openat2_works = True
            except OSError as exc:
                if exc.errno in (errno.ENOSYS, errno.EPERM) and _openat2_works is None:
                    _openat2_works = False  # no openat2 here (or a seccomp filter denies it)
                elif exc.errno in (errno.EXDEV, errno.ELOOP):
                    raise WorkspacePathError(
                        f"{os.fspath(path)!r} leads out of the workspace"
                    ) from None
                else:
                    raise
        if fd < 0:
            try:
                fd = _walk(rootfd, parts, flags)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _has_link(rootfd, parts):
                    raise WorkspacePathError(
                        f"{os.fspath(path)!r} goes through a symlink (not followed here)"
                    ) from None
                raise
    finally:
        os.close(rootfd)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", os.fspath(path))
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _has_link(rootfd: int, parts: list[str]) -> bool:
    fd = os.dup(rootfd)
    try:
        for part in parts:
            st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                return True
            if not stat.S_ISDIR(st.st_mode):
                return False
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return False


def exists_beneath(
    root: Path, path: str | os.PathLike[str], guest_path: str = "/workspace"
) -> bool:
    """Whether ``path`` names something beneath ``root`` (a link leading out raises)."""
    parts = relative_parts(path, guest_path)
    rootfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _openat2_works is not False and platform.machine() in _SYS_OPENAT2:
            try:
                fd = _openat2(rootfd, "/".join(parts) or ".", _PATH_ONLY)
            except OSError as exc:
                if exc.errno in (errno.EXDEV, errno.ELOOP):
                    raise WorkspacePathError(
                        f"{os.fspath(path)!r} leads out of the workspace"
                    ) from None
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    return False
                if exc.errno not in (errno.ENOSYS, errno.EPERM):
                    raise
            else:
                os.close(fd)
                return True
        try:
            fd = _walk(rootfd, parts, _PATH_ONLY)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR) and not _has_link(rootfd, parts):
                return False
            if _has_link(rootfd, parts):
                raise WorkspacePathError(
                    f"{os.fspath(path)!r} goes through a symlink (not followed here)"
                ) from None
            raise
        is_link = stat.S_ISLNK(os.fstat(fd).st_mode)
        os.close(fd)
        if is_link:
            raise WorkspacePathError(f"{os.fspath(path)!r} is a symlink (not followed here)")
        return True
    finally:
        os.close(rootfd)
