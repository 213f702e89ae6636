"""Session-scoped platforms (one on SQLite, one on PostgreSQL) shared by the platform tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.helpers import HAVE_EXTRA, Platform, Postgres

KINDS = ["sqlite", "postgresql"]


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
