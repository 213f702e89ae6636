"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: This test run's id: every container the run causes (here or in a `hud` child) carries it as
#: the ``io.hud.session`` label (hud.eval.runtimes.docker.SESSION_ENV), so the run reaps only its
#: own containers, never those of other processes sharing the daemon.
RUNTIME_SESSION_ENV = "HUD_RUNTIME_SESSION"
os.environ.setdefault(RUNTIME_SESSION_ENV, f"pytest-{os.getpid()}-{os.urandom(4).hex()}")


# -- CLI subprocess helpers (tests/test_cli_task.py, tests/test_cli_serve.py) -----------------


def hud_env(home: Path) -> dict[str, str]:
    """Environment for a `python -m hud` child: repo on PYTHONPATH, HOME = ``home``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HUD_") or k == RUNTIME_SESSION_ENV
    }
    env.update(
        HOME=str(home),
        PYTHONPATH=str(REPO),
        HUD_CLI_ANALYTICS_ENABLED="0",
        NO_COLOR="1",
        COLUMNS="200",
        PYTHONUNBUFFERED="1",
    )
    return env


HudRunner = Callable[..., subprocess.CompletedProcess[str]]


def assert_user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Non-zero exit, no traceback, exactly one ``Error:`` line (an optional ``Hint:`` line)
    containing every needle; returns that line."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, "an error message is printed on stderr"
    assert lines[0].startswith("Error: "), lines
    assert all(line.startswith("Hint: ") for line in lines[1:]), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def hud_home(tmp_path: Path) -> Path:
    """A fresh HOME for CLI children (``~/.hud`` starts empty)."""
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def hud_child_env(hud_home: Path) -> dict[str, str]:
    """The environment `run_hud` uses, for tests that start `python -m hud` themselves."""
    return hud_env(hud_home)


@pytest.fixture
def run_hud(hud_home: Path) -> HudRunner:
    """``run_hud(*args, cwd=..., input=None, home=None, timeout=60)`` -> CompletedProcess."""

    def run(
        *args: str,
        cwd: Path,
        input: str | None = None,
        home: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hud", *args],
            cwd=cwd,
            env=hud_env(home or hud_home),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project made by ``hud init demo`` (env.py + tasks.py with the two `count` rows).

    Shared by the session: treat it as read-only (sessions live in each test's HOME).
    """
    base = tmp_path_factory.mktemp("demo-project")
    proc = subprocess.run(
        [sys.executable, "-m", "hud", "init", "demo", "--dir", str(base)],
        cwd=base,
        env=hud_env(base),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    project = base / "demo"
    assert (project / "env.py").is_file() and (project / "tasks.py").is_file()
    return project


class ServeProcess:
    """A running ``hud serve`` child; ``port`` is read from its ``HUD_SERVE_PORT=`` line."""

    def __init__(self, proc: subprocess.Popen[str], port: int, banner: list[str]) -> None:
        self.proc = proc
        self.port = port
        self.banner = banner

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM, wait, and return (exit code, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


@pytest.fixture
def hud_serve(hud_home: Path) -> Iterator[Callable[..., ServeProcess]]:
    """``hud_serve(*args, cwd=...)`` starts ``hud serve *args``; stopped at teardown."""
    started: list[ServeProcess] = []

    def start(*args: str, cwd: Path) -> ServeProcess:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hud", "serve", *args],
            cwd=cwd,
            env=hud_env(hud_home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        banner: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            banner.append(line.rstrip("\n"))
            if line.startswith("HUD_SERVE_PORT="):
                served = ServeProcess(proc, int(line.split("=", 1)[1]), banner)
                started.append(served)
                return served
        proc.wait(timeout=20)
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"hud serve exited {proc.returncode} without a port: {banner} {err}")

    yield start
    for served in started:
        served.stop()
