"""The journal's file on disk: what must hold before SQLite may open it.

Only a journal this server creates from nothing may be seeded from zone
files (issue 14): an existing file that is empty, unreadable or foreign,
or one missing a zone's history beside others', is refused in one line.
A new journal is private (0600 in a 0700 folder); loose modes of an
existing one are reported.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ddns_server.errors import UserError

if TYPE_CHECKING:
    from ddns_server.journal import Journal

# How to proceed, for every refusal to open a journal (docs/operations.md).
HOW = (
    "restore a backup, or move the file away deliberately to start over from the zone "
    "files (`ddns-server zone import ZONE FILE` puts content back as a new version)"
)


class JournalUnusable(UserError):
    """The journal file exists but cannot be used as it is: never seeded over."""


def open_file(path: Path, initialise: Callable[[Path], None]) -> bool:
    """Make sure `path` is a journal we may open; True when created here.

    Only a journal created from nothing (no file at all) may be seeded from
    zone files. An existing file that is empty, unreadable or not SQLite is
    refused (one line, JournalUnusable): overwriting it would drop every
    journaled version. A new journal is created 0600 in a 0700 folder (its
    -wal and -shm take the file's mode): it holds the zone history, user
    names and client addresses. It is made aside (`initialise` writes the
    schema) and linked into place whole, so a kill at any moment leaves
    either no journal or a complete one without history, never an empty or
    foreign-looking file that the next start would refuse.
    """
    if path.is_symlink() and not path.exists():
        # A dangling link: creating through it (or refusing with EEXIST, as
        # O_EXCL does on a link) is never what the operator meant.
        raise JournalUnusable(f"journal {path} is a symbolic link to a missing file; {HOW}")
    if not path.exists():
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
        aside = path.with_name(f".{path.name}.{os.getpid()}.new")
        for leftover in (aside, Path(f"{aside}-wal"), Path(f"{aside}-shm")):
            leftover.unlink(missing_ok=True)  # ours, from a killed start of the same pid
        os.close(os.open(aside, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        try:
            initialise(aside)
            try:
                os.link(aside, path)
            except FileExistsError:  # created beside us just now: check it as existing
                return open_file(path, initialise)
        finally:
            aside.unlink(missing_ok=True)
        return True
    if path.is_dir():
        raise JournalUnusable(f"journal {path} is a folder, not a file")
    # The file is never opened here: SQLite's locks are POSIX locks, which a
    # process loses on *every* descriptor of the file when it closes any one
    # of them. Opening and closing the journal in a server that already has it
    # open would drop the server's locks, letting another process checkpoint
    # the WAL under it. SQLite itself checks the header (the first PRAGMA on a
    # foreign file fails: "file is not a database").
    try:
        size = path.stat().st_size
    except OSError as e:
        raise JournalUnusable(f"journal {path} cannot be read ({e.strerror}); {HOW}") from None
    if not os.access(path, os.R_OK | os.W_OK):
        raise JournalUnusable(f"journal {path} cannot be read (permission denied); {HOW}")
    if size == 0:
        raise JournalUnusable(
            f"journal {path} exists but is empty (0 bytes); refusing to seed zones over it: {HOW}"
        )
    return False


def loose_modes(path: Path) -> list[str]:
    """The journal's folder and files that group or others may read (for a warning)."""
    found = []
    for candidate in (path.parent, path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = candidate.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append(f"{candidate} (mode {stat.S_IMODE(mode):04o})")
    return found


def check_history(journal: Journal, zones: Sequence[str]) -> None:
    """Refuse to seed a configured zone over a journal that already has history.

    Zone files seed a zone only while the journal holds no version of any
    zone (it was just created, or never written). A zone without history
    beside zones with history is what a wrong or restored-too-old journal
    looks like: seeding it would silently replace what it had, so the server
    stops (issue 14). A zone is added to a running set-up explicitly, with
    `ddns-server zone import ZONE FILE` (docs/operations.md).
    """
    have = journal.zones_with_history()
    if not have:
        return
    missing = [zone for zone in zones if not journal.has_zone(zone)]
    if missing:
        zone = missing[0].rstrip(".")
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise JournalUnusable(
            f"journal {journal.path} has history for {', '.join(z.rstrip('.') for z in have)} "
            f"but none for configured zone {zone}{more}; refusing to seed it from its file: "
            f"to add the zone, run `ddns-server zone import {zone} FILE`; if the journal should "
            "have it, restore a backup"
        )
