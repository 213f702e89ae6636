"""The migration history has exactly one head (each helper's migration revises the previous
head), and context tarballs keep and drop what they should."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from tests.platform.helpers import requires_extra


@requires_extra
def test_single_alembic_head() -> None:
    from alembic.script import ScriptDirectory

    from hud.platform.db import alembic_config

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"several migration heads {heads}: set down_revision to main's head"


def test_context_tarball_excludes(tmp_path: Path) -> None:
    from hud.platform.client.context import pack, refilter

    files = {
        "env.py": "x",
        "Dockerfile": "FROM scratch",
        "pkg/mod.py": "y",
        "pkg/__pycache__/mod.cpython-311.pyc": "z",
        ".venv/bin/python": "z",
        ".git/HEAD": "z",
        ".env": "SECRET=1",
        "prod.env": "SECRET=1",
        ".env.local": "SECRET=1",
        "node_modules/a.js": "z",
        "build/out.bin": "ignored by .gitignore",
        "data/big.csv": "ignored by .dockerignore",
        "data/keep.csv": "re-included",
        ".hud/config.json": "{}",
        ".gitignore": "build/\n",
        ".dockerignore": "data/*.csv\n!data/keep.csv\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    data = pack(tmp_path)
    assert data == pack(tmp_path), "packing is deterministic"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    assert names == {
        "env.py",
        "Dockerfile",
        "pkg/mod.py",
        "data/keep.csv",
        ".hud/config.json",
        ".gitignore",
        ".dockerignore",
    }
    out = io.BytesIO()
    kept = refilter(io.BytesIO(data), out)
    assert set(kept) >= {"env.py", "Dockerfile", "data/keep.csv"}
    assert "data/big.csv" not in kept


def test_ignore_patterns_mean_what_docker_means() -> None:
    """Each ignore rule matches exactly the paths Docker's own ``.dockerignore`` matcher (the
    Docker SDK's, as the reference) matches."""
    import pytest

    build = pytest.importorskip("docker.utils.build", reason="the Docker SDK is the reference")
    from hud.platform.client.context import _Rule

    patterns = [
        "*.pyc", "**/*.pyc", "data/*.csv", "data", "/data/", "./a/../data/x?.csv", "**",
        "a/**", "a/**/b", "a**b", "**/node_modules", "[a-c]*.txt", "[!a]*.txt", "[^a]x",
        "x[", "x[]]y", "dir/sub", ".dockerignore", "*", "a.b+c(d)", "sp ace",
    ]  # fmt: skip
    paths = [
        "a.pyc", "x/a.pyc", "x/y/a.pyc", "data", "data/big.csv", "data/x1.csv", "data/sub/x.csv",
        "a", "a/b", "a/x/b", "a/x/y/b", "ab", "axb", "ax/b", "node_modules/m.js",
        "p/node_modules", "b.txt", "a.txt", "d.txt", "bx", "^x", "ax", "x[", "x]y", "x[]]y",
        "dir/sub", "dir/sub/f", "dir", ".dockerignore", ".dockerignore/x", "a.b+c(d)", "sp ace",
        "data/big.csv/inner",
    ]  # fmt: skip
    for pattern in patterns:
        ours, docker = _Rule(pattern), build.PatternMatcher([pattern])
        for path in paths:
            assert ours.matches(path) == docker.matches(path), (pattern, path)


def test_deploy_imports_only_what_it_needs(tmp_path: Path) -> None:
    """`hud deploy` (here with --dry-run) loads its own command module, not the others, nor the
    Docker SDK, nor httpx's command line: start-up is part of every deploy's time."""
    import json
    import subprocess
    import sys

    (tmp_path / "env.py").write_text("from hud import Environment\nenv = Environment('one')\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    code = (
        "import json, sys\n"
        "from hud.cli.main import main\n"
        "code = main(['-q', 'deploy', '.', '--dry-run', '--json', '--no-env'])\n"
        "mods = sorted(m for m in sys.modules if m.startswith(('hud.cli.', 'docker', 'httpx')))\n"
        "sys.stderr.write(json.dumps({'code': code, 'mods': mods,\n"
        "                             'httpx_cli': sys.modules.get('httpx._main') is not None}))\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    seen = json.loads(proc.stderr.strip().splitlines()[-1])
    assert seen["code"] == 0, proc.stderr
    assert "hud.cli.deploy_cmd" in seen["mods"] and "httpx" in seen["mods"]
    others = [m for m in seen["mods"] if m.endswith("_cmd") and m != "hud.cli.deploy_cmd"]
    assert others == [], "other commands' modules were imported"
    assert not [m for m in seen["mods"] if m.startswith("docker")], "the Docker SDK was imported"
    assert not seen["httpx_cli"], "httpx's own command line was imported"
