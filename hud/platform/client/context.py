"""Build contexts: the gzip tarball `hud deploy` uploads (spec platform.md §3.2 step 3), and the
filter the platform applies again before building.

A directory is packed child by child under its relative names. Left out: the default excludes
(caches, virtualenvs, editor droppings), what ``.gitignore`` and ``.dockerignore`` exclude, and
always ``.git`` and ``.env`` files (secrets travel through ``--env``/``--env-file``, never in the
tarball). Entries are normalised (mtime 0, owner root) so the same tree packs the same bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

DEFAULT_EXCLUDES = (
    "__pycache__",
    "*.pyc",
    "*.pyo",
    ".venv",
    "venv",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".DS_Store",
    "Thumbs.db",
)
ALWAYS_EXCLUDED = (".git", ".env", ".env.*", "*.env")


def _translate(pattern: str) -> str:
    """A regular expression for one cleaned ignore pattern, with Docker's ``.dockerignore``
    meaning: ``*`` and ``?`` stop at ``/``, ``**`` spans directories (``**/`` also matches
    none), ``[...]`` is a class (``[!...]`` negated), anything else is literal."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*" and i < n and pattern[i] == "*":
            i += 1
            if i < n and pattern[i] == "/":
                i += 1
            out.append(".*" if i >= n else "(?:.*/)?")
        elif c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = i + 1 if i < n and pattern[i] == "!" else i
            if end < n and pattern[end] == "]":
                end += 1
            end = pattern.find("]", end)
            if end < 0:
                out.append(re.escape(c))
                continue
            body = pattern[i:end].replace("\\", "\\\\")
            i = end + 1
            if body.startswith("!"):
                body = "^" + body[1:]
            elif body.startswith("^"):
                body = "\\" + body
            out.append(f"[{body}]")
        else:
            out.append(re.escape(c))
    return "".join(out)


def _clean(pattern: str) -> list[str]:
    """A pattern's path components: no empty or ``.`` ones, each ``..`` eating the one before."""
    parts: list[str] = []
    for part in pattern.strip().split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return parts


class _Rule:
    """One pattern: it matches a path, or the same number of leading components of the path's
    parent directory; never the ``.dockerignore`` file itself (Docker always sends it)."""

    def __init__(self, pattern: str) -> None:
        self.parts = _clean(pattern)
        self.regex = re.compile(_translate("/".join(self.parts)))

    def matches(self, rel: str) -> bool:
        parts = rel.split("/")
        if parts[0] == ".dockerignore":
            return False
        if self.regex.fullmatch(rel) is not None:
            return True
        parent = parts[:-1]
        return len(self.parts) <= len(parent) and (
            self.regex.fullmatch("/".join(parent[: len(self.parts)])) is not None
        )


class Ignore:
    """Gitignore-style rules (``!`` negation, ``/`` anchoring, ``dir/``, ``**``), applied to
    POSIX paths relative to the context root; the last matching rule wins."""

    def __init__(self, patterns: Iterable[str] = (), *, anchored_by_default: bool = False) -> None:
        self._rules: list[tuple[bool, _Rule]] = []
        for raw in patterns:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            line = line[1:] if negate else line
            line = line.rstrip("/")
            anchored = anchored_by_default or "/" in line
            line = line.lstrip("/")
            if not line:
                continue
            rule = _Rule(line if anchored else f"**/{line}")
            if rule.parts:
                self._rules.append((negate, rule))

    def excluded(self, rel: str) -> bool:
        """True when ``rel`` (or one of its parent directories) is excluded."""
        parts = PurePosixPath(rel).parts
        result = False
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            for negate, rule in self._rules:
                if rule.matches(prefix):
                    result = not negate
            if result and i < len(parts):
                return True
        return result


def _read(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def context_rules(root: Path) -> Ignore:
    """The exclusion rules of the context at ``root``."""
    return Ignore(
        [
            *DEFAULT_EXCLUDES,
            *_read(root / ".gitignore"),
            *_read(root / ".dockerignore"),
            *ALWAYS_EXCLUDED,
        ]
    )


def context_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX name, path) of every file and directory that goes into the context."""
    root = Path(root)
    rules = context_rules(root)
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        kept = []
        for name in sorted(dirnames):
            rel = (base / name).relative_to(root).as_posix()
            if not rules.excluded(rel):
                kept.append(name)
                yield rel, base / name
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = (base / name).relative_to(root).as_posix()
            if not rules.excluded(rel):
                yield rel, base / name


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(root: Path) -> bytes:
    """The gzip tarball of the context at ``root``."""
    buf = io.BytesIO()
    with (
        # level 6, not gzip's 9: contexts are mostly wheels and other compressed files
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel, path in context_files(root):
            info = _normalise(tar.gettarinfo(str(path), arcname=rel))
            if info.isreg():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            elif info.isdir() or info.issym():
                tar.addfile(info)
    return buf.getvalue()


def refilter(source: BinaryIO, out: BinaryIO) -> list[str]:
    """Copy the (gzip or plain) tarball ``source`` into the plain tarball ``out``, applying the
    context's own ``.dockerignore`` (and the always-excluded names), normalised; the names kept.
    Links and devices are dropped, and so are names escaping the context."""
    with tarfile.open(fileobj=source, mode="r:*") as tar:
        members = tar.getmembers()
        ignore_text: list[str] = []
        for m in members:
            if m.name.lstrip("./") == ".dockerignore" and m.isreg():
                fh = tar.extractfile(m)
                if fh is not None:
                    ignore_text = fh.read().decode("utf-8", "replace").splitlines()
        rules = Ignore([*ignore_text, *ALWAYS_EXCLUDED])
        kept: list[str] = []
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dest:
            for m in members:
                name = PurePosixPath(m.name.lstrip("/"))
                if not name.parts or ".." in name.parts:
                    continue
                rel = name.as_posix().removeprefix("./")
                if rel in ("", ".") or rules.excluded(rel):
                    continue
                if not (m.isreg() or m.isdir()):
                    continue
                m.name = rel
                _normalise(m)
                if m.isreg():
                    dest.addfile(m, tar.extractfile(m))
                else:
                    dest.addfile(m)
                kept.append(rel)
    return kept
