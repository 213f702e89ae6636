"""Per-rollout copies of a workspace root, coordinated across processes.

The root an environment prepares is its *pristine* state. One rollout at a time works in the
root itself (so env code that reads the root path directly, such as a grader with
``cwd=root``, sees that rollout's changes); its teardown restores the root from a pristine
snapshot. Rollouts running at the same time get private copies of the snapshot. The snapshot
is shared by every live `Workspace` on the same root, in this process or others (forked
runtimes import an env once and serve it many times); file locks decide who works in place.

Layout of the shared directory (``<tmp>/hud-workspace-<uid>-<hash of root>``):
``alive.lock`` (shared lock held by each live workspace), ``inplace.lock`` (held by the rollout
working in the root), ``state.lock`` (snapshot and restore), ``pristine/``, ``pristine.ok``,
``dirty`` (the root is in use in place; a crash leaves it for the next starter to restore) and
``broken`` (restoring the root failed: no rollout gets it until a restore succeeds).

With a disk limit (``disk_mb``) the rollout working in place gets a ``nosuid,nodev`` tmpfs of
that size mounted over the root, filled from the snapshot; ending it unmounts the tmpfs, so
the root underneath is never written and its restore cannot leave it empty.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from hud.environment.workspace.limits import mount_tmpfs, unmount
from hud.protocol.errors import HudError

log = logging.getLogger("hud.workspace")


def copy_tree(src: Path, dst: Path) -> None:
    """Copy the contents of ``src`` into ``dst`` (created), keeping modes, links and owners."""
    dst.mkdir(parents=True, exist_ok=True)
    cp = shutil.which("cp")
    if cp is not None and os.uname().sysname == "Linux":
        try:
            done = subprocess.run(
                [cp, "-a", "--reflink=auto", "--", f"{src}/.", f"{dst}/"],
                capture_output=True,
            )
        except OSError as exc:  # e.g. no process could be started
            log.debug("cp could not start (%s); copying in Python", exc)
        else:
            if done.returncode == 0:
                return
            log.debug("cp failed (%s); copying in Python", done.stderr.decode(errors="replace"))
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)


class WorkspaceBroken(HudError, RuntimeError):
    """The prepared root could not be restored after a rollout: no new rollout gets it."""


def _tmpfs_at(path: Path) -> bool:
    """Whether ``path`` is the mount point of one of our tmpfs mounts."""
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields = left.split()
                point = fields[4].replace("\\040", " ") if len(fields) > 4 else ""
                if point == target and right.split()[1:2] == ["hud-workspace"]:
                    return True
    except OSError:
        return False
    return False


def clear_dir(path: Path) -> None:
    """Remove everything inside ``path`` (not ``path`` itself)."""
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
            if os.path.lexists(entry.path):  # read-only subdirectories
                _force_rmtree(entry.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _force_rmtree(path: str) -> None:
    for parent, dirs, _files in os.walk(path):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(parent, name), 0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        _force_rmtree(str(path))


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def _locked(path: Path, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


class RootCoordinator:
    """Decides, per rollout, between the root in place and a private copy (blocking calls:
    run them in a thread). With ``mount`` the in-place rollout works on a tmpfs (of
    ``disk_mb``) over the root."""

    def __init__(self, root: Path, base: Path, *, mount: bool = False) -> None:
        self.root = root
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:20]
        self.dir = base / f"hud-workspace-{os.getuid()}-{digest}"
        self.mount = mount
        self._alive: int | None = None
        self._inplace: int | None = None
        self._mounted = False

    @property
    def pristine(self) -> Path:
        return self.dir / "pristine"

    # -- lifetime of one Workspace ---------------------------------------------------------
    def open(self) -> None:
        while True:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.dir / "alive.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                fcntl.flock(fd, fcntl.LOCK_SH)
                alone = False
            if _same_file(fd, self.dir / "alive.lock"):
                break
            os.close(fd)  # the last user removed the directory meanwhile: start over
        if alone:
            # No other live workspace on this root: recover from a crash, start a new snapshot
            # generation (the env may have prepared the root differently this time).
            with _locked(self.dir / "state.lock"):
                self._recover()
                self._forget_snapshot()
            fcntl.flock(fd, fcntl.LOCK_SH)
        self._alive = fd

    def close(self) -> None:
        if self._inplace is not None:
            with contextlib.suppress(WorkspaceBroken):
                self.release_inplace()
        fd, self._alive = self._alive, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        try:
            with _locked(self.dir / "state.lock"):
                with contextlib.suppress(OSError):
                    self._recover()
                self._forget_snapshot()
            # Last one out: remove the directory (a starter that opened the old lock file
            # notices it is gone and starts over).
            trash = self.dir.with_name(f"{self.dir.name}.gone-{os.getpid()}")
            with contextlib.suppress(OSError):
                os.rename(self.dir, trash)
                remove_tree(trash)
        finally:
            os.close(fd)

    def _recover(self) -> None:
        if _tmpfs_at(self.root):  # a stopped process left its rollout's tmpfs over the root
            log.warning("workspace %s was left in use by a stopped process; unmounting", self.root)
            unmount(self.root)
        elif (self.dir / "dirty").exists() and (self.dir / "pristine.ok").exists():
            log.warning("workspace %s was left in use by a stopped process; restoring", self.root)
            self._restore()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "dirty").unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "broken").unlink()

    def _forget_snapshot(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "pristine.ok").unlink()
        remove_tree(self.pristine)

    def _restore(self) -> None:
        clear_dir(self.root)
        copy_tree(self.pristine, self.root)

    def _mount_root(self, disk_mb: int | None) -> None:
        """A tmpfs over the root holding a copy of the snapshot, owned and moded as the root."""
        st = os.stat(self.root)
        mount_tmpfs(self.root, disk_mb, st.st_mode & 0o7777)
        self._mounted = True
        os.chown(self.root, st.st_uid, st.st_gid)
        try:
            copy_tree(self.pristine, self.root)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"the prepared workspace does not fit its disk limit ({disk_mb} MiB): {exc}",
            ) from exc

    def _unmount_root(self) -> None:
        if self._mounted:
            unmount(self.root)
            self._mounted = False

    # -- rollouts ---------------------------------------------------------------------------
    def acquire(self, copy_to: Path, disk_mb: int | None = None) -> tuple[Path, bool]:
        """The directory a new rollout works in: (root, True) or (a fresh copy, False).
        Raises `WorkspaceBroken` when the root could not be restored after a rollout."""
        with _locked(self.dir / "state.lock"):
            if (self.dir / "broken").exists():
                self._repair()
            if not (self.dir / "pristine.ok").exists():
                remove_tree(self.pristine)
                copy_tree(self.root, self.pristine)
                (self.dir / "pristine.ok").touch()
            if self._inplace is None:
                fd = os.open(self.dir / "inplace.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                else:
                    try:
                        if self.mount:
                            self._mount_root(disk_mb)
                    except BaseException:
                        with contextlib.suppress(OSError):
                            self._unmount_root()
                        os.close(fd)
                        raise
                    self._inplace = fd
                    (self.dir / "dirty").touch()
                    return self.root, True
        copy_tree(self.pristine, copy_to)
        return copy_to, False

    def _repair(self) -> None:
        """Try the failed restore once more (under the state lock); `WorkspaceBroken` if it
        fails again."""
        reason = (self.dir / "broken").read_text(errors="replace").strip()
        try:
            if _tmpfs_at(self.root):
                unmount(self.root)
            else:
                self._restore()
        except OSError as exc:
            raise WorkspaceBroken(
                f"workspace {self.root} is broken: restoring it after a rollout failed "
                f"({reason}; again: {exc}); it serves no new rollout until the environment "
                "restarts"
            ) from exc
        (self.dir / "broken").unlink()
        log.warning("workspace %s restored after an earlier failure (%s)", self.root, reason)

    def release_inplace(self) -> None:
        """Restore the root from the snapshot and let another rollout work in place. When
        that fails the root is marked broken (`acquire` refuses it) and `WorkspaceBroken`
        raised."""
        fd, self._inplace = self._inplace, None
        if fd is None:
            return
        try:
            with _locked(self.dir / "state.lock"):
                try:
                    if self._mounted:
                        self._unmount_root()
                    else:
                        self._restore()
                except OSError as exc:
                    (self.dir / "broken").write_text(f"{type(exc).__name__}: {exc}")
                    log.error("workspace %s could not be restored: %s", self.root, exc)
                    raise WorkspaceBroken(
                        f"workspace {self.root} could not be restored after a rollout: {exc}"
                    ) from exc
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / "dirty").unlink()
        finally:
            os.close(fd)
