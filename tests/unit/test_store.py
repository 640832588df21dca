"""Store: zones in memory over the journal. Commit = journal first, then publish.

Real SQLite in a temporary folder. "Two processes" are two Store/Journal pairs
on the same file, which is what `serve` and a CLI command are.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from ddns_server.errors import UserError
from ddns_server.journal import Journal, StaleJournal, Version
from ddns_server.plan import plan_content
from ddns_server.store import (
    Store,
    ZoneLimits,
    next_serial,
    records_from_file,
    zone_key,
)
from ddns_server.zonedata import Changeset, Record, ZoneData, name_to_wire

DATA = Path(__file__).resolve().parents[1] / "data"
ORIGIN = dns.name.from_text("dyn.example.test")
KEY = zone_key(ORIGIN)


def rr(owner: str, rdtype: str, rdata: str, ttl: int = 300) -> Record:
    rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata, origin=ORIGIN, relativize=False)
    return (name_to_wire(dns.name.from_text(owner, ORIGIN)), rd.rdtype, ttl, rd.to_wire())


def seed() -> list[Record]:
    return records_from_file(DATA / "example.zone", ORIGIN)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    journal = Journal(path)
    s = Store(journal, Clock())
    s.open_zone(ORIGIN, seed())
    yield s
    journal.close()


def zone_of(store: Store) -> ZoneData:
    zone = store.zone_for(ORIGIN)
    assert zone is not None
    return zone


def journal_matches_memory(store: Store) -> None:
    zone = zone_of(store)
    assert set(store.journal.load(KEY)) == zone.record_set()
    assert len(list(store.journal.load(KEY))) == zone.record_count  # no duplicate rows


# -- serial arithmetic --------------------------------------------------------------


def test_next_serial_rfc1982_wraps_and_skips_zero() -> None:
    assert next_serial(1) == 2
    assert next_serial(2026112501) == 2026112502
    assert next_serial(0xFFFFFFFE) == 0xFFFFFFFF
    assert next_serial(0xFFFFFFFF) == 1  # 0 is skipped, like BIND
    assert next_serial(0) == 1


# -- seeding and reopening ------------------------------------------------------------


def test_seeding(store: Store) -> None:
    zone = zone_of(store)
    assert zone.serial == 2026112501
    assert zone.record_set() == set(seed())
    (v,) = store.journal.versions(KEY)
    assert (v.serial, v.who, v.source, v.channel, v.added, v.removed) == (
        2026112501,
        "file",
        "local",
        "seed",
        len(seed()),
        0,
    )
    journal_matches_memory(store)


def test_reopen_loads_the_journal_never_the_seed(store: Store, path: Path) -> None:
    zone = zone_of(store)
    store.commit(
        zone, Changeset(added=[rr("new", "A", "192.0.2.200")]), "k", "127.0.0.1", "rfc2136"
    )
    other = Journal(path)
    try:
        reopened = Store(other).open_zone(ORIGIN, seed=[rr("@", "SOA", "a b 1 1 1 1 1")])
        assert reopened.record_set() == zone.record_set()
        assert reopened.serial == 2026112502
        assert len(other.versions(KEY)) == 2
    finally:
        other.close()


def test_a_new_zone_needs_a_seed(path: Path) -> None:
    journal = Journal(path)
    try:
        with pytest.raises(UserError, match="not in the journal"):
            Store(journal).open_zone(ORIGIN)
    finally:
        journal.close()


# -- commit ----------------------------------------------------------------------------------


def test_commit_bumps_the_serial_and_records_the_version(store: Store) -> None:
    zone = zone_of(store)
    seen: list[tuple[ZoneData, Version | None]] = []
    store.listeners.append(lambda z, v: seen.append((z, v)))
    old_soa = zone.soa_record()
    new = rr("home", "A", "192.0.2.100", 60)
    version = store.commit(zone, Changeset(added=[new]), "home-key", "192.0.2.7", "rfc2136")
    assert version.serial == zone.serial == 2026112502
    assert (version.who, version.source, version.channel) == ("home-key", "192.0.2.7", "rfc2136")
    assert (version.removed, version.added) == (1, 2)  # the old SOA; the new SOA and the A
    assert seen == [(zone, version)]
    assert zone.records_at(name_to_wire(dns.name.from_text("home", ORIGIN)).lower()) == [new]
    cs = store.journal.changeset(version.id)
    assert cs.removed == [old_soa]
    assert cs.added[0] == new and cs.added[1][1] == dns.rdatatype.SOA
    (latest, *_) = store.journal.versions(KEY)
    assert latest == version
    journal_matches_memory(store)


def test_commit_wraps_the_serial(store: Store) -> None:
    zone = zone_of(store)
    soa = zone.soa()
    # RFC 1982: a serial is only "newer" within 2**31, so go up in two steps.
    for serial, expected in ((4_000_000_000, 4_000_000_001), (0xFFFFFFFE, 0xFFFFFFFF), (None, 1)):
        if serial is not None:
            new_soa = rr("@", "SOA", soa.replace(serial=serial).to_text(), 3600)
            store.commit(zone, Changeset(added=[new_soa]), "op", "local", "rfc2136")
            assert zone.serial == serial
        store.commit(zone, Changeset(added=[rr("w", "TXT", f'"{expected}"')]), "k", "l", "rfc2136")
        assert zone.serial == expected
    journal_matches_memory(store)


def test_commit_keeps_a_newer_serial_given_in_the_changeset(store: Store) -> None:
    zone = zone_of(store)
    new_soa = rr("@", "SOA", "ns1 hostmaster 2030010100 3600 600 604800 300", 3600)
    version = store.commit(zone, Changeset(added=[new_soa]), "k", "l", "rfc2136")
    assert version.serial == zone.serial == 2030010100
    journal_matches_memory(store)


def test_an_older_serial_in_the_changeset_is_bumped_instead(store: Store) -> None:
    """One serial rule for every writer: an added SOA whose serial is not newer
    keeps its other fields, and the serial goes current + 1."""
    zone = zone_of(store)
    before = zone.serial
    old_soa = rr("@", "SOA", "ns1 hostmaster 1 7200 600 604800 300", 3600)
    version = store.commit(zone, Changeset(added=[old_soa]), "k", "l", "import")
    assert version.serial == zone.serial == next_serial(before)
    assert zone.soa().refresh == 7200
    journal_matches_memory(store)


def test_commit_uses_the_stored_owner_case(store: Store) -> None:
    """Records named in another case join the stored name, in journal and memory alike."""
    zone = zone_of(store)
    low = name_to_wire(dns.name.from_text("www2", ORIGIN)).lower()
    (stored,) = zone.records_at(low, dns.rdatatype.A)
    assert stored[0].startswith(b"\x04WwW2")
    shouted = (name_to_wire(dns.name.from_text("WWW2", ORIGIN)), *stored[1:])
    store.commit(zone, Changeset(removed=[shouted]), "k", "l", "rfc2136")
    assert zone.records_at(low) == []
    journal_matches_memory(store)
    store.commit(zone, Changeset(added=[(shouted[0], *rr("x", "TXT", '"t"')[1:])]), "k", "l", "x")
    assert zone.records_at(low)[0][0].startswith(b"\x04WWW2")
    journal_matches_memory(store)
    # one new name spelled two ways in one changeset: the first spelling wins
    two = [rr("Twice", "A", "192.0.2.1"), rr("twice", "A", "192.0.2.2"), rr("TWICE", "TXT", '"t"')]
    store.commit(zone, Changeset(added=two), "k", "l", "x")
    journal_matches_memory(store)
    store.commit(zone, Changeset(removed=[rr("tWICE", "A", "192.0.2.2")]), "k", "l", "x")
    journal_matches_memory(store)
    assert {r[0][:6] for r in zone.records_at(b"\x05twice" + zone.apex)} == {b"\x05Twice"}


def test_group_commit(store: Store) -> None:
    zone = zone_of(store)
    first = Changeset(added=[rr("g1", "A", "192.0.2.1")])
    store.commit(zone, first, "a", "l", "rfc2136")
    second = Changeset(added=[rr("g2", "A", "192.0.2.2")])
    third = Changeset(removed=[rr("g1", "A", "192.0.2.1")])
    store.begin_batch()
    store.commit(zone, second, "b", "l", "rfc2136")
    store.commit(zone, third, "c", "l", "rfc2136")
    versions = store.end_batch()
    assert [v.serial for v in versions] == [2026112503, 2026112504]
    assert [v.who for v in store.journal.versions(KEY, limit=3)] == ["c", "b", "a"]
    journal_matches_memory(store)


@pytest.mark.parametrize("seed_value", [1, 2, 3])
def test_many_random_commits_keep_records_equal_to_memory(
    store: Store, path: Path, seed_value: int
) -> None:
    zone = zone_of(store)
    rng = random.Random(seed_value)
    names = ["a", "b.a", "c", "*.w", "sub", "x.sub", "Mixed", "mixed", "www"]
    for _ in range(150):
        present = sorted(r for r in zone.record_set() if r[1] != dns.rdatatype.SOA)
        removed = rng.sample(present, k=min(len(present), rng.randint(0, 2)))
        added: list[Record] = []
        for _ in range(rng.randint(0, 3)):
            ip = f"192.0.2.{rng.randint(1, 4)}"
            record = rr(rng.choice(names), "A", ip, rng.choice([60, 300]))
            if all(
                (p[0].lower(), p[1], p[3]) != (record[0].lower(), record[1], record[3])
                for p in [*present, *added]
            ):
                added.append(record)
        if not removed and not added:
            continue
        store.commit(zone, Changeset(removed=removed, added=added), "k", "l", "rfc2136")
    journal_matches_memory(store)
    # a restart builds the same zone from the records table
    other = Journal(path)
    try:
        fresh = ZoneData.from_records(ORIGIN, other.load(KEY))
        assert fresh.record_set() == zone.record_set()
        assert fresh.serial == zone.serial
    finally:
        other.close()


# -- replace_content: import and rollback -------------------------------------------------


def test_replace_content_makes_one_new_version(store: Store) -> None:
    zone = zone_of(store)
    wanted = {r for r in seed() if r[0].lower() != name_to_wire(dns.name.from_text("www", ORIGIN))}
    wanted.add(rr("imported", "A", "192.0.2.44"))
    version = store.replace_content(ORIGIN, wanted, "admin", "local", "import")[1]
    assert version is not None and version.channel == "import"
    assert version.serial == zone.serial == 2026112502  # the file's serial is not newer: +1
    non_soa = {r for r in zone.record_set() if r[1] != dns.rdatatype.SOA}
    assert non_soa == {r for r in wanted if r[1] != dns.rdatatype.SOA}
    journal_matches_memory(store)
    # the same content again changes nothing, also with the file's own (older) serial
    assert store.replace_content(ORIGIN, zone.record_set(), "admin", "local", "import")[1] is None
    assert store.replace_content(ORIGIN, wanted, "admin", "local", "import")[1] is None
    assert len(store.journal.versions(KEY)) == 2
    # but another SOA field is a change, even with an older serial
    soa = zone.soa()
    other_soa = rr("@", "SOA", soa.replace(serial=1, refresh=7200).to_text(), 3600)
    changed = {r for r in wanted if r[1] != dns.rdatatype.SOA} | {other_soa}
    version = store.replace_content(ORIGIN, changed, "admin", "local", "import")[1]
    assert version is not None and version.serial == 2026112503
    assert zone.soa().refresh == 7200


def test_replace_content_takes_a_newer_serial_from_the_content(store: Store) -> None:
    zone = zone_of(store)
    content = {r for r in seed() if r[1] != dns.rdatatype.SOA}
    content.add(rr("@", "SOA", "ns1 hostmaster 2030000000 3600 600 604800 300", 3600))
    version = store.replace_content(ORIGIN, content, "admin", "local", "import")[1]
    assert version is not None and zone.serial == 2030000000


def test_replace_content_needs_an_soa(store: Store) -> None:
    with pytest.raises(UserError, match="no SOA"):
        store.replace_content(ORIGIN, {rr("x", "A", "192.0.2.1")}, "a", "l", "import")


def test_rollback_content(store: Store) -> None:
    zone = zone_of(store)
    first = zone.record_set()
    v1 = store.journal.versions(KEY)[0]
    for i in range(3):
        store.commit(zone, Changeset(added=[rr(f"h{i}", "A", f"192.0.2.{i + 1}")]), "k", "l", "x")
    store.commit(zone, Changeset(removed=[rr("www", "A", "192.0.2.10", 3600)]), "k", "l", "x")
    assert store.journal.content_at(KEY, v1) == first
    serial_before = zone.serial
    _plan, version = store.replace_content(
        ORIGIN, store.journal.content_at(KEY, v1), "op", "local", "rollback"
    )
    assert version is not None and version.channel == "rollback"
    assert version.serial == next_serial(serial_before)
    strip = lambda records: {r for r in records if r[1] != dns.rdatatype.SOA}  # noqa: E731
    assert strip(zone.record_set()) == strip(first)
    journal_matches_memory(store)


def test_plan_compares_owners_case_insensitively(store: Store) -> None:
    current = zone_of(store).record_set()
    www = rr("www", "A", "192.0.2.10", 3600)
    upper = (www[0].upper(), *www[1:])
    assert plan_content(ORIGIN, current, (current - {www}) | {upper}).empty
    plan = plan_content(ORIGIN, current, (current - {www}) | {rr("www", "A", "192.0.2.2")})
    assert plan.removed == (www,) and len(plan.added) == 1


# -- two writers on one journal -----------------------------------------------------------


@pytest.fixture
def second(path: Path, store: Store) -> Iterator[Store]:
    journal = Journal(path)
    s = Store(journal, Clock())
    s.open_zone(ORIGIN)
    yield s
    journal.close()


def test_poll_picks_up_another_writers_version(store: Store, second: Store) -> None:
    seen: list[Version | None] = []
    store.listeners.append(lambda z, v: seen.append(v))
    assert store.poll() == []
    version = second.commit(
        zone_of(second), Changeset(added=[rr("cli", "A", "192.0.2.9")]), "admin", "local", "import"
    )
    changed = store.poll()
    assert changed == [zone_of(store)]
    assert zone_of(store).record_set() == zone_of(second).record_set()
    assert zone_of(store).serial == version.serial
    assert [v.id for v in seen if v] == [version.id]
    assert store.poll() == []  # nothing new since
    # and the next local commit follows on from the other writer's version
    mine = store.commit(
        zone_of(store), Changeset(added=[rr("srv", "A", "192.0.2.8")]), "k", "l", "x"
    )
    assert mine.serial == next_serial(version.serial)
    journal_matches_memory(store)


def test_stale_journal_protection(store: Store, second: Store) -> None:
    """A writer whose view is behind the journal gets StaleJournal and writes nothing."""
    zone = zone_of(store)
    theirs = second.commit(
        zone_of(second),
        Changeset(added=[rr("theirs", "A", "192.0.2.1")]),
        "admin",
        "local",
        "rollback",
    )
    with pytest.raises(StaleJournal):
        store.commit(zone, Changeset(added=[rr("mine", "A", "192.0.2.2")]), "k", "l", "rfc2136")
    # nothing of the refused change is served or journaled
    assert zone.record_set() == zone_of(second).record_set()
    assert zone.serial == theirs.serial
    assert store.journal.versions(KEY)[0].id == theirs.id
    store.poll()
    mine = store.commit(zone, Changeset(added=[rr("mine", "A", "192.0.2.2")]), "k", "l", "rfc2136")
    assert mine.serial == next_serial(theirs.serial)
    second.poll()
    assert zone_of(second).record_set() == zone.record_set()
    journal_matches_memory(store)
    journal_matches_memory(second)


def test_prune_limits(path: Path) -> None:
    journal = Journal(path)
    try:
        store = Store(journal, Clock())
        zone = store.open_zone(ORIGIN, seed(), ZoneLimits(max_versions=3))
        for i in range(8):
            store.commit(zone, Changeset(added=[rr(f"p{i}", "A", "192.0.2.1")]), "k", "l", "x")
        assert [v.serial for v in journal.versions(KEY)] == [2026112509, 2026112508, 2026112507]
        journal_matches_memory(store)
    finally:
        journal.close()


def test_prune_by_age(path: Path) -> None:
    journal = Journal(path)
    clock = Clock()
    try:
        store = Store(journal, clock)
        zone = store.open_zone(ORIGIN, seed(), ZoneLimits(max_versions=1000, max_age_days=1))
        store.commit(zone, Changeset(added=[rr("old", "A", "192.0.2.1")]), "k", "l", "x")
        clock.now += 2 * 86400
        store.commit(zone, Changeset(added=[rr("new", "A", "192.0.2.1")]), "k", "l", "x")
        assert [v.serial for v in journal.versions(KEY)] == [2026112503]
    finally:
        journal.close()


def test_group_commit_journals_a_batch_in_one_transaction(path: Path) -> None:
    journal = Journal(path)
    try:
        store = Store(journal, Clock())
        zone = store.open_zone(ORIGIN, seed())
        before = journal.latest_id(KEY)
        seen: list[int] = []
        store.listeners.append(lambda z, v: seen.append(v.id if v else -1))
        store.begin_batch()
        staged = [
            store.commit(zone, Changeset(added=[rr(f"g{i}", "A", "192.0.2.1")]), "k", "l", "x")
            for i in range(5)
        ]
        # Staged: applied in memory (later updates see earlier ones), not journaled yet.
        assert [v.id for v in staged] == [0] * 5
        assert journal.latest_id(KEY) == before
        assert store.in_batch() and seen == []
        versions = store.end_batch()
        assert [v.serial for v in versions] == [2026112502 + i for i in range(5)]
        assert journal.latest_id(KEY) == versions[-1].id and seen == [v.id for v in versions]
        assert not store.in_batch()
        journal_matches_memory(store)
    finally:
        journal.close()


def test_a_failed_group_commit_leaves_memory_as_the_journal_has_it(path: Path) -> None:
    journal = Journal(path)
    other = Journal(path)
    try:
        store = Store(journal, Clock())
        zone = store.open_zone(ORIGIN, seed())
        serial = zone.serial
        store.begin_batch()
        store.commit(zone, Changeset(added=[rr("lost", "A", "192.0.2.9")]), "k", "l", "x")
        # Another process journals a version meanwhile: the batch must fail whole.
        second = Store(other, Clock())
        zone2 = second.open_zone(ORIGIN)
        second.commit(zone2, Changeset(added=[rr("theirs", "A", "192.0.2.8")]), "k", "l", "x")
        with pytest.raises(StaleJournal):
            store.end_batch()
        assert zone.serial == serial + 1  # theirs, not ours
        assert zone.records_at(name_to_wire(dns.name.from_text("lost", ORIGIN))) == []
        journal_matches_memory(store)
    finally:
        journal.close()
        other.close()


def test_records_snapshot_catches_up_and_load_replays_the_rest(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ddns_server.journal as journal_mod

    monkeypatch.setattr(journal_mod, "CHECKPOINT_VERSIONS", 4)
    journal = Journal(path)
    try:
        store = Store(journal, Clock())
        zone = store.open_zone(ORIGIN, seed())
        zone_id = journal.zone_id(KEY)
        assert zone_id is not None
        snapshots = []
        for i in range(11):
            old = zone.records_at(name_to_wire(dns.name.from_text(f"c{i - 1}", ORIGIN)))
            store.commit(
                zone,
                Changeset(removed=old, added=[rr(f"c{i}", "A", f"192.0.2.{i + 1}")]),
                "k",
                "l",
                "x",
            )
            snapshots.append(journal._snapshot_id(zone_id))
            journal_matches_memory(store)  # snapshot + replayed versions == memory
        # The snapshot moved forward every 4 versions, and lags at most 3 behind.
        assert len(set(snapshots)) >= 3
        assert journal.latest_id(KEY) - snapshots[-1] < 4
        # A restart (a second process) loads the same content.
        other = Store(Journal(path), Clock())
        assert other.open_zone(ORIGIN).record_set() == zone.record_set()
        other.journal.close()
    finally:
        journal.close()
