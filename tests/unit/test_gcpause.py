"""GcPaused: the collector off while a request runs, back as it was after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ddns_server.gcpause import GcPaused


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_off_inside_and_on_again_after() -> None:
    gc.enable()
    with GcPaused():
        assert not gc.isenabled()
        with GcPaused():  # nested: the inner one leaves it to the outer
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_on_again_after_an_exception() -> None:
    gc.enable()
    with pytest.raises(ValueError), GcPaused():
        raise ValueError("a refused update")
    assert gc.isenabled()


def test_never_turns_on_a_collector_someone_else_turned_off() -> None:
    gc.disable()  # as `serve` does while it loads the zones
    with GcPaused():
        assert not gc.isenabled()
    assert not gc.isenabled()
