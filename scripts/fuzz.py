#!/usr/bin/env python3
"""`make fuzz`: a long seeded mutation fuzz run of the DNS message path.

    .venv/bin/python scripts/fuzz.py [--cases 200000] [--seed N]

The same rules as the fuzz test in the suite (tests/unit/fuzzdns.py): every
reply parses, no traceback is logged, no internal error is counted, and the
zone changes only by a properly signed UPDATE. Stops at the first failure
with the seed, the case number and the message in hex (exit 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

from fuzzdns import Failure, Stats, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description="fuzz the DNS message path")
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    start = time.monotonic()

    def progress(stats: Stats) -> None:
        rate = stats.cases / max(time.monotonic() - start, 1e-9)
        print(f"{stats.cases} cases ({rate:.0f}/s), {stats.changes} zone changes", flush=True)

    print(f"seed {args.seed}, {args.cases} cases", flush=True)
    try:
        stats = run(args.cases, args.seed, progress)
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    rcodes = ", ".join(f"{k} {v}" for k, v in sorted(stats.rcodes.items()))
    print(f"ok: {stats.cases} cases, {stats.replies} replies ({rcodes}), {stats.changes} changes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
