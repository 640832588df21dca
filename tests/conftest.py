"""Shared by every test folder: paths and the `integration` marker.

Tests under tests/integration/ are marked `integration` automatically, so
`pytest -m "not integration"` runs only the fast, socket-free tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
TEST_DATA = TESTS_DIR / "data"
INTEGRATION_DIR = TESTS_DIR / "integration"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: runs the real server and external tools on loopback"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def test_data() -> Path:
    """tests/data: sample zones, keys and configs (read-only: copy before editing)."""
    return TEST_DATA
