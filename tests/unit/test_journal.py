"""The SQLite journal: versions, changes, the records table, history and pruning.

Real SQLite files in a temporary folder; no sockets.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import stat
import tempfile
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import pytest
from waiting import wait_for

from ddns_server.errors import UserError
from ddns_server.journal import (
    Journal,
    NewVersion,
    StaleJournal,
    Version,
    net_changes,
)
from ddns_server.journal_file import JournalUnusable, check_history, loose_modes, open_file
from ddns_server.journal_schema import ROWS_PER_INSERT, RUN_ROWS_PER_INSERT
from ddns_server.wal_checkpoints import WAL_BACKSTOP_PAGES
from ddns_server.zonedata import Changeset, Record, name_to_wire

ZONE = "dyn.example.test."
ORIGIN = dns.name.from_text(ZONE)


def rr(owner: str, rdtype: str, rdata: str, ttl: int = 300) -> Record:
    rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata, origin=ORIGIN, relativize=False)
    return (name_to_wire(dns.name.from_text(owner, ORIGIN)), rd.rdtype, ttl, rd.to_wire())


def soa(serial: int) -> Record:
    return rr("@", "SOA", f"ns1 hostmaster {serial} 3600 600 604800 300")


SEED = [soa(1), rr("@", "NS", "ns1"), rr("ns1", "A", "192.0.2.1"), rr("www", "A", "192.0.2.10")]


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "data" / "journal.sqlite3")
    yield j
    j.close()


def version(
    serial: int,
    changeset: Changeset,
    who: str = "key",
    channel: str = "rfc2136",
    when: float = 1000.0,
) -> NewVersion:
    return NewVersion(ZONE, serial, changeset, who, "192.0.2.7", channel, when)


def bump(old: int, new: int, removed: list[Record] = (), added: list[Record] = ()) -> Changeset:  # type: ignore[assignment]
    return Changeset(removed=[soa(old), *removed], added=[soa(new), *added])


def seeded(journal: Journal) -> int:
    (vid,) = journal.append([version(1, Changeset(added=list(SEED)), "file", "seed")])
    return vid


def test_large_batches_keep_every_change_in_order(journal: Journal) -> None:
    """Many changes go in multi-row INSERTs: every one kept, in the order given
    (across the statements and the remainder), each under its version."""
    hosts = [rr(f"h{i}", "A", f"10.0.{i // 250}.{i % 250}") for i in range(2 * ROWS_PER_INSERT + 7)]
    # reversed: the order given, not the key order, is what must come back
    seed = Changeset(added=[*SEED, *reversed(hosts)])
    upd = bump(1, 2, removed=hosts[: ROWS_PER_INSERT + 1], added=[rr("www", "TXT", '"x"')])
    first, second = journal.append([version(1, seed, "file", "seed"), version(2, upd)])
    assert journal.changeset(first) == seed
    assert journal.changeset(second) == upd
    assert set(journal.load(ZONE)) == {
        *SEED,
        *hosts[ROWS_PER_INSERT + 1 :],
        soa(2),
        rr("www", "TXT", '"x"'),
    } - {soa(1)}


def test_long_runs_and_short_rows_keep_their_order(journal: Journal) -> None:
    """A long run (one version's added or removed rows, in statements of their
    own) between short ones: every row comes back in the order given, under
    its own version, and the snapshot is the net result."""
    n = 2 * RUN_ROWS_PER_INSERT + 3
    hosts = [rr(f"h{i}", "A", f"10.2.{i // 250}.{i % 250}") for i in range(n)]
    seed = Changeset(added=[*SEED, *reversed(hosts)])  # a long run after short rows
    small = bump(1, 2, added=[rr("www", "TXT", '"x"')])
    # a long removed run, then a short added one, in the same version
    big = bump(2, 3, removed=hosts[: n - 1], added=[rr("www", "TXT", '"y"')])
    ids = journal.append([version(1, seed, "file", "seed"), version(2, small), version(3, big)])
    assert [journal.changeset(i) for i in ids] == [seed, small, big]
    assert set(journal.load(ZONE)) == {
        *SEED,
        hosts[n - 1],
        soa(3),
        rr("www", "TXT", '"x"'),
        rr("www", "TXT", '"y"'),
    } - {soa(1)}


@pytest.mark.parametrize("extra", [0, 1, 6, 7, 30])
def test_few_changes_keep_their_order(journal: Journal, extra: int) -> None:
    """A small version's rows go in one statement (up to 8), more in executemany:
    the order given comes back either way."""
    seeded(journal)
    hosts = [rr(f"h{i}", "A", f"10.1.0.{i}") for i in range(extra)]
    upd = bump(1, 2, added=list(reversed(hosts)))
    (vid,) = journal.append([version(2, upd)])
    assert journal.changeset(vid) == upd


def test_schema_and_wal(tmp_path: Path, journal: Journal) -> None:
    assert journal.path.exists()
    mode = journal.conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode.lower() == "wal"
    tables = {row[0] for row in journal.conn.execute("SELECT name FROM sqlite_master")}
    assert {"meta", "zones", "records", "versions", "changes"} <= tables
    assert {"mirror_cursors", "mirror_owned"} <= tables
    assert journal.conn.execute(
        "SELECT value FROM meta WHERE key = 'schema_version'"
    ).fetchone() == ("2",)


def test_schema_1_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE mirror_cursors")
    conn.execute("DROP TABLE mirror_owned")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    journal = Journal(path)
    tables = {row[0] for row in journal.conn.execute("SELECT name FROM sqlite_master")}
    assert {"mirror_cursors", "mirror_owned"} <= tables
    assert journal.conn.execute(
        "SELECT value FROM meta WHERE key = 'schema_version'"
    ).fetchone() == ("2",)
    journal.close()


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(UserError, match="schema 99 is newer"):
        Journal(path)


def test_seed_version_and_records(journal: Journal) -> None:
    assert not journal.has_zone(ZONE)
    vid = seeded(journal)
    assert journal.has_zone(ZONE)
    assert journal.zone_names() == [ZONE]
    assert sorted(journal.load(ZONE)) == sorted(SEED)
    (v,) = journal.versions(ZONE)
    assert (v.id, v.serial, v.who, v.source, v.channel, v.removed, v.added) == (
        vid,
        1,
        "file",
        "192.0.2.7",
        "seed",
        0,
        len(SEED),
    )
    assert v.time == 1000.0
    assert journal.latest_id(ZONE) == vid
    assert journal.changeset(vid).added == SEED


def test_versions_record_who_source_channel_and_changes(journal: Journal) -> None:
    seeded(journal)
    new = rr("home", "A", "192.0.2.100", 60)
    (v2,) = journal.append([version(2, bump(1, 2, added=[new]), "home-key", "rfc2136", 1001.0)])
    (v3,) = journal.append([version(3, bump(2, 3, removed=[new]), "alice", "dyndns2", 1002.0)])
    versions = journal.versions(ZONE)
    assert [(v.serial, v.who, v.channel, v.removed, v.added) for v in versions] == [
        (3, "alice", "dyndns2", 2, 1),
        (2, "home-key", "rfc2136", 1, 2),
        (1, "file", "seed", 0, len(SEED)),
    ]
    assert [v.serial for v in journal.versions(ZONE, limit=2)] == [3, 2]
    assert [v.serial for v in journal.versions(ZONE, after_id=v2)] == [3]
    cs = journal.changeset(v2)
    assert cs.removed == [soa(1)] and cs.added == [soa(2), new]
    assert journal.changeset(v3).removed == [soa(2), new]
    assert sorted(journal.load(ZONE)) == sorted([soa(3), *SEED[1:]])


def test_group_commit_appends_in_order(journal: Journal) -> None:
    seeded(journal)
    a, b = rr("a", "A", "192.0.2.1"), rr("b", "A", "192.0.2.2")
    ids = journal.append([version(2, bump(1, 2, added=[a])), version(3, bump(2, 3, added=[b]))])
    assert ids == sorted(ids) and len(ids) == 2
    assert [v.serial for v in journal.versions(ZONE)][:2] == [3, 2]
    assert {a, b, soa(3)} <= set(journal.load(ZONE))
    assert soa(2) not in set(journal.load(ZONE))


def test_find_version(journal: Journal) -> None:
    seeded(journal)
    journal.append([version(2, bump(1, 2))])
    found = journal.find_version(ZONE, 2)
    assert found is not None and found.serial == 2
    assert journal.find_version(ZONE, 77) is None
    assert journal.find_version("other.test.", 1) is None


def test_stale_journal_writes_nothing(journal: Journal) -> None:
    vid = seeded(journal)
    journal.append([version(2, bump(1, 2))], expect_latest={ZONE: vid})
    before = (journal.versions(ZONE), sorted(journal.load(ZONE)))
    with pytest.raises(StaleJournal):
        journal.append(
            [version(3, bump(2, 3, added=[rr("x", "A", "192.0.2.3")]))], expect_latest={ZONE: vid}
        )
    assert (journal.versions(ZONE), sorted(journal.load(ZONE))) == before


def test_content_at_every_version(journal: Journal) -> None:
    seeded(journal)
    contents = {1: set(SEED)}
    current = set(SEED)
    records = [rr(f"h{i}", "A", f"192.0.2.{i}") for i in range(1, 8)]
    for serial in range(2, 9):
        removed = [r for r in current if r[1] != 6][: serial % 3]  # some non-SOA records
        added = [records[serial - 2]]
        journal.append([version(serial, bump(serial - 1, serial, removed=removed, added=added))])
        current = (current - {soa(serial - 1), *removed}) | {soa(serial), *added}
        contents[serial] = set(current)
    for serial, content in contents.items():
        v = journal.find_version(ZONE, serial)
        assert v is not None
        assert journal.content_at(ZONE, v) == content, serial


def test_duplicate_rows_are_removed_one_at_a_time(journal: Journal) -> None:
    """DELETE ... LIMIT 1: removing a record takes exactly one row."""
    seeded(journal)
    www = SEED[3]
    journal.append([version(2, bump(1, 2, removed=[www]))])
    assert www not in set(journal.load(ZONE))
    assert len(list(journal.load(ZONE))) == len(SEED) - 1


def test_net_changes_condense() -> None:
    a, b, c = rr("a", "A", "192.0.2.1"), rr("b", "A", "192.0.2.2"), rr("c", "A", "192.0.2.3")
    steps = [
        Changeset(removed=[soa(1)], added=[soa(2), a]),  # add a
        Changeset(removed=[soa(2), a, b], added=[soa(3)]),  # remove a again, remove b
        Changeset(removed=[soa(3)], added=[soa(4), c, b]),  # add c, put b back
    ]
    net = net_changes(steps)
    assert net.removed == [soa(1)]
    assert sorted(net.added) == sorted([soa(4), c])
    assert not net_changes([])
    # remove then add the same record: nothing
    assert not net_changes([Changeset(removed=[a]), Changeset(added=[a])])
    # add then remove: nothing
    assert not net_changes([Changeset(added=[a]), Changeset(removed=[a])])


@pytest.mark.parametrize("seed", range(3))
def test_checkpoint_replayed_in_sql_equals_the_condensed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """A checkpoint over a few versions replays them inside SQLite; over
    many, condenses them in Python: both leave the same `records` table (and
    the same content), whatever the versions do to each other's records
    (removed again, added back, TTL changed, in the same version or later)."""
    import ddns_server.journal as journal_mod

    rng = random.Random(seed)
    pool = [rr(f"h{i % 5}", "A", f"192.0.2.{i}", ttl=rng.choice([60, 300])) for i in range(12)]
    pool += [rr(f"h{i}", "TXT", f'"t{i}"') for i in range(3)]
    steps: list[Changeset] = []
    current = set(SEED)
    for serial in range(2, 40):
        removed = [r for r in sorted(current) if r[1] != 6 and rng.random() < 0.3]
        keys = {(r[0], r[1], r[3]) for r in current}  # the table's key: no TTL
        added = [r for r in pool if (r[0], r[1], r[3]) not in keys and rng.random() < 0.3]
        for r in removed:  # sometimes the same record with another TTL in its place
            if rng.random() < 0.3:
                added.append((r[0], r[1], r[2] + 1, r[3]))
        steps.append(bump(serial - 1, serial, removed=removed, added=added))
        current = (current - {soa(serial - 1), *removed}) | {soa(serial), *added}
    tables = []
    for replay in (0, journal_mod.REPLAY_IN_SQL_VERSIONS):
        monkeypatch.setattr(journal_mod, "REPLAY_IN_SQL_VERSIONS", replay)
        monkeypatch.setattr(journal_mod, "CHECKPOINT_VERSIONS", rng.choice([2, 3, 5]))
        j = Journal(tmp_path / f"replay{replay}.sqlite3")
        try:
            seeded(j)
            for serial, step in enumerate(steps, 2):
                j.append([version(serial, step)])
            zone_id = j.zone_id(ZONE)
            assert zone_id is not None and j._snapshot_id(zone_id) > 30
            j._checkpoint(zone_id, j.latest_id(ZONE))  # the rest too
            tables.append(sorted(j.conn.execute("SELECT * FROM records").fetchall()))
            assert set(j.load(ZONE)) == current
        finally:
            j.close()
    assert tables[0] == tables[1]


def test_prune_by_count_keeps_the_newest(journal: Journal) -> None:
    seeded(journal)
    for serial in range(2, 12):
        journal.append([version(serial, bump(serial - 1, serial))])
    records = sorted(journal.load(ZONE))
    assert journal.prune(ZONE, max_versions=4, max_age_seconds=0, now=5000.0) == 7
    assert [v.serial for v in journal.versions(ZONE)] == [11, 10, 9, 8]
    assert sorted(journal.load(ZONE)) == records  # the content never changes
    remaining = {row[0] for row in journal.conn.execute("SELECT DISTINCT version_id FROM changes")}
    assert remaining == {v.id for v in journal.versions(ZONE)}
    oldest = journal.find_version(ZONE, 8)
    assert oldest is not None
    assert soa(8) in journal.content_at(ZONE, oldest)
    assert journal.find_version(ZONE, 7) is None
    assert journal.prune(ZONE, max_versions=4, max_age_seconds=0, now=5000.0) == 0


def test_prune_of_versions_in_the_snapshot_leaves_it(tmp_path: Path, journal: Journal) -> None:
    """Pruning only versions the records snapshot already holds needs no
    checkpoint (the snapshot stays where it is); the content is unchanged,
    also for a process that loads it afresh."""
    seeded(journal)
    for serial in range(2, 8):
        journal.append([version(serial, bump(serial - 1, serial))])
    assert journal.prune(ZONE, max_versions=100, max_age_seconds=0, now=0) == 0
    zone_id = journal.zone_id(ZONE)
    assert zone_id is not None
    journal._checkpoint(zone_id, journal.latest_id(ZONE))  # the snapshot at serial 7
    snapshot = journal._snapshot_id(zone_id)
    for serial in range(8, 11):
        journal.append(
            [version(serial, bump(serial - 1, serial, added=[rr(f"n{serial}", "A", "192.0.2.9")]))]
        )
    records = sorted(journal.load(ZONE))
    assert journal.prune(ZONE, max_versions=4, max_age_seconds=0, now=5000.0) == 6
    assert journal._snapshot_id(zone_id) == snapshot  # not brought forward
    assert [v.serial for v in journal.versions(ZONE)] == [10, 9, 8, 7]
    assert sorted(journal.load(ZONE)) == records
    fresh = Journal(journal.path)
    try:
        assert sorted(fresh.load(ZONE)) == records
    finally:
        fresh.close()


def test_prune_by_age_never_drops_the_latest(journal: Journal) -> None:
    journal.append([version(1, Changeset(added=list(SEED)), when=100.0)])
    journal.append([version(2, bump(1, 2), when=200.0)])
    journal.append([version(3, bump(2, 3), when=300.0)])
    assert journal.prune(ZONE, max_versions=1000, max_age_seconds=150, now=400.0) == 2
    assert [v.serial for v in journal.versions(ZONE)] == [3]
    # everything is older than the limit, but the latest version stays
    assert journal.prune(ZONE, max_versions=1000, max_age_seconds=1, now=10_000.0) == 0
    assert [v.serial for v in journal.versions(ZONE)] == [3]
    assert journal.has_zone(ZONE)


def test_zones_are_independent(journal: Journal) -> None:
    seeded(journal)
    other = NewVersion("other.test.", 5, Changeset(added=[soa(5)]), "file", "local", "seed")
    journal.append([other])
    assert sorted(journal.zone_names()) == sorted([ZONE, "other.test."])
    assert [v.serial for v in journal.versions("other.test.")] == [5]
    assert list(journal.load("other.test.")) == [soa(5)]
    assert len(journal.versions(ZONE)) == 1
    assert journal.prune("missing.test.", 1, 0, 0.0) == 0
    assert list(journal.load("missing.test.")) == []
    assert journal.latest_id("missing.test.") == 0


def test_data_version_sees_other_connections_only(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    first, second = Journal(path), Journal(path)
    try:
        seen = first.data_version()
        first.append([version(1, Changeset(added=list(SEED)))])
        assert first.data_version() == seen  # its own commit does not count
        second.append([version(2, bump(1, 2))])
        assert first.data_version() != seen
        assert [v.serial for v in first.versions(ZONE)] == [2, 1]
    finally:
        first.close()
        second.close()


def test_checkpoints_run_in_a_thread_of_their_own(tmp_path: Path) -> None:
    """The server's WAL checkpoints: copied into the database file by the
    checkpointer's connection (not inside a COMMIT); not another process's
    commit for data_version; the thread ends with the journal."""
    path = tmp_path / "j.sqlite3"
    j = Journal(path)
    checkpointer = j.checkpoint_in_background()
    try:
        assert j.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_BACKSTOP_PAGES
        seen = j.data_version()
        seeded(j)
        j.append([version(2, bump(1, 2)), version(3, bump(2, 3))])  # its own transaction
        j.begin_locked()
        j.append([version(4, bump(3, 4, added=[rr("x", "TXT", '"hello"')]))])
        j.commit_locked()  # a group commit
        # The database file alone (no WAL) comes to hold every version.
        alone = tmp_path / "alone.sqlite3"

        def serials_in_the_file_alone() -> list[tuple[int]]:
            shutil.copyfile(path, alone)
            conn = sqlite3.connect(alone)
            try:
                return conn.execute("SELECT serial FROM versions ORDER BY id").fetchall()
            except sqlite3.DatabaseError:
                return []  # copied in the middle of a checkpoint
            finally:
                conn.close()

        wait_for(
            lambda: serials_in_the_file_alone() == [(1,), (2,), (3,), (4,)],
            timeout=10,
            interval=0.01,
            message="every version checkpointed into the database file",
        )
        assert checkpointer.runs >= 1
        assert j.data_version() == seen
    finally:
        j.close()
    assert not checkpointer.is_alive()
    assert j.checkpointer is None


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = Journal(path)
    seeded(j)
    j.append([version(2, bump(1, 2, added=[rr("x", "TXT", '"hello"')]))])
    before = (j.versions(ZONE), sorted(j.load(ZONE)))
    j.close()
    j = Journal(path)
    try:
        assert (j.versions(ZONE), sorted(j.load(ZONE))) == before
    finally:
        j.close()


# -- issue 14 items 1 and 15: never seed over an existing journal; private modes


def test_a_new_journal_is_0600_in_a_0700_folder(tmp_path: Path) -> None:
    path = tmp_path / "data" / "journal.sqlite3"
    j = Journal(path)
    assert j.created
    seeded(j)  # -wal and -shm exist while the connection is open
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in (path.parent, path, Path(f"{path}-wal"), Path(f"{path}-shm"))
    }
    assert modes == {
        "data": 0o700,
        "journal.sqlite3": 0o600,
        "journal.sqlite3-wal": 0o600,
        "journal.sqlite3-shm": 0o600,
    }
    assert loose_modes(path) == []
    j.close()
    reopened = Journal(path)
    assert not reopened.created
    reopened.close()


def test_a_new_journal_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    """Made aside and linked into place: a start killed while it creates the
    journal leaves no file at the journal's path (the next start creates it),
    never an empty or schema-less one that the next start refuses."""
    path = tmp_path / "data" / "journal.sqlite3"

    def killed(aside: Path) -> None:
        assert not path.exists()  # nothing at the journal's path meanwhile
        assert aside.parent == path.parent and stat.S_IMODE(aside.stat().st_mode) == 0o600
        raise KeyboardInterrupt  # as far as the file system goes, a kill here

    with pytest.raises(KeyboardInterrupt):
        open_file(path, killed)
    assert not path.exists()
    j = Journal(path)
    assert j.created and j.zones_with_history() == []
    j.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["journal.sqlite3"]
    reopened = Journal(path)  # ours, though no version was ever written
    assert not reopened.created
    reopened.close()


def test_loose_modes_of_an_existing_journal_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "data" / "journal.sqlite3"
    Journal(path).close()
    path.chmod(0o644)
    path.parent.chmod(0o755)
    assert loose_modes(path) == [f"{path.parent} (mode 0755)", f"{path} (mode 0644)"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"exists but is empty \(0 bytes\)"),
        (b"garbage, not a database at all", "is not an SQLite database"),
        (b"SQLite format 3\x00" + b"\xff" * 200, "unreadable or corrupt"),
    ],
    ids=["empty", "garbage", "corrupt-header"],
)
def test_an_existing_unusable_journal_is_refused_and_left_alone(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(content)
    with pytest.raises(JournalUnusable, match=message) as info:
        Journal(path)
    assert "\n" not in str(info.value)
    assert "zone import" in str(info.value) and "move the file away" in str(info.value)
    assert path.read_bytes() == content  # nothing written over it


def test_an_sqlite_file_that_is_no_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    with pytest.raises(JournalUnusable, match="holds no ddns-server journal"):
        Journal(path)


def _refusal_as_nobody(path: Path) -> str:
    """Journal(path)'s refusal, as an unprivileged user: root reads any file,
    and CI runs as root. A forked child drops to uid/gid 65534 (the modules
    are loaded already) and sends back the one-line message."""
    if os.geteuid() != 0:
        with pytest.raises(JournalUnusable) as info:
            Journal(path)
        return str(info.value)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            try:
                Journal(path)
                message = "opened"
            except JournalUnusable as e:
                message = str(e)
            os.write(write, message.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode()
    _pid, status = os.waitpid(pid, 0)
    assert status == 0
    return message


def test_an_unreadable_journal_is_refused() -> None:
    folder = Path(tempfile.mkdtemp(prefix="ddns-unreadable-"))
    try:
        folder.chmod(0o755)  # the unprivileged user may look in, not read the file
        path = folder / "journal.sqlite3"
        Journal(path).close()
        content = path.read_bytes()
        path.chmod(0)
        message = _refusal_as_nobody(path)
        assert "cannot be read" in message and "\n" not in message, message
        assert path.read_bytes() == content  # nothing written over it
    finally:
        shutil.rmtree(folder)


def test_a_dangling_symlink_journal_is_refused_in_one_line(tmp_path: Path) -> None:
    # Once a RecursionError: O_EXCL refuses a link (EEXIST), exists() says no.
    path = tmp_path / "journal.sqlite3"
    path.symlink_to(tmp_path / "gone" / "journal.sqlite3")
    with pytest.raises(JournalUnusable, match="symbolic link to a missing file") as info:
        Journal(path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "gone").exists()


def test_a_folder_as_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.mkdir()
    with pytest.raises(JournalUnusable, match="is a folder, not a file"):
        Journal(path)


def test_history_check(journal: Journal) -> None:
    other = "other.example.test."
    check_history(journal, [ZONE, other])  # no history at all: both may be seeded
    seeded(journal)
    check_history(journal, [ZONE])
    with pytest.raises(JournalUnusable) as info:
        check_history(journal, [ZONE, other])
    text = str(info.value)
    assert (
        "has history for dyn.example.test but none for configured zone other.example.test" in text
    )
    assert "ddns-server zone import other.example.test FILE" in text


def test_opening_a_journal_again_never_touches_its_file_from_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's locks are POSIX locks: closing ANY descriptor of the file drops
    all of this process's locks on it. A second Journal in the server (mirror
    workers, API) must not open and close the file itself, or another process
    could checkpoint the WAL under the running server."""
    import builtins
    import os as os_mod

    path = tmp_path / "journal.sqlite3"
    first = Journal(path)
    real_open, real_os_open = builtins.open, os_mod.open

    def guarded_open(file: object, *args: object, **kwargs: object) -> object:
        assert str(file) != str(path), "the journal file was opened from Python"
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    def guarded_os_open(file: object, *args: object, **kwargs: object) -> int:
        assert str(file) != str(path), "the journal file was opened from Python"
        return real_os_open(file, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os_mod, "open", guarded_os_open)
    second = Journal(path)
    assert not second.created
    second.close()
    first.close()


def test_a_version_as_a_dict_has_a_utc_time() -> None:
    v = Version(1, 7, 86400.0 + 3661, "alice", "192.0.2.1", "dyndns2", 1, 2)
    assert v.as_dict() == {
        "serial": 7,
        "time": "1970-01-02T01:01:01Z",
        "who": "alice",
        "source": "192.0.2.1",
        "channel": "dyndns2",
        "removed": 1,
        "added": 2,
    }
