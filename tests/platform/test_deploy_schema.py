"""The migration history has exactly one head (each helper's migration revises the previous
head), and context tarballs keep and drop what they should."""

from __future__ import annotations

import io
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
