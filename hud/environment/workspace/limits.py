"""Per-rollout resource limits: a cgroup for its processes (pids, memory, CPU) and a
size-limited ``nosuid,nodev`` tmpfs for its files.

Each rollout's commands join a cgroup of their own, created below the server's own cgroup:
with cgroup v2 where the machine has it (controllers delegated to the server's cgroup), else
with the v1 ``pids``, ``memory`` and ``cpu`` hierarchies. A fork bomb stops at the process
limit, inside its rollout, and every member is killed when the rollout ends. The rollout's
files (its copy of the root, ``/tmp`` and home) live on a tmpfs of the disk limit, mounted
``nosuid,nodev`` so nothing the agent makes can gain privileges on the host.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

log = logging.getLogger("hud.workspace")

MIB = 1024 * 1024
#: Controllers a rollout's cgroup uses.
CONTROLLERS = ("pids", "memory", "cpu")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    """What one rollout may use; None lifts that limit.

    ``pids``: processes and threads at once; ``memory_mb``: memory (swap included where the
    kernel accounts it); ``cpus``: CPU time in cores; ``disk_mb``: the rollout's files (its
    workspace, ``/tmp`` and home, each on a tmpfs of this size). The kernel charges tmpfs
    files to the memory of the process writing them, so the rollout's cgroup holds
    ``memory_mb + disk_mb``: files up to the disk limit never count against the memory one.
    """

    @property
    def cgroup_memory_mb(self) -> int | None:
        """What the rollout's memory cgroup allows: its memory plus its files (tmpfs)."""
        if self.memory_mb is None:
            return None
        return self.memory_mb + (self.disk_mb or 0)

    pids: int | None = 512
    memory_mb: int | None = 1024
    cpus: float | None = 1.0
    disk_mb: int | None = 1024

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise ValueError(f"limit {f.name} must be a positive number or None, got {value!r}")

    def merged(self, overrides: Mapping[str, Any] | None) -> Limits:
        """These limits with ``overrides`` (keys of `Limits`, or a `Limits`) applied."""
        if not overrides:
            return self
        if isinstance(overrides, Limits):
            return overrides
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            names = ", ".join(sorted(known))
            raise ValueError(f"unknown workspace limit(s) {', '.join(unknown)}; known: {names}")
        return replace(self, **dict(overrides))

    @property
    def cgroup_needed(self) -> bool:
        return any(v is not None for v in (self.pids, self.memory_mb, self.cpus))


def coerce_limits(value: Limits | Mapping[str, Any] | bool | None) -> Limits | None:
    """``Workspace(limits=...)``: True/omitted -> the defaults, a mapping overrides some of
    them, False/None -> no limits (an explicit opt-out)."""
    if value is None or value is False:
        return None
    if value is True:
        return Limits()
    if isinstance(value, Limits):
        return value
    return Limits().merged(value)


# -- cgroups ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupSupport:
    """Where this process may create rollout cgroups: v2 (one base) or v1 (one per controller)."""

    version: int
    bases: dict[str, Path]

    @property
    def label(self) -> str:
        return f"cgroup-v{self.version}"


def _own_paths() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as fh:
        for line in fh:
            _, names, path = line.rstrip("\n").split(":", 2)
            for name in names.split(",") if names else [""]:
                paths[name] = path
    return paths


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of cgroup filesystems."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fstype, _source, options = [*right.split(), "", "", ""][:3]
            if fstype in ("cgroup", "cgroup2"):
                point = left.split()[4].replace("\\040", " ")
                found.append((point, fstype, set(options.split(","))))
    return found


def _writable(base: Path) -> bool:
    probe = base / f"hud-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    with contextlib.suppress(OSError):
        probe.rmdir()
    return True


def _detect_v2(mounts: list[tuple[str, str, set[str]]], own: dict[str, str]) -> CgroupSupport | str:
    point = next((p for p, t, _ in mounts if t == "cgroup2"), None)
    if point is None or "" not in own:
        return "no cgroup2 hierarchy"
    base = Path(point) / own[""].lstrip("/")
    try:
        available = set((base / "cgroup.controllers").read_text().split())
    except OSError as exc:
        return f"cannot read {base}/cgroup.controllers: {exc}"
    missing = [c for c in ("pids", "memory") if c not in available]
    if missing:
        return f"cgroup v2 at {base} lacks the {', '.join(missing)} controller(s)"
    if not _writable(base):
        return f"cannot create cgroups under {base}"
    wanted = " ".join(f"+{c}" for c in CONTROLLERS if c in available)
    try:
        (base / "cgroup.subtree_control").write_text(wanted)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            return f"cannot enable controllers in {base}: {exc}"
        # A cgroup with processes cannot delegate: move this process to a leaf first.
        leaf = base / f"hud-ws-{os.getpid()}-server"  # swept once this process is gone
        try:
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text("0")
            (base / "cgroup.subtree_control").write_text(wanted)
        except OSError as exc2:
            return f"cannot enable controllers in {base}: {exc2}"
    return CgroupSupport(2, {"": base})


def _detect_v1(mounts: list[tuple[str, str, set[str]]], own: dict[str, str]) -> CgroupSupport | str:
    bases: dict[str, Path] = {}
    for controller in CONTROLLERS:
        point = next((p for p, t, o in mounts if t == "cgroup" and controller in o), None)
        if point is None or controller not in own:
            continue
        base = Path(point) / own[controller].lstrip("/")
        if _writable(base):
            bases[controller] = base
    missing = [c for c in ("pids", "memory") if c not in bases]
    if missing:
        return f"no writable cgroup v1 {', '.join(missing)} hierarchy"
    return CgroupSupport(1, bases)


def detect_cgroups() -> CgroupSupport | str:
    """How rollout cgroups can be made here, or why they cannot."""
    if not os.path.isdir("/sys/fs/cgroup"):
        return "no /sys/fs/cgroup (cgroups are Linux only)"
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError as exc:
        return f"cannot read this process's cgroups: {exc}"
    v2 = _detect_v2(mounts, own) if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else None
    if isinstance(v2, CgroupSupport):
        return v2
    v1 = _detect_v1(mounts, own)
    if isinstance(v1, CgroupSupport):
        return v1
    if os.geteuid() != 0:
        return f"{v1} (not running as root)"
    return v1 if v2 is None else f"{v2}; {v1}"


class RolloutCgroup:
    """The cgroup(s) of one rollout: commands join it before exec; ending it kills every
    member, a fork bomb's too."""

    def __init__(self, support: CgroupSupport, name: str, limits: Limits) -> None:
        self.support = support
        self.limits = limits
        self.dirs: dict[str, Path] = {c: base / name for c, base in support.bases.items()}
        self._fds: list[int] = []

    def create(self) -> None:
        """Make the cgroup(s) and write the limits (blocking)."""
        for path in self.dirs.values():
            path.mkdir(exist_ok=True)
        lim = self.limits
        if self.support.version == 2:
            path = self.dirs[""]
            if lim.pids is not None:
                _write(path / "pids.max", lim.pids)
            if lim.cgroup_memory_mb is not None:
                _write(path / "memory.max", lim.cgroup_memory_mb * MIB)
                _write(path / "memory.swap.max", 0, optional=True)
            if lim.cpus is not None:
                _write(
                    path / "cpu.max",
                    f"{int(lim.cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}",
                    optional=True,
                )
        else:
            if lim.pids is not None:
                _write(self.dirs["pids"] / "pids.max", lim.pids)
            if lim.cgroup_memory_mb is not None:
                mem = self.dirs["memory"]
                _write(mem / "memory.limit_in_bytes", lim.cgroup_memory_mb * MIB)
                _write(
                    mem / "memory.memsw.limit_in_bytes", lim.cgroup_memory_mb * MIB, optional=True
                )
            if lim.cpus is not None and "cpu" in self.dirs:
                cpu = self.dirs["cpu"]
                _write(cpu / "cpu.cfs_period_us", CPU_PERIOD_US)
                _write(cpu / "cpu.cfs_quota_us", int(lim.cpus * CPU_PERIOD_US))
        # Opened here (as the server); a command writes "0" to each before exec (after it
        # may have switched to another uid: the opener's credentials count).
        self._fds = [
            os.open(p / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for p in self.dirs.values()
        ]

    def join(self) -> None:
        """Move the calling process into the cgroup (runs in the child before exec)."""
        for fd in self._fds:
            os.write(fd, b"0")

    def members(self) -> set[int]:
        pids: set[int] = set()
        for path in self.dirs.values():
            with contextlib.suppress(OSError):
                pids.update(int(x) for x in (path / "cgroup.procs").read_text().split())
        return pids

    def kill(self, deadline: float = 10.0) -> bool:
        """SIGKILL every member until none is left (blocking); False if some survive."""
        if self.support.version == 2:
            with contextlib.suppress(OSError):
                (self.dirs[""] / "cgroup.kill").write_text("1")
        end = time.monotonic() + deadline
        while True:
            pids = self.members()
            if not pids:
                return True
            if time.monotonic() > end:
                return False
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def breach(self) -> str | None:
        """Which limit the rollout ran into (None while it stayed within them)."""
        if self.support.version == 2:
            pids_events = self.dirs[""] / "pids.events"
            mem_events = self.dirs[""] / "memory.events"
        else:
            pids_events = self.dirs["pids"] / "pids.events"
            mem_events = self.dirs["memory"] / "memory.oom_control"
        if _counter(pids_events, "max") > 0:
            return f"it reached its process limit ({self.limits.pids})"
        if _counter(mem_events, "oom_kill") > 0:
            return f"it ran out of its memory limit ({self.limits.memory_mb} MiB)"
        return None

    def remove(self) -> None:
        """Kill what is left, close the files, remove the cgroup(s) (blocking)."""
        self.kill()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        for path in self.dirs.values():
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # members still exiting
                    time.sleep(0.02)


def _write(path: Path, value: object, *, optional: bool = False) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        if not optional:
            raise


def _counter(path: Path, key: str) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            with contextlib.suppress(ValueError):
                return int(value)
    return 0


# -- tmpfs --------------------------------------------------------------------------------------

MS_NOSUID = 2
MS_NODEV = 4
MNT_DETACH = 2
_libc: Any = None


def _lib() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def mount_tmpfs(path: Path, size_mb: int | None, mode: int = 0o755) -> None:
    """Mount a ``nosuid,nodev`` tmpfs of ``size_mb`` (unbounded: None) at ``path``."""
    options = f"mode={mode:o}" + (f",size={size_mb}m" if size_mb is not None else "")
    done = _lib().mount(
        b"hud-workspace", os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()
    )
    if done != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount a tmpfs at {path}: {os.strerror(err)}")


MS_REMOUNT = 32
MS_BIND = 4096


def bind_nosuid(path: Path) -> None:
    """Bind-mount ``path`` onto itself ``nosuid,nodev`` (its files stay as they are)."""
    target = os.fsencode(path)
    lib = _lib()
    if lib.mount(target, target, None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot bind-mount {path}: {os.strerror(err)}")
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV
    if lib.mount(None, target, None, flags, None) != 0:
        err = ctypes.get_errno()
        unmount(path)
        raise OSError(err, f"cannot remount {path} nosuid: {os.strerror(err)}")


def unmount(path: Path) -> None:
    """Detach the mount at ``path`` (its files go with the last user)."""
    if _lib().umount2(os.fsencode(path), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # not a mount point (any more)
            raise OSError(err, f"cannot unmount {path}: {os.strerror(err)}")


def tmpfs_problem(scratch: Path) -> str | None:
    """None when this process can mount a tmpfs (tried at ``scratch``), else why not."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return "tmpfs mounts are Linux only"
    probe = scratch / f"hud-mount-probe-{os.getpid()}"
    try:
        probe.mkdir(exist_ok=True)
        mount_tmpfs(probe, 1)
        unmount(probe)
    except OSError as exc:
        return str(exc)
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()
    return None


# -- leftovers of a server that died --------------------------------------------------------------

#: Names carrying the pid of the server that made them: its state directory and its cgroups.
STALE_NAME = re.compile(r"hud-ws-(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_members(path: Path, deadline: float) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            pids = [int(x) for x in (path / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def sweep_stale(support: CgroupSupport | None, scratch: Path | None = None) -> int:
    """Clean what servers that died (SIGKILL) left: their rollout tmpfs mounts, their rollout
    cgroups and their state directories under ``scratch``; returns how many (blocking)."""
    cleaned = 0
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            lines = fh.readlines()
    except OSError:
        lines = []
    for line in reversed(lines):  # nested mounts first
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or right.split()[1:2] != ["hud-workspace"]:
            continue
        point = fields[4].replace("\\040", " ")
        found = STALE_NAME.search(point)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(OSError):
                unmount(Path(point))
                cleaned += 1
    groups = [base.iterdir() for base in (support.bases.values() if support else ())]
    dirs = [scratch.iterdir()] if scratch is not None else []
    for kind, listing in [("cgroup", g) for g in groups] + [("state", d) for d in dirs]:
        with contextlib.suppress(OSError):
            for entry in listing:
                found = STALE_NAME.match(entry.name)
                if not (found and entry.is_dir() and not _alive(int(found.group(1)))):
                    continue
                with contextlib.suppress(OSError):
                    if kind == "cgroup":
                        _kill_members(entry, 2.0)
                        entry.rmdir()
                    else:
                        shutil.rmtree(entry, ignore_errors=True)
                    cleaned += 1
    return cleaned
