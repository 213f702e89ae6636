"""Real data for the web page tests: a project on the plain env, a fake OpenAI-compatible
provider that answers right on every other call (so groups have a spread), and our `hud eval`
writing its local job record (and reporting to a platform when given its settings)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.agents.fakes import Recorded, Reply
from tests.platform.helpers import PLAIN, REPO, base_env, make_home, run_cli

_turns = itertools.count()
_lock = threading.Lock()


def answer(request: Recorded) -> Reply:
    """The sum in the prompt on even calls, 0 on odd ones (a reward of 1 or 0)."""
    m = re.search(r"What is (\d+) \+ (\d+)", json.dumps(request.body))
    with _lock:
        right = next(_turns) % 2 == 0
    if not m or not right:
        return Reply(text="0")
    return Reply(text=str(int(m[1]) + int(m[2])))


def make_project(tasks: int = 3) -> Path:
    root = Path(tempfile.mkdtemp(prefix="hud-web-project-"))
    shutil.copy(PLAIN / "env.py", root / "env.py")
    (root / "tasks.py").write_text(
        f"from env import add\n\ntasks = [add(a=i, b=2) for i in range(1, {tasks + 1})]\n"
    )
    return root


def eval_argv(provider_url: str, *extra: str) -> list[str]:
    return ["eval", "tasks.py", "openai_compatible", "--config", f"base_url={provider_url}/v1",
            "--config", "api_key=k", "--model", "fake", "--all", "--yes", "--json",
            *extra]  # fmt: skip


def our_eval(
    project: Path, provider_url: str, env: dict[str, str] | None = None, *extra: str
) -> dict[str, Any]:
    """Our `hud eval` in ``project`` (its record lands in ``project/.hud/jobs``)."""
    env = {**base_env(make_home()), "HUD_CLI_ANALYTICS_ENABLED": "0", **(env or {})}
    proc = run_cli(eval_argv(provider_url, *extra), env, cwd=project, ours=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


class HudView:
    """A `hud view DIR --no-browser --port 0` child; ``url`` is the jobs page it printed."""

    def __init__(self, jobs_dir: Path) -> None:
        env = {**base_env(make_home()), "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hud", "view", str(jobs_dir), "--no-browser", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        self.url = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"(http://\S+/web/jobs)", line)
            if m:
                self.url = m[1]
                break
        if not self.url:
            self.stop()
            raise RuntimeError("hud view printed no URL")
        self.base = self.url.removesuffix("/jobs")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
