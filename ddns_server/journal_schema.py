"""The journal's SQLite tables, and how its rows go in.

The schema (created or upgraded in place), a new journal's first write, the
multi-row INSERTs a large append uses, and the transaction every write takes.
journal.py holds what the tables mean (versions, the records snapshot);
this module is how they are laid out and written.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ddns_server.errors import UserError
from ddns_server.zonedata import Record

SCHEMA_VERSION = 2  # 2: mirror_cursors, mirror_owned (upstream mirrors)

# `changes` rows per INSERT statement in a large append: one statement per
# row costs more than SQLite's insert itself (a 100,000-record seed: a third
# less time); 6 parameters each stay under SQLite's oldest limit of 999.
ROWS_PER_INSERT = 160
_INSERT_CHANGES = "INSERT INTO changes (version_id, op, owner, rdtype, ttl, rdata) VALUES "
_ONE_CHANGE = "(?, ?, ?, ?, ?, ?)"
_MANY_CHANGES = _INSERT_CHANGES + ", ".join([_ONE_CHANGE] * ROWS_PER_INSERT)
_FEW_CHANGES = [_INSERT_CHANGES + ", ".join([_ONE_CHANGE] * n) for n in range(1, 9)]
# A long run of one version's added (or removed) records, a seed above all:
# its version id and op bound once per statement (?1, ?2) and the records
# bound as they are, with no 6-tuple made per row: a 100,000-record seed's
# inserts take a fifth less time. 2 + 4 * 240 parameters stay under 999.
RUN_ROWS_PER_INSERT = 240
_MANY_RUN = _INSERT_CHANGES + ", ".join(
    f"(?1, ?2, ?{3 + 4 * i}, ?{4 + 4 * i}, ?{5 + 4 * i}, ?{6 + 4 * i})"
    for i in range(RUN_ROWS_PER_INSERT)
)

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)""",
    """CREATE TABLE IF NOT EXISTS zones (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)""",
    # One B-tree keyed by the record itself: a checkpoint deletes by key.
    """CREATE TABLE IF NOT EXISTS records (
        zone_id INTEGER NOT NULL, owner BLOB NOT NULL, rdtype INTEGER NOT NULL,
        rdata BLOB NOT NULL, ttl INTEGER NOT NULL,
        PRIMARY KEY (zone_id, owner, rdtype, rdata)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS versions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, zone_id INTEGER NOT NULL,
        serial INTEGER NOT NULL, time REAL NOT NULL, who TEXT NOT NULL,
        source TEXT NOT NULL, channel TEXT NOT NULL,
        removed INTEGER NOT NULL, added INTEGER NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS versions_by_zone ON versions (zone_id, id)""",
    """CREATE TABLE IF NOT EXISTS changes (
        version_id INTEGER NOT NULL, op INTEGER NOT NULL, owner BLOB NOT NULL,
        rdtype INTEGER NOT NULL, ttl INTEGER NOT NULL, rdata BLOB NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS changes_by_version ON changes (version_id)""",
    # Upstream mirrors (mirrors/state.py): each one's durable cursor and status ...
    """CREATE TABLE IF NOT EXISTS mirror_cursors (
        name TEXT PRIMARY KEY, zone TEXT NOT NULL, version_id INTEGER NOT NULL DEFAULT 0,
        serial INTEGER, last_success REAL, last_resync REAL, error_time REAL,
        error_class TEXT, error_message TEXT, next_retry REAL,
        attempts INTEGER NOT NULL DEFAULT 0, stopped INTEGER NOT NULL DEFAULT 0,
        conflicts TEXT NOT NULL DEFAULT '[]')""",
    # ... and the RRsets it wrote at the provider (ownership: adopt/conflict).
    """CREATE TABLE IF NOT EXISTS mirror_owned (
        mirror TEXT NOT NULL, name TEXT NOT NULL, rdtype TEXT NOT NULL,
        ttl INTEGER NOT NULL, rdata TEXT NOT NULL,
        PRIMARY KEY (mirror, name, rdtype)) WITHOUT ROWID""",
]


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables that are missing; record or check the schema version."""
    with Transaction(conn):
        for statement in _SCHEMA:
            conn.execute(statement)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise UserError(f"{path}: journal schema {row[0]} is newer than this ddns-server")
        elif int(row[0]) < SCHEMA_VERSION:  # the new tables were created above
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'",
                (str(SCHEMA_VERSION),),
            )


def insert_changes(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """Insert `changes` rows in order (rowids follow the list)."""
    full = len(rows) - len(rows) % ROWS_PER_INSERT
    chain = itertools.chain.from_iterable
    for start in range(0, full, ROWS_PER_INSERT):
        conn.execute(_MANY_CHANGES, list(chain(rows[start : start + ROWS_PER_INSERT])))
    rest = len(rows) - full
    if 0 < rest <= len(_FEW_CHANGES):
        # A typical UPDATE's 4 rows: one statement (cached) beats executemany.
        conn.execute(_FEW_CHANGES[rest - 1], list(chain(rows[full:])))
    elif rest:
        conn.executemany(_INSERT_CHANGES + _ONE_CHANGE, rows[full:])


def insert_run(
    conn: sqlite3.Connection, version_id: int, op: int, records: Sequence[Record]
) -> None:
    """Insert one version's `op` rows in order, RUN_ROWS_PER_INSERT at a time."""
    full = len(records) - len(records) % RUN_ROWS_PER_INSERT
    chain = itertools.chain.from_iterable
    for start in range(0, full, RUN_ROWS_PER_INSERT):
        conn.execute(
            _MANY_RUN, [version_id, op, *chain(records[start : start + RUN_ROWS_PER_INSERT])]
        )
    if full < len(records):
        insert_changes(conn, [(version_id, op, *r) for r in records[full:]])


def initialise(path: Path) -> None:
    """A new journal's schema, in WAL mode, written to a file not yet in place
    (journal_file.open_file links it); closed, so it is all in the one file."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = wal")
        migrate(conn, path)
    finally:
        conn.close()


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception.

    Inside a transaction already open on the connection (begin_locked: a
    group commit) it does nothing: the outer one commits or rolls back.
    """

    def __init__(self, conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> None:
        self.conn = conn
        self.begin = begin
        self.outer = False

    def __enter__(self) -> None:
        self.outer = not self.conn.in_transaction
        if self.outer:
            self.conn.execute(self.begin)

    def __exit__(self, exc_type: object, _exc: object, _tb: object) -> None:
        if not self.outer:
            return
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:  # never leave it open: the next BEGIN would fail
                    self.conn.execute("ROLLBACK")
                raise
        elif self.conn.in_transaction:
            # SQLite has already rolled back after some errors (SQLITE_FULL):
            # a second ROLLBACK would raise and hide the real error.
            self.conn.execute("ROLLBACK")
