"""Backups of the journal, and the lock that tells whether `serve` runs.

`backup` uses SQLite's online backup API: one read transaction copies every
page, so the copy is consistent even while `serve` commits (WAL mode lets it
keep writing meanwhile). `restore` replaces the journal, so it must never
run under a live server: `serve` holds an exclusive lock on DATA_DIR/serve.lock
for its whole life (flock: the kernel drops it when the process dies, so a
crashed server leaves no stale lock, unlike a bare pid file), and `restore`
takes the same lock before it touches anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ddns_server.errors import UserError

JOURNAL_NAME = "journal.sqlite3"
LOCK_NAME = "serve.lock"


def journal_file(data_dir: Path) -> Path:
    return data_dir / JOURNAL_NAME


class ServeLock:
    """An exclusive lock on DATA_DIR/serve.lock, held while `serve` runs."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self.fd: int | None = None

    def acquire(self, what: str) -> None:
        """Take the lock or raise UserError naming the process that holds it."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the journal's
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise UserError(
                f"{what}: ddns-server serve (pid {holder}) is running on {self.path.parent};"
                " stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def integrity_errors(path: Path) -> list[str]:
    """`PRAGMA integrity_check` of a journal file, opened read-only: [] when ok."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        return [str(e)]
    try:
        rows = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
        if rows == ["ok"]:
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            missing = {"meta", "zones", "versions", "changes", "records"} - tables
            if missing:
                return [f"not a ddns-server journal (no table {', '.join(sorted(missing))})"]
            return []
        return rows
    except sqlite3.DatabaseError as e:  # "file is not a database"
        return [str(e)]
    finally:
        conn.close()


def zone_serials(path: Path) -> list[tuple[str, int]]:
    """(zone, serial of its newest version) for every zone of a journal file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [
            (str(name), int(serial))
            for name, serial in conn.execute(
                "SELECT z.name, v.serial FROM zones z JOIN versions v ON v.id ="
                " (SELECT MAX(id) FROM versions WHERE zone_id = z.id) ORDER BY z.name"
            )
        ]
    finally:
        conn.close()


@contextlib.contextmanager
def _temporary(dest: Path) -> Iterator[Path]:
    """A temporary file beside `dest`, removed unless it was moved in place."""
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    try:
        yield tmp
    finally:
        for path in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            path.unlink(missing_ok=True)


def _copy(source: Path, tmp: Path) -> None:
    """SQLite's online backup of `source` into `tmp`, one self-contained file (no WAL)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        src.execute("PRAGMA busy_timeout = 5000")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        dst = sqlite3.connect(str(tmp))
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(data_dir: Path, dest: Path) -> list[tuple[str, int]]:
    """Copy the journal to `dest` (atomically), checked; returns its zones' serials."""
    journal = journal_file(data_dir)
    if not journal.is_file():
        raise UserError(f"no journal at {journal}: nothing to back up")
    if dest.is_dir():
        raise UserError(f"{dest}: is a folder; give the backup's file name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _temporary(dest) as tmp:
        _copy(journal, tmp)
        errors = integrity_errors(tmp)
        if errors:
            raise UserError(f"backup of {journal} failed its integrity check: {errors[0]}")
        os.replace(tmp, dest)
    _fsync_dir(dest.parent)
    return zone_serials(dest)


def restore(data_dir: Path, source: Path) -> tuple[list[tuple[str, int]], Path | None]:
    """Put the backup `source` in place as the journal; refused while `serve` runs.

    Returns the zones' serials and where the previous journal was kept.
    """
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    errors = integrity_errors(source)
    if errors:
        raise UserError(f"{source}: failed the integrity check: {errors[0]}")
    lock = ServeLock(data_dir)
    lock.acquire("restore refused")
    try:
        journal = journal_file(data_dir)
        kept: Path | None = None
        with _temporary(journal) as tmp:
            _copy(source, tmp)
            errors = integrity_errors(tmp)
            if errors:
                raise UserError(f"copy of {source} failed the integrity check: {errors[0]}")
            if journal.exists():
                # Fold the old journal's WAL into it, then keep it beside: an
                # operator who restored the wrong file can go back.
                kept = journal.with_name(journal.name + ".before-restore")
                _checkpoint(journal)
                os.replace(journal, kept)
            # A stale -wal would be replayed into the restored file: remove it.
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{journal}{suffix}").unlink(missing_ok=True)
            os.replace(tmp, journal)
        _fsync_dir(data_dir)
        return zone_serials(journal), kept
    finally:
        lock.release()


def _checkpoint(journal: Path) -> None:
    try:
        conn = sqlite3.connect(str(journal))
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    except sqlite3.Error:
        pass  # a broken journal is replaced as it is
