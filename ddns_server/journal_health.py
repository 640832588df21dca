"""Whether the journal takes writes: what /healthz and a gauge report.

The state follows what the journal actually did, never a guess from file
permissions: a failed commit makes it unhealthy (with the reason), and the
next commit or write probe that succeeds makes it healthy again. The store's
writer calls `record_failure`/`record_success`; the edge runs the probe
while unhealthy. Pure: no Twisted, no SQLite.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("ddns_server.journal")


class JournalHealth:
    """The last write outcome of the journal: healthy, or the reason it is not."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.reason: str | None = None
        self.since: float | None = None  # when it became unhealthy
        self.failures = 0  # failed writes since then

    @property
    def healthy(self) -> bool:
        return self.reason is None

    def record_failure(self, reason: str) -> None:
        """A commit (or probe) failed: unhealthy until a write succeeds.

        Logged when the state changes or the reason does, not once per
        failed update (a full disk under load would flood the log).
        """
        reason = " ".join(reason.split())[:200] or "unknown error"
        self.failures += 1
        if self.reason != reason:
            log.error(
                "journal write failed: %s (/healthz answers 503 until a write succeeds)", reason
            )
        if self.reason is None:
            self.since = self.clock()
        self.reason = reason

    def record_success(self) -> None:
        """A commit or probe succeeded: healthy again."""
        if self.reason is None:
            return
        log.warning(
            "journal writes succeed again after %d failure(s) in %.0f s",
            self.failures,
            self.clock() - (self.since or self.clock()),
        )
        self.reason = None
        self.since = None
        self.failures = 0
