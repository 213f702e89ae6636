"""Shared helpers for the benchmarks: interpreters, server processes, statistics, tables."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ENV_FILE = BENCH / "bench_env.py"
PEER_BIN = ROOT / ".peer" / "hud" / "bin"
PEER_PYTHON = PEER_BIN / "python"
PEER_HUD = PEER_BIN / "hud"
START_TIMEOUT = 60.0


def peer_python() -> Path:
    """The official package's interpreter, or exit with a clear message."""
    if not PEER_PYTHON.exists():
        sys.exit(
            f"error: the official hud package is not installed at {PEER_PYTHON.parent.parent}\n"
            "hint: run `make peer` (creates .peer/hud with hud==0.6.21)"
        )
    return PEER_PYTHON


def our_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for our interpreter: the repo on PYTHONPATH, no platform key."""
    env = {k: v for k, v in os.environ.items() if k != "HUD_API_KEY"}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    env.update(extra or {})
    return env


def peer_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the official interpreter: no PYTHONPATH (ours must not shadow it)."""
    drop = {"PYTHONPATH", "HUD_API_KEY", "VIRTUAL_ENV", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["HUD_CLI_ANALYTICS_ENABLED"] = "0"
    env.update(extra or {})
    return env


@dataclass
class Side:
    """One implementation: how to run its Python and the environment it needs."""

    name: str
    python: Path | str
    official: bool

    def argv(self, *args: str) -> list[str]:
        # -I keeps the official interpreter from importing our package from the cwd.
        return [str(self.python), *(["-I"] if self.official else []), *args]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return peer_env(extra) if self.official else our_env(extra)


def sides() -> tuple[Side, Side]:
    return Side("ours", sys.executable, False), Side("official", peer_python(), True)


@contextlib.contextmanager
def databases() -> Iterator[list[tuple[str, Any]]]:
    """The databases a platform bench runs against: ``("sqlite", None)`` and, when the
    PostgreSQL binaries are there, ``("postgresql", cluster)`` on a throwaway cluster that
    is stopped on the way out."""
    from tests.platform.helpers import Postgres

    cluster = None
    try:
        try:
            cluster = Postgres()
        except BaseException as exc:  # pytest.skip when the binaries are missing
            print(f"PostgreSQL unavailable: {exc}", file=sys.stderr)
        yield [("sqlite", None)] + ([("postgresql", cluster)] if cluster is not None else [])
    finally:
        if cluster is not None:
            cluster.stop()


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hud-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def serving(
    side: Side, extra_env: dict[str, str] | None = None, launcher: Sequence[str] = ()
) -> Iterator[str]:
    """Run ``python -m hud.environment.server bench_env.py`` for ``side``; yields its URL.

    ``launcher`` replaces ``-m hud.environment.server`` (e.g. a script patching our server).
    """
    with scratch_dir() as cwd:
        log = (cwd / "server.log").open("w+b")
        proc = subprocess.Popen(
            side.argv(*(launcher or ("-m", "hud.environment.server")), str(ENV_FILE)),
            cwd=cwd,
            env=side.env(extra_env),
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            port = _read_announcement(proc, log, side.name)
            yield f"tcp://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            log.close()


def _read_announcement(proc: subprocess.Popen[bytes], log: object, name: str) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.match(rb"HUD_SERVE_PORT=(\d+)", line.strip())
        if match:
            return int(match.group(1))
    proc.kill()
    proc.wait()
    log.seek(0)  # type: ignore[attr-defined]
    tail = log.read()[-2000:].decode(errors="replace")  # type: ignore[attr-defined]
    sys.exit(f"error: the {name} server did not announce HUD_SERVE_PORT:\n{tail}")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else float("inf")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table."""
    cells = [[str(h) for h in headers], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


@dataclass
class Figure:
    """One headline number for the run_all summary."""

    name: str
    ours: float
    official: float | None
    unit: str
    target: str
    met: bool | None

    def row(self) -> list[object]:
        theirs = "-" if self.official is None else self.official
        rel = "-" if self.official is None else ratio(self.ours, self.official)
        verdict = {True: "yes", False: "NO", None: "-"}[self.met]
        return [self.name, self.ours, theirs, rel, self.unit, self.target, verdict]


FIGURE_HEADERS = ("figure", "ours", "official", "ours/official", "unit", "target", "met")
