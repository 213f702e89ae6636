"""Fixtures for interop tests (helpers live in `helpers.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import ServerProcess, cleanup_temp_dirs


@pytest.fixture(scope="session")
def server_pool() -> Iterator[dict[tuple[str, str], ServerProcess]]:
    """Servers shared across modules that only read state (``tasks.list``, start/grade pairs
    on one connection); see `helpers.shared_server`."""
    pool: dict[tuple[str, str], ServerProcess] = {}
    yield pool
    for server in pool.values():
        server.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(name): the peer-script scenario a test checks")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cleanup_temp_dirs()
