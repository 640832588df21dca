"""Waiting in tests: for a condition with a deadline, never a fixed sleep.

Shared by tests/unit and tests/integration (tests/ is on sys.path through
its conftest.py); harness.py re-exports both for the integration tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises AssertionError naming ``message`` when ``timeout`` passes.
    Exceptions raised by the predicate propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def holds_for(
    predicate: Callable[[], object],
    seconds: float,
    interval: float = 0.1,
    message: str = "condition",
) -> None:
    """Check that ``predicate`` stays truthy for ``seconds`` (a bounded window).

    For "nothing happens" checks (no retry while a mirror is stopped): the
    window is the assertion, not a wait for something to finish, so it is
    a fixed length; raises AssertionError naming ``message`` at the first
    false value.
    """
    deadline = time.monotonic() + seconds
    while True:
        if not predicate():
            raise AssertionError(f"{message} stopped holding")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
