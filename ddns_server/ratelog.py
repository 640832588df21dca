"""A rate-limited logger for per-packet problems.

Anything a client sends can be repeated thousands of times a second, so a
log line per packet lets anyone flood the logs (issue 14, item 5). Lines go
out at most `per_second` times a second; the rest are counted and reported
in one summary line ("N similar messages suppressed") when the next line is
allowed. Never a traceback: the exception's type and text are enough to find
the packet's problem, and the traceback is what floods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# A few lines per second at most (BIND's rate-limited categories log a few too).
LINES_PER_SECOND = 5


class RateLimitedLog:
    """Logs through `logger`, at most `per_second` lines in any one second."""

    def __init__(
        self,
        logger: logging.Logger,
        per_second: int = LINES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.per_second = per_second
        self.clock = clock
        self._window = -1
        self._sent = 0
        self.suppressed = 0

    def log(self, level: int, msg: str, *args: object) -> None:
        """Log one line (no traceback), or count it as suppressed."""
        window = int(self.clock())
        if window != self._window:
            self._window = window
            self._sent = 0
            if self.suppressed:
                self.logger.log(level, "%d similar messages suppressed", self.suppressed)
                self.suppressed = 0
                self._sent = 1
        if self._sent >= self.per_second:
            self.suppressed += 1
            return
        self._sent += 1
        self.logger.log(level, msg, *args)

    def error(self, msg: str, *args: object) -> None:
        self.log(logging.ERROR, msg, *args)


def describe(error: BaseException) -> str:
    """`Type: text` of an exception, on one line."""
    text = str(error).replace("\n", " ")[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


__all__ = ["RateLimitedLog", "describe", "LINES_PER_SECOND"]
