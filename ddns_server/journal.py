"""The SQLite journal: every version of every zone, and the current content.

SQLite (WAL mode) is the one source of truth. For each zone it holds:

* `versions`: one row per version (serial, time, who, source, channel);
* `changes`: the records each version removed (op 0) and added (op 1);
* `records`: a snapshot of the content as of one version (`meta` key
  `snapshot:<zone id>`), so a restart loads it in one scan and replays only
  the versions after it.

A commit only appends (`versions`, `changes`): rewriting rows of a
100,000-record table at random places on every update would cost more than
the update. Every CHECKPOINT_VERSIONS versions (or CHECKPOINT_ROWS changed
records) the snapshot is brought forward by their net effect, inside the same
transaction; BIND and Knot likewise keep a journal and dump the zone now and
then. Earlier content is rebuilt by walking the changes backwards from the
current content; IXFR, `journal diff` and `journal rollback` read `changes`.

Commits use `synchronous=NORMAL` in WAL mode: a committed version is in the
operating system's hands before the client gets its answer, so it survives the
server being killed (SIGKILL); like BIND's journal, it does not wait for the
disk to flush on every update (`Journal(sync_full=True)` would).

The server moves SQLite's WAL checkpoints (committed pages copied into the
database file, with two fsyncs) to a thread of their own
(`checkpoint_in_background`): by default SQLite runs one inside the COMMIT
of whichever transaction takes the WAL past 1000 pages, and that update's
client, and every query behind it, waited for the disk.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ddns_server.journal_file import HOW, JournalUnusable, open_file
from ddns_server.journal_schema import (
    RUN_ROWS_PER_INSERT,
    Transaction,
    initialise,
    insert_changes,
    insert_run,
    migrate,
)
from ddns_server.wal_checkpoints import WAL_BACKSTOP_PAGES, Checkpointer
from ddns_server.zonedata import Changeset, Record

log = logging.getLogger("ddns_server.journal")

# Bring the records snapshot forward after this many versions, or this many
# changed records, whichever comes first (a start-up replays at most that).
CHECKPOINT_VERSIONS = 500
CHECKPOINT_ROWS = 5000
# A checkpoint over at most this many versions replays them inside SQLite,
# one after the other (two statements each), instead of reading their rows
# into Python and writing the net change back: what a few large UPDATEs
# trigger (CHECKPOINT_ROWS), where the round trip cost 25 ms of a 64 KB
# UPDATE's 80 (issue 14, item 9). Many small versions (CHECKPOINT_VERSIONS)
# condense better in Python: fewer statements.
REPLAY_IN_SQL_VERSIONS = 16

# The write probe's size: about what a typical update's commit writes.
PROBE_BYTES = 16384


def _record_key(record: Record) -> tuple[bytes, int, bytes]:
    """A record's key in the `records` table: owner, type, rdata (not the TTL)."""
    return record[0], record[1], record[3]


class StaleJournal(Exception):
    """Another process journaled a version of this zone in the meantime."""


@dataclass(frozen=True)
class Version:
    """One journaled version of a zone."""

    id: int
    serial: int
    time: float
    who: str
    source: str
    channel: str
    removed: int
    added: int

    def as_dict(self) -> dict[str, object]:
        """The version as `journal log --json` and the API's versions show it."""
        when = datetime.datetime.fromtimestamp(self.time, datetime.UTC)
        return {
            "serial": self.serial,
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "who": self.who,
            "source": self.source,
            "channel": self.channel,
            "removed": self.removed,
            "added": self.added,
        }


@dataclass(frozen=True)
class NewVersion:
    """A version to append: what changed, and who changed it, from where."""

    zone: str  # lower-case text name of the zone, absolute ("dyn.example.test.")
    serial: int
    changeset: Changeset
    who: str
    source: str
    channel: str
    time: float = 0.0


class Journal:
    """Zone versions in one SQLite file."""

    def __init__(self, path: Path, sync_full: bool = False) -> None:
        self.path = path
        # True when this process made the file: only then may zones be seeded.
        self.created = open_file(path, initialise)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn = conn
        try:
            # WAL as sqlite-utils' enable_wal() sets it, without importing
            # sqlite-utils (and click, pluggy, dateutil): 4 MiB of the server's RSS.
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = wal")
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute(f"PRAGMA synchronous = {'FULL' if sync_full else 'NORMAL'}")
            if not self.created and not self._is_ours():
                raise JournalUnusable(f"journal {path} holds no ddns-server journal; {HOW}")
            self._migrate()
        except sqlite3.DatabaseError as e:
            conn.close()
            if "not a database" in str(e):
                raise JournalUnusable(
                    f"journal {path} is not an SQLite database, or it is unreadable or "
                    f"corrupt ({e}); {HOW}"
                ) from None
            raise JournalUnusable(f"journal {path} is unreadable or corrupt ({e}); {HOW}") from None
        except JournalUnusable:
            conn.close()
            raise
        self._zone_ids: dict[str, int] = {}
        # zone id -> (versions, changed records) not yet in the snapshot
        self._pending: dict[int, tuple[int, int]] = {}
        self._sync = "FULL" if sync_full else "NORMAL"
        self.checkpointer: Checkpointer | None = None

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        self.conn.close()

    def checkpoint_in_background(self) -> Checkpointer:
        """WAL checkpoints in a thread with its own connection (the server's
        journal): not inside the COMMIT of an update its client waits for.
        The durability of a commit does not change: it is in the WAL (the
        operating system's hands) before the reply, as before."""
        if self.checkpointer is None:
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}")
            self.checkpointer = Checkpointer(self.path, self._sync)
            self.checkpointer.start()
        return self.checkpointer

    def _committed(self) -> None:
        """After a commit of this connection: wake the checkpointer, if any."""
        checkpointer = self.checkpointer
        if checkpointer is not None and not checkpointer.wake.is_set():
            checkpointer.wake.set()

    def _is_ours(self) -> bool:
        """An existing file holds our schema (a `meta` table with a schema version)."""
        found = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if found is None:
            return False
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return row is not None

    def write_probe(self, size: int = PROBE_BYTES) -> bool:
        """Write and delete `size` bytes in one transaction, as a commit would.

        True when it committed, False when another process holds the write
        lock (inconclusive; never waits for it, so the reactor never stalls).
        Any other failure (a full disk, a read-only file) raises. The blob
        needs new pages, so a journal that cannot grow fails it, as it fails
        commits.
        """
        conn = self.conn
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    return False
                raise
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS write_probe (data BLOB)")
                conn.execute("INSERT INTO write_probe (data) VALUES (zeroblob(?))", (size,))
                conn.execute("DELETE FROM write_probe")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return True
        finally:
            conn.execute("PRAGMA busy_timeout = 5000")

    def zones_with_history(self) -> list[str]:
        """Every zone that has at least one journaled version."""
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT name FROM zones WHERE EXISTS "
                "(SELECT 1 FROM versions WHERE versions.zone_id = zones.id) ORDER BY name"
            )
        ]

    def _migrate(self) -> None:
        migrate(self.conn, self.path)

    # -- zones ----------------------------------------------------------------

    def zone_id(self, zone: str, create: bool = False) -> int | None:
        zone_id = self._zone_ids.get(zone)
        if zone_id is not None:
            return zone_id
        row = self.conn.execute("SELECT id FROM zones WHERE name = ?", (zone,)).fetchone()
        if row is None:
            if not create:
                return None
            cursor = self.conn.execute("INSERT INTO zones (name) VALUES (?)", (zone,))
            zone_id = int(cursor.lastrowid or 0)
        else:
            zone_id = int(row[0])
        self._zone_ids[zone] = zone_id
        return zone_id

    def has_zone(self, zone: str) -> bool:
        zone_id = self.zone_id(zone)
        if zone_id is None:
            return False
        return (
            self.conn.execute(
                "SELECT 1 FROM versions WHERE zone_id = ? LIMIT 1", (zone_id,)
            ).fetchone()
            is not None
        )

    def zone_names(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT name FROM zones ORDER BY name")]

    def load(self, zone: str) -> Iterator[Record]:
        """The zone's current records: the snapshot, streamed, with the net
        effect of the versions after it (never the whole zone in a list)."""
        zone_id = self.zone_id(zone)
        if zone_id is None:
            return iter(())
        snapshot = self.conn.execute(
            "SELECT owner, rdtype, ttl, rdata FROM records WHERE zone_id = ?", (zone_id,)
        )
        pending = self._changesets_since_snapshot(zone_id)
        if not pending:
            return iter(snapshot)
        net = net_changes(pending)
        removed = set(net.removed)
        return itertools.chain((r for r in snapshot if r not in removed), net.added)

    def load_keys(self, zone: str, keys: Iterable[tuple[bytes, int]]) -> list[Record]:
        """The current records of some (owner, type) pairs only (mirrors push a few
        RRsets of what may be a big zone). Owners as the changes spell them;
        compared case-insensitively."""
        zone_id = self.zone_id(zone)
        if zone_id is None:
            return []
        wanted = {(owner.lower(), rdtype) for owner, rdtype in keys}
        found: set[Record] = set()
        for owner, rdtype in set(keys):
            found.update(
                self.conn.execute(
                    "SELECT owner, rdtype, ttl, rdata FROM records"
                    " WHERE zone_id = ? AND owner = ? AND rdtype = ?",
                    (zone_id, owner, rdtype),
                )
            )
        for cs in self._changesets_since_snapshot(zone_id):
            found.difference_update(cs.removed)
            found.update(r for r in cs.added if (r[0].lower(), r[1]) in wanted)
        return [r for r in found if (r[0].lower(), r[1]) in wanted]

    def _snapshot_id(self, zone_id: int) -> int:
        """The version the records snapshot reflects (journals of before the
        snapshot key kept `records` current: there, the latest version)."""
        row = self.conn.execute(
            "SELECT value FROM meta WHERE key = ?", (f"snapshot:{zone_id}",)
        ).fetchone()
        if row is not None:
            return int(row[0])
        latest = self.conn.execute(
            "SELECT max(id) FROM versions WHERE zone_id = ?", (zone_id,)
        ).fetchone()
        return int(latest[0] or 0)

    def _set_snapshot_id(self, zone_id: int, version_id: int) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (f"snapshot:{zone_id}", str(version_id)),
        )

    def _changesets_since_snapshot(self, zone_id: int, upto: int | None = None) -> list[Changeset]:
        """The changes of the versions after the snapshot (up to `upto`), in order."""
        snapshot = self._snapshot_id(zone_id)
        rows = self.conn.execute(
            "SELECT c.version_id, c.op, c.owner, c.rdtype, c.ttl, c.rdata FROM changes c"
            " JOIN versions v ON v.id = c.version_id"
            " WHERE v.zone_id = ? AND v.id > ? AND v.id <= ? ORDER BY c.version_id, c.rowid",
            (zone_id, snapshot, upto if upto is not None else 1 << 62),
        )
        changesets: list[Changeset] = []
        current = -1
        for version_id, op, owner, rdtype, ttl, rdata in rows:
            if version_id != current:
                changesets.append(Changeset())
                current = version_id
            (changesets[-1].added if op else changesets[-1].removed).append(
                (owner, rdtype, ttl, rdata)
            )
        return changesets

    def _checkpoint(
        self,
        zone_id: int,
        upto: int,
        pending: list[Changeset] | None = None,
        version_id: int | None = None,
    ) -> None:
        """Bring the records snapshot forward to version `upto` (in a transaction).

        `pending`: the changesets after the snapshot when the caller has them
        all in hand; `version_id`: the one version they are, just written to
        `changes` (a seed): its added rows are copied inside SQLite, not bound
        again one by one from Python (a third of the time of a 100k seed).
        """
        if pending is None:
            if self._replay_in_sql(zone_id, upto):
                return
            pending = self._changesets_since_snapshot(zone_id, upto)
        if pending:
            net = net_changes(pending) if len(pending) > 1 else pending[0]
            self.conn.executemany(
                "DELETE FROM records WHERE zone_id = ? AND owner = ? AND rdtype = ? AND rdata = ?",
                [(zone_id, owner, rdtype, rdata) for owner, rdtype, _ttl, rdata in net.removed],
            )
            # In key order, SQLite appends to the B-tree instead of splitting
            # it; among equal keys the order stays (the last one written wins).
            if version_id is not None and len(pending) == 1:
                self.conn.execute(
                    "INSERT OR REPLACE INTO records (zone_id, owner, rdtype, ttl, rdata)"
                    " SELECT ?, owner, rdtype, ttl, rdata FROM changes"
                    " WHERE version_id = ? AND op = 1 ORDER BY owner, rdtype, rdata, rowid",
                    (zone_id, version_id),
                )
            else:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO records (zone_id, owner, rdtype, ttl, rdata)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(zone_id, *r) for r in sorted(net.added, key=_record_key)],
                )
        self._set_snapshot_id(zone_id, upto)
        self._pending[zone_id] = (0, 0)

    def _replay_in_sql(self, zone_id: int, upto: int) -> bool:
        """Checkpoint by replaying the few versions after the snapshot in
        SQLite, in order: each one's removed rows deleted by key, then its
        added rows written (the same as the net change, applied at once).
        False (nothing done): too many versions, `_checkpoint` condenses them.
        """
        snapshot = self._snapshot_id(zone_id)
        ids = [
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM versions WHERE zone_id = ? AND id > ? AND id <= ?"
                " ORDER BY id LIMIT ?",
                (zone_id, snapshot, upto, REPLAY_IN_SQL_VERSIONS + 1),
            )
        ]
        if len(ids) > REPLAY_IN_SQL_VERSIONS:
            return False
        for version_id in ids:
            self.conn.execute(
                "DELETE FROM records WHERE zone_id = ? AND (owner, rdtype, rdata) IN"
                " (SELECT owner, rdtype, rdata FROM changes WHERE version_id = ? AND op = 0)",
                (zone_id, version_id),
            )
            # In key order, as _checkpoint writes (the last of equal keys wins).
            self.conn.execute(
                "INSERT OR REPLACE INTO records (zone_id, owner, rdtype, ttl, rdata)"
                " SELECT ?, owner, rdtype, ttl, rdata FROM changes"
                " WHERE version_id = ? AND op = 1 ORDER BY owner, rdtype, rdata, rowid",
                (zone_id, version_id),
            )
        self._set_snapshot_id(zone_id, upto)
        self._pending[zone_id] = (0, 0)
        return True

    # -- writing --------------------------------------------------------------

    def append(
        self, versions: Sequence[NewVersion], expect_latest: dict[str, int] | None = None
    ) -> list[int]:
        """Append versions in one transaction (group commit); their ids.

        `expect_latest` maps zones to the id of the version the changes were
        computed against; if another process has journaled a version since,
        nothing is written and StaleJournal is raised.
        """
        conn = self.conn
        with Transaction(conn):
            for zone, expected in (expect_latest or {}).items():
                if self.latest_id(zone) != expected:
                    raise StaleJournal(zone)
            for new in versions:
                zone_id = self.zone_id(new.zone, create=True)
                assert zone_id is not None
                if zone_id not in self._pending:
                    # Pin down what `records` holds before this batch adds versions.
                    self._set_snapshot_id(zone_id, self._snapshot_id(zone_id))
            # We hold the write lock: the ids are ours to number. One
            # executemany per table for the whole batch, whatever its size.
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'versions'").fetchone()
            next_id = int(row[0]) + 1 if row else 1
            ids = list(range(next_id, next_id + len(versions)))
            version_rows = []
            # (version id, op, records) in the order their rows are to get
            runs: list[tuple[int, int, Sequence[Record]]] = []
            by_zone: dict[int, list[Changeset]] = {}
            last_version: dict[int, int] = {}
            for version_id, new in zip(ids, versions, strict=True):
                zone_id = self.zone_id(new.zone, create=True)
                assert zone_id is not None
                cs = new.changeset
                version_rows.append(
                    (
                        version_id,
                        zone_id,
                        new.serial,
                        new.time or time.time(),
                        new.who,
                        new.source,
                        new.channel,
                        len(cs.removed),
                        len(cs.added),
                    )
                )
                runs.append((version_id, 0, cs.removed))
                runs.append((version_id, 1, cs.added))
                by_zone.setdefault(zone_id, []).append(cs)
                last_version[zone_id] = version_id
            conn.executemany(
                "INSERT INTO versions (id, zone_id, serial, time, who, source, channel,"
                " removed, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                version_rows,
            )
            change_rows: list[tuple[object, ...]] = []
            for version_id, op, records in runs:
                if len(records) < RUN_ROWS_PER_INSERT:
                    change_rows += [(version_id, op, *r) for r in records]
                    continue
                if change_rows:  # the rows before this run first: rowids keep the order
                    insert_changes(conn, change_rows)
                    change_rows = []
                insert_run(conn, version_id, op, records)
            insert_changes(conn, change_rows)
            # Commits only append; the records snapshot catches up now and then.
            for zone_id, changesets in by_zone.items():
                versions_pending, rows_pending = self._pending_counts(zone_id, ids[0])
                versions_pending += len(changesets)
                rows_pending += sum(len(cs.removed) + len(cs.added) for cs in changesets)
                if versions_pending >= CHECKPOINT_VERSIONS or rows_pending >= CHECKPOINT_ROWS:
                    # Nothing pending before this batch: its changesets are all there is.
                    alone = versions_pending == len(changesets)
                    self._checkpoint(
                        zone_id,
                        ids[-1],
                        changesets if alone else None,
                        last_version[zone_id] if alone else None,
                    )
                else:
                    self._pending[zone_id] = (versions_pending, rows_pending)
        if not conn.in_transaction:  # committed here (else by commit_locked)
            self._committed()
        return ids

    def _pending_counts(self, zone_id: int, before: int) -> tuple[int, int]:
        """Versions and changed records not yet in the snapshot (ids < `before`).

        Kept in memory; counted from the tables once per zone and process
        (another process's commits only make the next checkpoint come late).
        """
        counts = self._pending.get(zone_id)
        if counts is None:
            snapshot = self._snapshot_id(zone_id)
            row = self.conn.execute(
                "SELECT count(DISTINCT v.id), count(c.rowid) FROM versions v"
                " LEFT JOIN changes c ON c.version_id = v.id"
                " WHERE v.zone_id = ? AND v.id > ? AND v.id < ?",
                (zone_id, snapshot, before),
            ).fetchone()
            counts = (int(row[0]), int(row[1]))
        return counts

    def prune(self, zone: str, max_versions: int, max_age_seconds: float, now: float) -> int:
        """Drop the oldest versions beyond the limits (never the latest); how many."""
        zone_id = self.zone_id(zone)
        if zone_id is None:
            return 0
        conn = self.conn
        with Transaction(conn):
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM versions WHERE zone_id = ? ORDER BY id DESC LIMIT -1 OFFSET ?",
                    (zone_id, max_versions),
                )
            ]
            if max_age_seconds > 0:
                ids += [
                    row[0]
                    for row in conn.execute(
                        "SELECT id FROM versions WHERE zone_id = ? AND time < ? AND id < "
                        "(SELECT max(id) FROM versions WHERE zone_id = ?)",
                        (zone_id, now - max_age_seconds, zone_id),
                    )
                ]
            if not ids:
                return 0
            newest_deleted = max(ids)
            # Versions after the snapshot are needed to rebuild the content:
            # bring it forward first if some are to go (with checkpoints every
            # CHECKPOINT_VERSIONS, usually none are).
            if self._snapshot_id(zone_id) < newest_deleted:
                self._checkpoint(zone_id, self.latest_id(zone))
            conn.execute(
                "DELETE FROM changes WHERE version_id IN "
                "(SELECT id FROM versions WHERE zone_id = ? AND id <= ?)",
                (zone_id, newest_deleted),
            )
            cursor = conn.execute(
                "DELETE FROM versions WHERE zone_id = ? AND id <= ?", (zone_id, newest_deleted)
            )
        self._committed()
        return int(cursor.rowcount)

    # -- reading --------------------------------------------------------------

    def versions(self, zone: str, limit: int | None = None, after_id: int = 0) -> list[Version]:
        """Versions newest first (or, with `after_id`, those after it, oldest first)."""
        zone_id = self.zone_id(zone)
        if zone_id is None:
            return []
        columns = "id, serial, time, who, source, channel, removed, added"
        if after_id:
            rows = self.conn.execute(
                f"SELECT {columns} FROM versions WHERE zone_id = ? AND id > ? ORDER BY id",
                (zone_id, after_id),
            ).fetchall()
        else:
            rows = self.conn.execute(
                f"SELECT {columns} FROM versions WHERE zone_id = ? ORDER BY id DESC LIMIT ?",
                (zone_id, -1 if limit is None else limit),
            ).fetchall()
        return [Version(*row) for row in rows]

    def count_versions(self, zone: str) -> int:
        zone_id = self.zone_id(zone)
        if zone_id is None:
            return 0
        row = self.conn.execute(
            "SELECT count(*) FROM versions WHERE zone_id = ?", (zone_id,)
        ).fetchone()
        return int(row[0])

    def latest_id(self, zone: str) -> int:
        zone_id = self.zone_id(zone)
        if zone_id is None:
            return 0
        row = self.conn.execute(
            "SELECT max(id) FROM versions WHERE zone_id = ?", (zone_id,)
        ).fetchone()
        return int(row[0] or 0)

    def find_version(self, zone: str, serial: int) -> Version | None:
        """The newest version with this serial."""
        zone_id = self.zone_id(zone)
        if zone_id is None:
            return None
        row = self.conn.execute(
            "SELECT id, serial, time, who, source, channel, removed, added FROM versions"
            " WHERE zone_id = ? AND serial = ? ORDER BY id DESC LIMIT 1",
            (zone_id, serial),
        ).fetchone()
        return Version(*row) if row else None

    def changeset(self, version_id: int) -> Changeset:
        cs = Changeset()
        for op, owner, rdtype, ttl, rdata in self.conn.execute(
            "SELECT op, owner, rdtype, ttl, rdata FROM changes WHERE version_id = ? ORDER BY rowid",
            (version_id,),
        ):
            (cs.added if op else cs.removed).append((owner, rdtype, ttl, rdata))
        return cs

    def changesets_after(self, zone: str, version_id: int) -> list[tuple[Version, Changeset]]:
        """Every version after `version_id`, oldest first, with its changes."""
        return [(v, self.changeset(v.id)) for v in self.versions(zone, after_id=version_id)]

    def content_at(self, zone: str, version: Version) -> set[Record]:
        """The zone's records as they were right after `version`."""
        with self.reading():  # the content and the versions after it, from one snapshot
            content = set(self.load(zone))
            after = self.changesets_after(zone, version.id)
        for _v, cs in reversed(after):
            content.difference_update(cs.added)
            content.update(cs.removed)
        return content

    def begin_locked(self) -> None:
        """Take the write lock until commit_locked()/rollback_locked() (a group
        commit): what is read meanwhile is what the appends are based on, as
        no other process can journal a version in between (no StaleJournal).
        Other processes wait for it (busy_timeout): hold it briefly."""
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")

    def commit_locked(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")
            self._committed()

    def rollback_locked(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def reading(self) -> Transaction:
        """A consistent read of several statements (one WAL snapshot):
        another process's commit cannot land between them."""
        return Transaction(self.conn, "BEGIN")

    def data_version(self) -> int:
        """Changes when another connection (another process) commits."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])


def net_changes(changesets: Iterable[Changeset]) -> Changeset:
    """Condense successive changesets into one (RFC 1995 condensed IXFR)."""
    first_seen_present: dict[Record, bool] = {}
    final_present: dict[Record, bool] = {}
    for cs in changesets:
        for rr in cs.removed:
            first_seen_present.setdefault(rr, True)
            final_present[rr] = False
        for rr in cs.added:
            first_seen_present.setdefault(rr, False)
            final_present[rr] = True
    net = Changeset()
    for rr, was in first_seen_present.items():
        now = final_present[rr]
        if was and not now:
            net.removed.append(rr)
        elif now and not was:
            net.added.append(rr)
    return net
