"""File tracking: what changed in a workspace, as unified diffs (the ``filetracking/1`` binding).

`FileTracker` scans a directory tree and diffs it against earlier scans. `FileTrackingServer`
serves trackers over newline JSON-RPC on TCP, framed as the control channel is (`hud.protocol`),
with methods ``setup``, ``advance``, ``snapshot``, ``diff``, ``flush`` (params ``{}``) in the
shapes the reference server uses; our extensions are optional params: ``session`` (pick a
session's tracker) and ``since: "setup"`` (changes since the task's setup finished, without
advancing). The rollout side is `hud.clients.filetracking`.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hud.protocol import (
    INVALID_REQUEST,
    PARSE_ERROR,
    SERVER_ERROR,
    FrameTooLargeError,
    decode_frame,
    encode_frame,
    error_frame,
    result_frame,
)

log = logging.getLogger("hud.workspace")

#: Files above this size are hashed by size and mtime and never diffed.
MAX_FILE_BYTES = 1024 * 1024
#: Old contents kept per tracker for diffs; beyond it modified files get a note, not a patch.
MAX_KEPT_BYTES = 32 * 1024 * 1024
#: Directories never scanned (caches that change on their own).
SKIP_DIRS = frozenset({".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
#: Largest reply frame (a diff report carries the patches).
MAX_REPLY_BYTES = 160 * 1024 * 1024


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    ino: int
    hash: str
    #: The file's bytes when it is small enough to diff later (shared between snapshots).
    data: bytes | None = None


Snapshot = dict[str, FileState]


def _is_binary(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def scan(
    root: Path, previous: Snapshot | None = None, *, budget: list[int] | None = None
) -> Snapshot:
    """Regular files under ``root`` (relative POSIX paths); symlinks and `SKIP_DIRS` are
    skipped. Files unchanged since ``previous`` (size, mtime, inode) are not read again."""
    previous = previous or {}
    out: Snapshot = {}
    budget = budget if budget is not None else [MAX_KEPT_BYTES]
    stack = [(str(root), "")]
    while stack:
        path, rel = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            name = f"{rel}{entry.name}"
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name not in SKIP_DIRS:
                    stack.append((entry.path, f"{name}/"))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            old = previous.get(name)
            if (
                old is not None
                and old.size == st.st_size
                and old.mtime_ns == st.st_mtime_ns
                and old.ino == st.st_ino
            ):
                out[name] = old
                continue
            out[name] = _read_state(entry.path, st, budget)
    return out


def _read_state(path: str, st: os.stat_result, budget: list[int]) -> FileState:
    if st.st_size > MAX_FILE_BYTES:
        return FileState(
            st.st_size, st.st_mtime_ns, st.st_ino, f"overlimit:{st.st_size}:{st.st_mtime_ns}"
        )
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError:
        return FileState(st.st_size, st.st_mtime_ns, st.st_ino, f"unreadable:{st.st_size}")
    digest = hashlib.sha256(data).hexdigest()
    keep: bytes | None = None
    if budget[0] >= len(data):
        budget[0] -= len(data)
        keep = data
    return FileState(len(data), st.st_mtime_ns, st.st_ino, digest, keep)


def _patch(path: str, before: FileState | None, after: FileState | None) -> str:
    header = f"--- a/{path}\n+++ b/{path}\n"
    states = [s for s in (before, after) if s is not None]
    if any(s.hash.startswith(("overlimit:", "unreadable:")) for s in states):
        return header + f"(file larger than {MAX_FILE_BYTES} bytes or unreadable; not diffed)"
    if any(s.data is None for s in states):
        return header + "(contents not kept; not diffed)"
    old = (before.data if before is not None else None) or b""
    new = (after.data if after is not None else None) or b""
    if _is_binary(old) or _is_binary(new):
        return f"Binary files a/{path} and b/{path} differ"
    lines = difflib.unified_diff(
        old.decode().splitlines(),
        new.decode().splitlines(),
        f"a/{path}",
        f"b/{path}",
        lineterm="",
    )
    return "\n".join(lines)


def diff(before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
    """Patches from ``before`` to ``after``: added, deleted, modified (sorted by path)."""
    patches = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old is not None and new is not None and old.hash == new.hash:
            continue
        status = "added" if old is None else "deleted" if new is None else "modified"
        binary = any(
            s is not None and s.data is not None and _is_binary(s.data) for s in (old, new)
        )
        patches.append(
            {
                "path": path,
                "status": status,
                "patch": _patch(path, old, new),
                "size_before": old.size if old else 0,
                "size_after": new.size if new else 0,
                "content_hash_before": old.hash if old else None,
                "content_hash_after": new.hash if new else None,
                "binary": binary,
            }
        )
    return patches


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: FileTracker, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class FileTracker:
    """Diffs of one directory: since creation (``initial``), since setup, since the last report."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.RLock()  # calls come from worker threads
        self._budget = [MAX_KEPT_BYTES]
        self.initial = scan(root, budget=self._budget)
        self.ready: Snapshot | None = None
        self.last = self.initial
        self._setup_reported = False

    def _scan(self) -> tuple[Snapshot, float]:
        started = time.perf_counter()
        snap = scan(self.root, self.last, budget=self._budget)
        return snap, (time.perf_counter() - started) * 1000

    @staticmethod
    def _report(before: Snapshot, after: Snapshot, ms: float) -> dict[str, Any]:
        patches = diff(before, after)
        return {
            "snapshot_timestamp": time.time(),
            "scan_duration_ms": round(ms, 2),
            "files_scanned": len(after),
            "files_changed": len(patches),
            "patches": patches,
        }

    @_locked
    def mark_ready(self) -> None:
        """The task's setup is done: later diffs ``since="setup"`` start here."""
        self.ready, _ = self._scan()
        self.last = self.ready

    @_locked
    def setup(self) -> dict[str, Any]:
        """Changes made by the task's setup (first call), else like `diff`."""
        if self.ready is not None and not self._setup_reported:
            self._setup_reported = True
            return self._report(self.initial, self.ready, 0.0)
        return self.diff()

    @_locked
    def diff(self, since: str | None = None) -> dict[str, Any]:
        """Changes since the last report (then advances), or since setup (no advance)."""
        now, ms = self._scan()
        if since == "setup":
            return self._report(self.ready if self.ready is not None else self.initial, now, ms)
        if since == "start":
            return self._report(self.initial, now, ms)
        report = self._report(self.last, now, ms)
        self.last = now
        return report

    @_locked
    def advance(self) -> dict[str, Any]:
        self.last, _ = self._scan()
        return {"advanced": True}

    @_locked
    def snapshot(self) -> dict[str, Any]:
        now, _ = self._scan()
        files = [
            {"path": p, "size": s.size, "content_hash": s.hash} for p, s in sorted(now.items())
        ]
        return {"files": files, "files_scanned": len(files)}

    @_locked
    def flush(self) -> dict[str, Any]:
        report = self.diff()
        capture = {
            key: report[key]
            for key in ("snapshot_timestamp", "scan_duration_ms", "files_scanned", "files_changed")
        }
        capture.update(files_eligible=0, files_captured=0, files_skipped=0, files=[])
        return {"diff": report, "capture": capture}


#: ``resolve(session_token_or_None) -> FileTracker`` (raises LookupError with a message).
Resolver = Callable[[str | None], FileTracker]


class FileTrackingServer:
    """Newline JSON-RPC over TCP in front of the trackers a resolver hands out."""

    def __init__(self, resolve: Resolver, host: str = "127.0.0.1", port: int = 0) -> None:
        self.resolve = resolve
        self.host = host
        self.requested_port = port
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.requested_port, limit=1024 * 1024
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            while line := await reader.readline():
                reply = await self._handle(line)
                if reply is not None:
                    try:
                        data = encode_frame(reply, MAX_REPLY_BYTES)
                    except FrameTooLargeError as exc:
                        data = encode_frame(error_frame(reply.get("id"), SERVER_ERROR, str(exc)))
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError, ValueError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._conns.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any] | None:
        try:
            frame = decode_frame(line)
        except ValueError:
            return error_frame(None, PARSE_ERROR, "parse error")
        if not isinstance(frame, dict):
            return error_frame(
                None, INVALID_REQUEST, "invalid request: a frame must be a JSON object"
            )
        rid = frame.get("id")
        method = frame.get("method")
        raw = frame.get("params")
        params = raw if isinstance(raw, dict) else {}
        try:
            result = await asyncio.to_thread(self._call, method, params)
        except LookupError as exc:
            return error_frame(rid, SERVER_ERROR, str(exc.args[0] if exc.args else exc))
        except Exception as exc:
            log.exception("filetracking %r failed", method)
            return error_frame(rid, SERVER_ERROR, f"{type(exc).__name__}: {exc}")
        return result_frame(rid, result) if "id" in frame else None

    def _call(self, method: Any, params: dict[str, Any]) -> dict[str, Any]:
        if method not in ("setup", "advance", "snapshot", "diff", "flush"):
            raise LookupError(f"unknown filetracking method: {method!r}")
        session = params.get("session")
        tracker = self.resolve(session if isinstance(session, str) else None)
        if method == "diff":
            since = params.get("since")
            return tracker.diff(since if isinstance(since, str) else None)
        return getattr(tracker, method)()
