"""Bubblewrap sandboxes for workspace commands: mounts, the argv, and a clean environment.

Each command runs in a fresh ``bwrap`` with every namespace unshared (network only with
``network=True``), all capabilities dropped, read-only system directories, ``/etc`` without the
files only root may read (``/etc/shadow``, SSH host keys, ...), the workspace bind-mounted at
``/workspace`` and a per-session ``/tmp`` and home.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from hud.environment.workspace.routing import Session

log = logging.getLogger("hud.workspace")

MountKind = Literal["ro", "rw", "tmpfs", "symlink", "proc", "dev"]

#: A standard PATH for commands in the workspace.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Host variables passed into the sandbox (none of them secret); ``HUD_*`` never are.
PASSTHROUGH_ENV = ("LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class Mount:
    """One mount in the sandbox: ``kind`` ro/rw bind ``src`` at ``dst``, or a tmpfs, symlink
    (``src`` is the link text), proc or dev at ``dst``. ``optional`` skips a missing ``src``."""

    kind: MountKind
    src: str = ""
    dst: str = ""
    optional: bool = False
    mode: int | None = None

    def argv(self) -> list[str]:
        """bwrap arguments for this mount (empty when optional and ``src`` is missing)."""
        dst = self.dst or self.src
        if self.kind in ("ro", "rw"):
            if not os.path.lexists(self.src):
                if self.optional:
                    return []
                raise FileNotFoundError(f"mount source not found: {self.src}")
            flag = "--ro-bind" if self.kind == "ro" else "--bind"
            return [flag, self.src, dst]
        if self.kind == "symlink":
            return ["--symlink", self.src, dst]
        if self.kind == "tmpfs":
            perms = ["--perms", f"{self.mode:o}"] if self.mode is not None else []
            return [*perms, "--tmpfs", dst]
        if self.kind == "proc":
            return ["--proc", dst or "/proc"]
        if self.kind == "dev":
            return ["--dev", dst or "/dev"]
        raise ValueError(f"unknown mount kind {self.kind!r}")


def _system_mounts() -> tuple[Mount, ...]:
    mounts = [Mount("ro", "/usr", "/usr"), Mount("ro", "/etc", "/etc")]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            mounts.append(Mount("symlink", os.readlink(top), top))
        elif os.path.isdir(top):
            mounts.append(Mount("ro", top, top))
    mounts += [Mount("proc", dst="/proc"), Mount("dev", dst="/dev")]
    return tuple(mounts)


#: Read-only system directories, /proc and /dev (``/tmp`` and home are per session).
DEFAULT_SYSTEM_MOUNTS: tuple[Mount, ...] = _system_mounts()


@functools.cache
def etc_secrets(etc: str = "/etc") -> tuple[tuple[str, bool], ...]:
    """Entries under ``etc`` that other users may not read, as (path, is_dir); masked in the
    sandbox (its root user could otherwise read root-owned files such as ``/etc/shadow``)."""
    found: list[tuple[str, bool]] = []

    def walk(path: str) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if not st.st_mode & stat.S_IROTH or (is_dir and not st.st_mode & stat.S_IXOTH):
                found.append((entry.path, is_dir))
            elif is_dir:
                walk(entry.path)

    walk(etc)
    return tuple(found)


def mask_argv(secrets: Iterable[tuple[str, bool]]) -> list[str]:
    """bwrap arguments hiding ``secrets``: an empty read-only tmpfs over directories, /dev/null
    over files."""
    argv: list[str] = []
    for path, is_dir in secrets:
        if is_dir:
            argv += ["--perms", "0000", "--tmpfs", path, "--remount-ro", path]
        else:
            argv += ["--ro-bind", "/dev/null", path]
    return argv


@functools.cache
def bwrap_path() -> str | None:
    """The ``bwrap`` executable, if installed (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    return shutil.which("bwrap")


@functools.cache
def bwrap_problem() -> str | None:
    """None when bubblewrap can build a sandbox here, else why not (checked once)."""
    exe = bwrap_path()
    if exe is None:
        return "bubblewrap (bwrap) is not installed" + (
            "" if sys.platform.startswith("linux") else " (Linux only)"
        )
    probe = [exe, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL"]
    for mount in DEFAULT_SYSTEM_MOUNTS:
        probe += mount.argv()
    probe += ["--tmpfs", "/tmp", "--", "/bin/sh", "-c", "exit 0"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=30, env={"PATH": DEFAULT_PATH})
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap failed to run: {exc}"
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
        return f"bwrap cannot create a sandbox here: {detail}"
    return None


def clean_env(
    *,
    home: str,
    user: str,
    cwd: str,
    extra: Mapping[str, str] | None = None,
    term: str | None = None,
) -> dict[str, str]:
    """The exact environment of a workspace command: nothing inherited but a few locale
    variables; ``HUD_*`` names are dropped from ``extra`` too."""
    env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env.update(
        PATH=DEFAULT_PATH,
        HOME=home,
        USER=user,
        LOGNAME=user,
        SHELL="/bin/bash",
        PWD=cwd,
        IS_SANDBOX="yes",
    )
    if term:
        env["TERM"] = term
    for key, value in (extra or {}).items():
        if not key.startswith("HUD_") and "=" not in key and key:
            env[str(key)] = str(value)
    return env


def sandbox_argv(
    command: Sequence[str],
    *,
    workspace: str,
    guest_path: str = "/workspace",
    cwd: str | None = None,
    tmp: str | None = None,
    home: tuple[str, str] | None = None,
    network: bool = False,
    system_mounts: Sequence[Mount] | None = None,
    mounts: Sequence[Mount] = (),
    hosts_path: str | None = None,
    uid: int | None = None,
    gid: int | None = None,
    new_session: bool = True,
    mask_etc: bool = True,
) -> list[str]:
    """The full ``bwrap`` argv running ``command`` with ``workspace`` at ``guest_path``.

    ``tmp`` is a host directory mounted at ``/tmp`` (else a fresh tmpfs); ``home`` is
    (host dir, guest dir). ``new_session`` (setsid) is dropped for PTY sessions, whose
    terminal is their own.
    """
    exe = bwrap_path()
    if exe is None:
        raise RuntimeError("bubblewrap is not installed")
    argv = [exe, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL"]
    if network:
        argv.append("--share-net")
    if uid is not None or gid is not None:
        argv += ["--unshare-user"]
        if uid is not None:
            argv += ["--uid", str(uid)]
        if gid is not None:
            argv += ["--gid", str(gid)]
    if new_session:
        argv.append("--new-session")
    for mount in DEFAULT_SYSTEM_MOUNTS if system_mounts is None else system_mounts:
        argv += mount.argv()
    if mask_etc:
        argv += mask_argv(etc_secrets())
    if hosts_path:
        argv += ["--ro-bind", hosts_path, "/etc/hosts"]
    if tmp:
        argv += ["--bind", tmp, "/tmp"]
    else:
        argv += ["--perms", "1777", "--tmpfs", "/tmp"]
    if home is not None:
        argv += ["--bind", home[0], home[1]]
    argv += ["--bind", workspace, guest_path]
    for mount in mounts:
        argv += mount.argv()
    # The sandbox's own root (a tmpfs holding the mount points) is read-only too.
    argv += ["--remount-ro", "/", "--chdir", cwd or guest_path, "--", *command]
    return argv


#: What the sandboxed SFTP server sees besides the workspace: read-only /usr (and its links)
#: and the user database it insists on.
FILES_ONLY_MOUNTS = (
    *(m for m in DEFAULT_SYSTEM_MOUNTS if m.kind in ("ro", "symlink", "dev") and m.dst != "/etc"),
    Mount("ro", "/etc/passwd", "/etc/passwd", optional=True),
    Mount("ro", "/etc/group", "/etc/group", optional=True),
)


@dataclass(frozen=True)
class SessionSandbox:
    """How a workspace runs a command for a session: the argv (in bubblewrap when
    ``isolated``, else plain in the session's directory) and its exact environment."""

    isolated: bool
    guest_path: str
    user: str
    network: bool = False
    system_mounts: Sequence[Mount] | None = None
    mounts: Sequence[Mount] = ()
    hosts_path: str | None = None
    uid: int | None = None
    gid: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def guest_cwd(self, session: Session, cwd: str | None) -> str:
        base = self.guest_path if self.isolated else str(session.dir)
        if not cwd:
            return base
        if not self.isolated and cwd.startswith(self.guest_path):
            # Accept guest paths without isolation too: /workspace/x -> <dir>/x.
            rest = cwd[len(self.guest_path) :]
            if not rest or rest.startswith("/"):
                return base + rest
        return cwd if cwd.startswith("/") else f"{base}/{cwd}"

    def argv(
        self,
        command: Sequence[str],
        session: Session,
        *,
        cwd: str | None = None,
        tty: bool = False,
        files_only: bool = False,
    ) -> tuple[list[str], str | None]:
        """(argv, host cwd) running ``command`` for ``session``: sandboxed or plain.

        ``files_only`` (the SFTP server) sees just the workspace and read-only ``/usr``.
        """
        where = self.guest_cwd(session, cwd)
        if not self.isolated:
            return list(command), where
        if files_only:
            argv = sandbox_argv(
                command,
                workspace=str(session.dir),
                guest_path=self.guest_path,
                cwd=where,
                system_mounts=FILES_ONLY_MOUNTS,
                mask_etc=False,
                uid=self.uid,
                gid=self.gid,
            )
            return argv, None
        argv = sandbox_argv(
            command,
            workspace=str(session.dir),
            guest_path=self.guest_path,
            cwd=where,
            tmp=str(session.tmp),
            home=(str(session.home), self.home(session)),
            network=self.network,
            system_mounts=self.system_mounts,
            mounts=self.mounts,
            hosts_path=self.hosts_path,
            uid=self.uid,
            gid=self.gid,
            new_session=not tty,
        )
        return argv, None

    def home(self, session: Session) -> str:
        return f"/home/{self.user}" if self.isolated else str(session.home)

    def environ(
        self,
        session: Session,
        cwd: str | None,
        *,
        term: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The exact environment of a command (see `clean_env`)."""
        merged = {**self.env, **(extra or {})}
        if not self.isolated:
            merged.setdefault("TMPDIR", str(session.tmp))
        return clean_env(
            home=self.home(session),
            user=self.user,
            cwd=self.guest_cwd(session, cwd),
            extra=merged,
            term=term,
        )
