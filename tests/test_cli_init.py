"""`hud init`: the bundled offline scaffold, run through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hud.cli.init_cmd import env_name_for, project_name_for
from hud.version import __version__

REPO = Path(__file__).resolve().parents[1]
FILES = {"env.py", "tasks.py", "pyproject.toml", "Dockerfile.hud", "README.md", ".dockerignore"}


def run_hud(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUD_")}
    env.update(
        HOME=str(cwd),
        PYTHONPATH=str(REPO),
        HUD_CLI_ANALYTICS_ENABLED="0",
        NO_COLOR="1",
        COLUMNS="200",
    )
    return subprocess.run(
        [sys.executable, "-m", "hud", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proc = run_hud("init", "my-env", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "my-env"


@pytest.fixture
def clean_imports(project: Path) -> Iterator[Path]:
    """Forget the scaffold's top-level modules (`env`, `tasks`) and its sys.path entry."""
    saved_path = list(sys.path)

    def forget() -> None:
        for name, module in list(sys.modules.copy().items()):
            file = getattr(module, "__file__", None)
            if file and Path(file).resolve().parent == project.resolve():
                del sys.modules[name]

    forget()
    yield project
    forget()
    sys.path[:] = saved_path


def test_init_writes_scaffold(project: Path, tmp_path: Path) -> None:
    wheel = f"openhud-{__version__}-py3-none-any.whl"
    assert {p.name for p in project.iterdir()} == {*FILES, wheel}
    for path in project.iterdir():
        if path.suffix != ".whl":
            assert "{{" not in path.read_text(), path.name
    env_py = (project / "env.py").read_text()
    assert "from hud import Environment" in env_py
    assert 'Environment(name="my_env")' in env_py
    assert "env.workspace(" in env_py  # commented capability hint
    assert 'if __name__ == "__main__":' in env_py and "asyncio.run(env.serve())" in env_py
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "my-env"' in pyproject and 'version = "0.1.0"' in pyproject
    assert 'requires-python = ">=3.11"' in pyproject
    # Ours by default (the wheel of the hud that wrote the project), the official one named.
    config = tomllib.loads(pyproject)
    assert config["project"]["dependencies"] == ["openhud"]
    assert config["tool"]["uv"]["sources"]["openhud"] == {"path": wheel}
    assert '"hud>=0.6.21,<0.7"' in pyproject
    dockerfile = (project / "Dockerfile.hud").read_text()
    assert f"ARG HUD_SPEC=./{wheel}\n" in dockerfile and "HUD_SPEC=hud==0.6.21" in dockerfile
    assert "FROM python:3.11-slim" in dockerfile and "EXPOSE 8765" in dockerfile
    assert 'CMD ["hud", "serve", "env.py", "--host", "0.0.0.0", "--port", "8765"]' in dockerfile
    assert ".env" in (project / ".dockerignore").read_text().split()


def test_init_wheel_installs_hud_as_openhud(project: Path) -> None:
    """The wheel is distribution "openhud" with import package `hud` and command `hud`."""
    (wheel,) = project.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(f"openhud-{__version__}.dist-info/METADATA").decode()
        entry = zf.read(f"openhud-{__version__}.dist-info/entry_points.txt").decode()
    assert "hud/__init__.py" in names and "hud/cli/main.py" in names
    assert "Name: openhud\n" in meta and "Requires-Dist: python-dotenv" in meta
    assert "hud = hud.cli.main:main" in entry


def test_init_prints_next_steps(tmp_path: Path) -> None:
    proc = run_hud("init", "demo", "--dir", "sub", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "sub" / "demo" / "env.py").is_file()
    out = proc.stdout
    assert "Next steps" in out
    for step in ("cd sub/demo", "hud serve", "hud task list", "hud eval tasks.py oracle --all"):
        assert step in out


def test_init_refuses_non_empty_dir(project: Path, tmp_path: Path) -> None:
    (project / "env.py").write_text("# mine\n")
    proc = run_hud("init", "my-env", cwd=tmp_path)
    assert proc.returncode == 1
    assert "not empty" in proc.stderr and "--force" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (project / "env.py").read_text() == "# mine\n"


def test_init_force_overwrites(project: Path, tmp_path: Path) -> None:
    (project / "env.py").write_text("# mine\n")
    (project / "notes.txt").write_text("keep")
    proc = run_hud("init", "my-env", "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Environment(" in (project / "env.py").read_text()
    assert (project / "notes.txt").read_text() == "keep"


def test_init_without_name_and_tty_fails(tmp_path: Path) -> None:
    proc = run_hud("init", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Nothing to create" in proc.stderr and "Hint:" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_preset_blank_without_name(tmp_path: Path) -> None:
    proc = run_hud("init", "-p", "blank", "-d", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'Environment(name="hud_blank")' in (tmp_path / "hud-blank" / "env.py").read_text()


@pytest.mark.parametrize("preset", ["nope", "coding"])
def test_init_unknown_preset(tmp_path: Path, preset: str) -> None:
    proc = run_hud("init", "x", "--preset", preset, cwd=tmp_path)
    assert proc.returncode == 1
    assert f"preset '{preset}'" in proc.stderr and "available: blank" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_names() -> None:
    assert env_name_for("my-env") == "my_env"
    assert env_name_for("My Env.v2") == "My_Env_v2"
    assert env_name_for("ü-ï") == "___"
    assert project_name_for("My_Env.v2") == "my-env-v2"
    assert project_name_for("--") == "hud-env"


async def test_scaffold_template_rewards(clean_imports: Path) -> None:
    from hud.environment import load_environment

    env = load_environment(clean_imports / "env.py")
    assert env.name == "my_env"
    tmpl = env.tasks["count"]

    async def grade(args: dict[str, str], answer: str) -> float:
        gen = tmpl.open(args)
        prompt = await gen.__anext__()
        reward = await gen.asend(answer)
        await gen.aclose()
        assert prompt == (
            f"How many times does '{args['letter']}' appear in: '{args['sentence']}'?"
        )
        return reward

    strawberry = {"sentence": "Strawberry world", "letter": "r"}
    assert await grade(strawberry, "4") == 1.0
    assert await grade(strawberry, " 4\n") == 1.0
    assert await grade(strawberry, "3") == 0.0
    assert await grade(strawberry, "There are 4") == 0.0
    assert await grade({"sentence": "banana", "letter": "A"}, "3") == 1.0


def test_scaffold_task_slugs(clean_imports: Path) -> None:
    from hud.environment.loader import import_file

    module = import_file(clean_imports / "tasks.py")
    assert [t.slug for t in module.tasks] == ["count-4376680e", "count-e8d5ddbb"]
    assert {t.env for t in module.tasks} == {"my_env"}
