"""Per-rollout copies of a workspace root, coordinated across processes.

The root an environment prepares is its *pristine* state. One rollout at a time works in the
root itself (so env code that reads the root path directly, such as a grader with
``cwd=root``, sees that rollout's changes); its teardown restores the root from a pristine
snapshot. Rollouts running at the same time get private copies of the snapshot. The snapshot
is shared by every live `Workspace` on the same root, in this process or others (forked
runtimes import an env once and serve it many times); file locks decide who works in place.

Layout of the shared directory (``<tmp>/hud-workspace-<uid>-<hash of root>``):
``alive.lock`` (shared lock held by each live workspace), ``inplace.lock`` (held by the rollout
working in the root), ``state.lock`` (snapshot and restore), ``pristine/``, ``pristine.ok`` and
``dirty`` (the root is in use in place; a crash leaves it for the next starter to restore).
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

log = logging.getLogger("hud.workspace")


def copy_tree(src: Path, dst: Path) -> None:
    """Copy the contents of ``src`` into ``dst`` (created), keeping modes, links and owners."""
    dst.mkdir(parents=True, exist_ok=True)
    cp = shutil.which("cp")
    if cp is not None and os.uname().sysname == "Linux":
        done = subprocess.run(
            [cp, "-a", "--reflink=auto", "--", f"{src}/.", f"{dst}/"],
            capture_output=True,
        )
        if done.returncode == 0:
            return
        log.debug("cp failed (%s); copying in Python", done.stderr.decode(errors="replace"))
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)


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
    run them in a thread)."""

    def __init__(self, root: Path, base: Path) -> None:
        self.root = root
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:20]
        self.dir = base / f"hud-workspace-{os.getuid()}-{digest}"
        self._alive: int | None = None
        self._inplace: int | None = None

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
        if (self.dir / "dirty").exists() and (self.dir / "pristine.ok").exists():
            log.warning("workspace %s was left in use by a stopped process; restoring", self.root)
            self._restore()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "dirty").unlink()

    def _forget_snapshot(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "pristine.ok").unlink()
        remove_tree(self.pristine)

    def _restore(self) -> None:
        clear_dir(self.root)
        copy_tree(self.pristine, self.root)

    # -- rollouts ---------------------------------------------------------------------------
    def acquire(self, copy_to: Path) -> tuple[Path, bool]:
        """The directory a new rollout works in: (root, True) or (a fresh copy, False)."""
        with _locked(self.dir / "state.lock"):
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
                    self._inplace = fd
                    (self.dir / "dirty").touch()
                    return self.root, True
        copy_tree(self.pristine, copy_to)
        return copy_to, False

    def release_inplace(self) -> None:
        """Restore the root from the snapshot and let another rollout work in place."""
        fd, self._inplace = self._inplace, None
        if fd is None:
            return
        try:
            with _locked(self.dir / "state.lock"):
                self._restore()
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / "dirty").unlink()
        finally:
            os.close(fd)
