"""SQLite WAL checkpoints in a thread of their own (the server's journal).

By default SQLite copies committed pages from the WAL into the database file
(with two fsyncs) inside the COMMIT of whichever transaction takes the WAL
past 1000 pages: that update's client, and every query behind it, waited for
the disk. `Journal.checkpoint_in_background` starts a Checkpointer instead;
the writer keeps its own checkpoint at WAL_BACKSTOP_PAGES as a backstop.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("ddns_server.journal")

# Background WAL checkpoints: at most one per CHECKPOINT_INTERVAL seconds
# while commits come in. Under a steady stream of commits a checkpoint
# rarely catches the WAL with no commit after it, which SQLite needs to
# start the WAL file over; the writer's own checkpoint at WAL_BACKSTOP_PAGES
# (SQLite's default is 1000) does that, with little left to copy by then.
CHECKPOINT_INTERVAL = 0.2
WAL_BACKSTOP_PAGES = 10000


class Checkpointer(threading.Thread):
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection when woken
    (after commits), at most once per CHECKPOINT_INTERVAL. A passive
    checkpoint never blocks the writer (SQLite releases the GIL meanwhile), and
    a failed one only leaves the pages in the WAL for the next one."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        super().__init__(name="journal-checkpoint", daemon=True)
        self.path = path
        self.synchronous = synchronous
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.runs = 0
        # (busy, pages in the WAL, pages copied) of the last checkpoint
        self.last: tuple[int, int, int] | None = None
        self._failures = 0

    def run(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None)
            # The same syncs as the writer's own checkpoints would do.
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as e:
            log.error("journal checkpoints: cannot open %s: %s", self.path, e)
            return
        try:
            while True:
                self.wake.wait()
                if self.stopping.is_set():
                    return
                self.wake.clear()
                self.checkpoint(conn)
                if self.stopping.wait(CHECKPOINT_INTERVAL):
                    return
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as e:
            # Nothing is lost: the pages stay in the WAL, and the writer's own
            # checkpoint (WAL_BACKSTOP_PAGES) still runs. Logged once in 100.
            if self._failures % 100 == 0:
                log.warning("journal checkpoint failed (the WAL keeps the pages): %s", e)
            self._failures += 1
            return
        self.last = (int(row[0]), int(row[1]), int(row[2]))
        self.runs += 1

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.join(timeout=30)
