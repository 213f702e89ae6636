"""Packaging: the distribution's name and dependencies, and the newcomer's `make test`."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


#: Code that may use the `platform` extra: the server package and the command that checks for it.
PLATFORM_SIDE = ("hud/platform", "hud/cli/platform_cmd.py")


def _imported_top_levels(platform_side: bool) -> set[str]:
    """Top-level modules imported under hud/ (the platform side, or everything else), at module
    level or inside functions."""
    names: set[str] = set()
    for path in (REPO / "hud").rglob("*.py"):
        if path.relative_to(REPO).as_posix().startswith(PLATFORM_SIDE) != platform_side:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_distribution_name_is_not_the_official_one() -> None:
    from hud.version import DIST_NAME

    assert PROJECT["name"] == DIST_NAME == "openhud"
    assert PROJECT["scripts"] == {"hud": "hud.cli.main:main"}


@pytest.mark.parametrize("platform_side", [False, True], ids=["library", "platform"])
def test_every_imported_package_is_declared(platform_side: bool) -> None:
    """A third-party import must come from a declared dependency, not another's transitive one
    (``cryptography`` arrived only through asyncssh); the platform server may also use its extra."""
    extras = PROJECT["optional-dependencies"]
    extra = extras["platform"] + extras["ray"] if platform_side else []
    requirements = PROJECT["dependencies"] + extra
    declared = {_name(r) for r in requirements}
    owners = metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names) | {"__future__", "hud"}
    missing = {}
    for module in sorted(_imported_top_levels(platform_side) - stdlib):
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        if not dists & declared and module.replace("_", "-") not in declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_runtime_dependencies_are_bounded_and_test_only_ones_are_extras() -> None:
    unbounded = [r for r in PROJECT["dependencies"] if "<" not in r]
    assert not unbounded, f"no upper bound on the tested major: {unbounded}"
    runtime = {_name(r) for r in PROJECT["dependencies"]}
    assert "uvicorn" not in runtime and "pytest" not in runtime
    extras = PROJECT["optional-dependencies"]
    assert "uvicorn" in {_name(r) for r in extras["dev"]}
    platform = {_name(r) for r in extras["platform"]}
    assert {"fastapi", "sqlalchemy", "alembic", "uvicorn"} <= platform
    assert platform & {"psycopg", "asyncpg"}, "the platform extra needs a PostgreSQL driver"


def test_make_test_installs_what_ci_installs() -> None:
    """`make test` runs the shared setup script first (peers; as root, apt packages and Docker),
    and CI's entry point runs `make test` rather than its own copy of those steps."""
    dry = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", "test"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if dry.returncode != 0:
        pytest.skip(f"make -n failed: {dry.stderr.strip()[:200]}")
    lines = dry.stdout.splitlines()
    setup = next(i for i, line in enumerate(lines) if ".ci/test-deps.sh" in line)
    pytest_run = next(i for i, line in enumerate(lines) if "pytest" in line)
    assert setup < pytest_run
    assert any("'.[dev,platform]'" in line for line in lines)
    script = (REPO / ".ci" / "test-deps.sh").read_text(encoding="utf-8")
    for step in (".ci/apt-packages", ".ci/docker-setup.sh", "peer peer-harbor"):
        assert step in script
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci and "apt-get" not in ci and "make peer" not in ci


def test_types_are_checked_in_lint_and_shipped() -> None:
    """`make lint` (CI's first step) runs the type checker the dev extra installs, and the
    package carries its PEP 561 marker: in the tree (the wheel packs all of `hud/`) and in the
    wheel `--runtime docker` builds of the running package."""
    import io
    import zipfile

    from hud.eval.runtimes.wheel import wheel_bytes

    dry = subprocess.run(
        ["make", "-n", "lint"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    if dry.returncode != 0:
        pytest.skip(f"make -n failed: {dry.stderr.strip()[:200]}")
    assert any(line.split()[:1] == [".venv/bin/mypy"] for line in dry.stdout.splitlines())
    assert "mypy" in {_name(r) for r in PROJECT["optional-dependencies"]["dev"]}
    assert (REPO / "hud" / "py.typed").is_file()
    _, data = wheel_bytes()
    assert "hud/py.typed" in zipfile.ZipFile(io.BytesIO(data)).namelist()
