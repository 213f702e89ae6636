"""A workspace env for tests: the root is made at import, as the official scaffold does, so
a forking runtime's children all share it (their rollouts must still not meet)."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

from hud import Environment
from hud.graders import BashGrader

env = Environment(name="wstest")

ROOT = Path(tempfile.mkdtemp(prefix="hud-wstest-"))
(ROOT / "seed.txt").write_text("seed\n")
atexit.register(functools.partial(shutil.rmtree, ROOT, ignore_errors=True))

ws = env.workspace(ROOT, track_files=True)


@env.template()
async def mark(name: str):
    """Setup writes setup-<name>.txt; the agent writes <name>.txt; graded in the sandbox."""
    (ws.root / f"setup-{name}.txt").write_text(f"setup {name}\n")
    yield f"write {name}.txt"
    files = sorted(os.listdir(ws.root))
    grade = await BashGrader.grade(1.0, command=f"test -f {name}.txt", workspace=ws)
    yield {"score": grade.value, "info": {"files": files, "inplace": ws.root == ROOT}}
