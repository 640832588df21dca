"""A mirror's durable state in the journal database (tables in journal.py's schema).

`mirror_cursors`: the last version of the zone the provider confirmed (the
cursor), the last success, the last error (time, class, message), the next
retry, whether the mirror is stopped by a permanent error, and its conflicts.
`mirror_owned`: the RRsets the mirror wrote at the provider, so it knows which
managed RRsets are its own (ownership, like external-dns's registry).

The server's worker threads and the CLI (`mirror status|resync`) share them;
each uses its own SQLite connection.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from ddns_server.mirrors.base import RRset


@dataclass
class MirrorState:
    name: str
    zone: str
    version_id: int = 0  # the cursor: the last journal version the provider confirmed
    serial: int | None = None
    last_success: float | None = None
    last_resync: float | None = None
    error_time: float | None = None
    error_class: str | None = None  # transient | permanent | threshold
    error_message: str | None = None
    next_retry: float | None = None
    attempts: int = 0
    stopped: bool = False
    conflicts: list[str] = field(default_factory=list)  # "name TYPE"


_COLUMNS = (
    "name, zone, version_id, serial, last_success, last_resync, error_time,"
    " error_class, error_message, next_retry, attempts, stopped, conflicts"
)


def load(conn: sqlite3.Connection, name: str, zone: str) -> MirrorState:
    """The mirror's state; a fresh one (cursor 0) when new or when its zone changed."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM mirror_cursors WHERE name = ?", (name,)).fetchone()
    if row is None or row[1] != zone:
        return MirrorState(name, zone)
    return _from_row(row)


def load_all(conn: sqlite3.Connection) -> dict[str, MirrorState]:
    return {
        row[0]: _from_row(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM mirror_cursors")
    }


def _from_row(row: tuple[object, ...]) -> MirrorState:
    values = list(row)
    values[11] = bool(values[11])
    values[12] = json.loads(str(values[12] or "[]"))
    return MirrorState(*values)  # type: ignore[arg-type]


def save(conn: sqlite3.Connection, st: MirrorState, forward_only: bool = True) -> None:
    """Write the state. With `forward_only`, a cursor never moves back (another
    process, e.g. `mirror resync`, may have delivered further meanwhile)."""
    row = (
        st.name,
        st.zone,
        st.version_id,
        st.serial,
        st.last_success,
        st.last_resync,
        st.error_time,
        st.error_class,
        st.error_message,
        st.next_retry,
        st.attempts,
        int(st.stopped),
        json.dumps(st.conflicts),
    )
    if forward_only:
        existing = conn.execute(
            "SELECT zone, version_id, serial FROM mirror_cursors WHERE name = ?", (st.name,)
        ).fetchone()
        if existing is not None and existing[0] == st.zone and existing[1] > st.version_id:
            st.version_id, st.serial = int(existing[1]), existing[2]
            row = (row[0], row[1], st.version_id, st.serial, *row[4:])
    conn.execute(
        f"INSERT OR REPLACE INTO mirror_cursors ({_COLUMNS}) VALUES"
        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row,
    )


def reset_stopped(conn: sqlite3.Connection, names: Iterable[str] | None = None) -> None:
    """Let stopped mirrors try again (SIGHUP, `mirror resync`)."""
    if names is None:
        conn.execute(
            "UPDATE mirror_cursors SET stopped = 0, next_retry = NULL, attempts = 0"
            " WHERE stopped = 1 OR next_retry IS NOT NULL"
        )
        return
    for name in names:
        conn.execute(
            "UPDATE mirror_cursors SET stopped = 0, next_retry = NULL, attempts = 0 WHERE name = ?",
            (name,),
        )


def owned(conn: sqlite3.Connection, mirror: str) -> dict[tuple[str, str], RRset]:
    """The RRsets this mirror last wrote, by (name, type)."""
    out = {}
    for name, rdtype, ttl, rdata in conn.execute(
        "SELECT name, rdtype, ttl, rdata FROM mirror_owned WHERE mirror = ?", (mirror,)
    ):
        out[(name, rdtype)] = RRset(name, rdtype, int(ttl), tuple(json.loads(rdata)))
    return out


def set_owned(
    conn: sqlite3.Connection,
    mirror: str,
    written: Iterable[RRset],
    deleted: Iterable[tuple[str, str]],
) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO mirror_owned (mirror, name, rdtype, ttl, rdata)"
        " VALUES (?, ?, ?, ?, ?)",
        [(mirror, r.name, r.rdtype, r.ttl, json.dumps(list(r.values))) for r in written],
    )
    conn.executemany(
        "DELETE FROM mirror_owned WHERE mirror = ? AND name = ? AND rdtype = ?",
        [(mirror, name, rdtype) for name, rdtype in deleted],
    )
