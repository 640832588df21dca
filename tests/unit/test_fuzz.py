"""Issue 14 "Proof": a seeded mutation fuzz run through the real handler.

A few thousand cases so it stays fast (the rules are in fuzzdns.py); a
longer run is `make fuzz` (scripts/fuzz.py). A failure prints the seed, the
case and the message in hex, to reproduce it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from fuzzdns import run

CASES = int(os.environ.get("FUZZ_CASES", "3000"))
SEED = int(os.environ.get("FUZZ_SEED", "14"))


def test_mutated_messages_never_break_a_rule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stats = run(CASES, SEED, folder=tmp_path)
    # (run() checks after every case too, and stops at the first one)
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]
    assert stats.cases == CASES
    # The corpus reaches the deep paths: answers, errors and applied updates.
    assert stats.rcodes.get("NOERROR", 0) > 0 and stats.rcodes.get("FORMERR", 0) > 0
    assert stats.changes > 0
