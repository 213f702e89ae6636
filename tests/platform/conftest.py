"""Session-scoped platforms (one on SQLite, one on PostgreSQL) shared by the platform tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.helpers import HAVE_EXTRA, Platform, Postgres

KINDS = ["sqlite", "postgresql"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``cases(rule)`` keeps only the parametrized cases where
    ``rule(**params)`` holds (``platform`` given as its database kind): the cases one database
    or one CLI already covers are not generated, rather than collected and skipped."""
    kept = []
    for item in items:
        mark = item.get_closest_marker("cases")
        spec = getattr(item, "callspec", None)
        if mark is None or spec is None or mark.args[0](**spec.params):
            kept.append(item)
    items[:] = kept


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    cluster = Postgres()
    yield cluster
    cluster.stop()


def new_platform(request: pytest.FixtureRequest, kind: str) -> Platform:
    if not HAVE_EXTRA:
        pytest.skip("the platform extra is not installed (pip install -e '.[platform]')")
    base = Path(tempfile.mkdtemp(prefix=f"hud-platform-{kind}-"))
    db = request.getfixturevalue("postgres").create_database() if kind == "postgresql" else None
    platform = Platform(kind, base / "data", db)
    request.addfinalizer(lambda: (platform.stop(), shutil.rmtree(base, ignore_errors=True)))
    return platform.start()


@pytest.fixture(scope="session", params=KINDS)
def platform(request: pytest.FixtureRequest) -> Platform:
    """A running platform shared by the session (tests create their own keys/teams)."""
    return new_platform(request, request.param)


@pytest.fixture(params=KINDS)
def fresh_platform(request: pytest.FixtureRequest) -> Platform:
    """A platform of its own (for tests that kill or restart it)."""
    return new_platform(request, request.param)


@pytest.fixture(scope="module")
def images(platform: Platform) -> Iterator[str]:
    """The offline base image; the platform's images are removed after the module."""
    from tests.platform.deploy_helpers import python_base, remove_platform_images

    base = python_base()
    yield base
    remove_platform_images(platform)


@pytest.fixture
def work(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A scratch directory of the test's own, removed after it."""
    root = Path(tempfile.mkdtemp(prefix=f"hud-{request.module.__name__.rsplit('.', 1)[-1]}-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)
