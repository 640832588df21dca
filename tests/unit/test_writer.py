"""Store.write, the one writer: retry against another process's version,
pre-commit checks, isolated after-commit hooks; and plan.py.

Real SQLite in a temporary folder. "Another process" is a second
Store/Journal pair on the same file, which is what `serve` and a CLI command
are; it writes from inside a pre-commit check, i.e. exactly between the
writer's read of the zone and its journal commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from ddns_server.errors import Refused
from ddns_server.journal import Journal, Version
from ddns_server.plan import PlanRefused, plan_content
from ddns_server.store import WRITE_ATTEMPTS, Store, records_from_file, zone_key
from ddns_server.zonedata import Changeset, Record, ZoneData, name_to_wire

DATA = Path(__file__).resolve().parents[1] / "data"
ORIGIN = dns.name.from_text("dyn.example.test")
KEY = zone_key(ORIGIN)


def rr(owner: str, rdtype: str, rdata: str, ttl: int = 300) -> Record:
    rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata, origin=ORIGIN, relativize=False)
    return (name_to_wire(dns.name.from_text(owner, ORIGIN)), rd.rdtype, ttl, rd.to_wire())


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    journal = Journal(path)
    s = Store(journal)
    s.open_zone(ORIGIN, records_from_file(DATA / "example.zone", ORIGIN))
    yield s
    journal.close()


def zone_of(store: Store) -> ZoneData:
    zone = store.zone_for(ORIGIN)
    assert zone is not None
    return zone


def journal_matches_memory(store: Store) -> None:
    assert set(store.journal.load(KEY)) == zone_of(store).record_set()


class Interloper:
    """Another process that journals a version the first `times` times the
    writer is about to commit (a pre-commit check runs right before it)."""

    def __init__(self, path: Path, times: int = 1) -> None:
        self.store = Store(Journal(path))
        self.store.open_zone(ORIGIN)
        self.times = times
        self.calls = 0
        self.written: list[Record] = []

    def __call__(self, zone: ZoneData, changeset: Changeset, channel: str) -> None:
        self.calls += 1
        if self.calls <= self.times:
            record = rr(f"other{self.calls}", "A", f"198.51.100.{self.calls}")
            self.store.write(ORIGIN, lambda z: Changeset(added=[record]), "op", "local", "import")
            self.written.append(record)

    def close(self) -> None:
        self.store.journal.close()


@pytest.fixture
def interloper(store: Store, path: Path) -> Iterator[Callable[[int], Interloper]]:
    made: list[Interloper] = []

    def make(times: int = 1) -> Interloper:
        other = Interloper(path, times)
        made.append(other)
        store.checks.append(other)
        return other

    yield make
    for other in made:
        other.close()


# -- the retry -----------------------------------------------------------------------------


def test_write_computes_again_on_the_newer_version(store: Store, interloper: Callable) -> None:
    other = interloper(1)
    seen: list[int] = []
    mine = rr("mine", "A", "192.0.2.200")

    def compute(zone: ZoneData) -> Changeset:
        seen.append(zone.serial)
        return Changeset(added=[mine])

    serial = zone_of(store).serial
    version = store.write(ORIGIN, compute, "k", "l", "rfc2136")
    assert version is not None
    # computed twice: the second time on the other process's version
    assert seen == [serial, serial + 1]
    assert version.serial == serial + 2
    content = zone_of(store).record_set()
    assert mine in content and other.written[0] in content
    assert [v.channel for v in store.journal.versions(KEY, 3)] == ["rfc2136", "import", "seed"]
    journal_matches_memory(store)


def test_the_last_attempt_holds_the_lock_and_cannot_lose(
    store: Store, interloper: Callable
) -> None:
    """Another process winning every optimistic attempt: the locked one still lands."""
    other = interloper(WRITE_ATTEMPTS - 1)
    calls: list[int] = []

    def compute(zone: ZoneData) -> Changeset:
        calls.append(zone.serial)
        return Changeset(added=[rr("mine", "A", "192.0.2.200")])

    version = store.write(ORIGIN, compute, "k", "l", "rollback")
    assert version is not None and version.id == store.journal.latest_id(KEY)
    assert len(calls) == WRITE_ATTEMPTS
    assert len(other.written) == WRITE_ATTEMPTS - 1
    assert not store.journal.conn.in_transaction  # the lock was released
    journal_matches_memory(store)


def test_nothing_to_do_writes_no_version(store: Store) -> None:
    before = store.journal.latest_id(KEY)
    assert store.write(ORIGIN, lambda zone: None, "k", "l", "x") is None
    assert store.write(ORIGIN, lambda zone: Changeset(), "k", "l", "x") is None
    assert store.journal.latest_id(KEY) == before


# -- pre-commit checks ---------------------------------------------------------------------


def test_a_pre_commit_check_refuses_and_nothing_changes(store: Store) -> None:
    zone = zone_of(store)
    before = (zone.serial, zone.record_set(), store.journal.latest_id(KEY))
    seen: list[tuple[int, str]] = []

    def too_big(zone: ZoneData, changeset: Changeset, channel: str) -> None:
        seen.append((len(changeset.added), channel))
        raise Refused("too many records")

    store.checks.append(too_big)
    with pytest.raises(Refused):
        store.write(
            ORIGIN, lambda z: Changeset(added=[rr("x", "A", "192.0.2.1")]), "k", "l", "rfc2136"
        )
    assert seen == [(2, "rfc2136")]  # the record and the new SOA: the serial is decided first
    assert (zone.serial, zone.record_set(), store.journal.latest_id(KEY)) == before


# -- after-commit hooks --------------------------------------------------------------------


def broken(zone: ZoneData, version: Version | None) -> None:
    raise RuntimeError("mirror down")


def test_a_raising_listener_does_not_fail_the_write(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    failed: list[str] = []
    store.add_listener(broken)
    store.add_listener(lambda zone, version: calls.append(version.serial if version else 0))
    store.on_hook_error = failed.append
    caplog.set_level(logging.INFO, "ddns_server.store")
    for i in range(3):
        version = store.write(
            ORIGIN, lambda z, i=i: Changeset(added=[rr(f"h{i}", "A", "192.0.2.1")]), "k", "l", "x"
        )
        assert version is not None and version.id == store.journal.latest_id(KEY)
    assert calls == [2026112502, 2026112503, 2026112504]  # the other listener, every time
    assert store.hook_errors == {"broken": 3} and failed == ["broken"] * 3
    # One log line with the traceback; the repeats within a minute are only counted.
    records = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is not None
    journal_matches_memory(store)


def test_a_raising_listener_in_a_group_commit(store: Store) -> None:
    calls: list[int] = []
    store.add_listener(broken)
    store.add_listener(lambda zone, version: calls.append(version.id if version else 0))
    store.begin_batch()
    for i in range(3):
        store.write(
            ORIGIN, lambda z, i=i: Changeset(added=[rr(f"g{i}", "A", "192.0.2.1")]), "k", "l", "x"
        )
    versions = store.end_batch()
    assert [v.id for v in versions] == calls and len(calls) == 3
    assert store.journal.latest_id(KEY) == versions[-1].id
    assert store.hook_errors == {"broken": 3}
    journal_matches_memory(store)


def test_a_listener_on_another_process_version(store: Store, path: Path) -> None:
    """Versions found by poll go through the same isolated hooks."""
    calls: list[int] = []
    store.add_listener(broken)
    store.add_listener(lambda zone, version: calls.append(version.id if version else 0))
    other = Store(Journal(path))
    try:
        other.open_zone(ORIGIN)
        theirs = other.write(
            ORIGIN, lambda z: Changeset(added=[rr("cli", "A", "192.0.2.9")]), "op", "l", "import"
        )
        assert theirs is not None
        assert store.poll() == [zone_of(store)]
        assert calls == [theirs.id] and store.hook_errors == {"broken": 1}
    finally:
        other.journal.close()


def test_a_failing_prune_never_fails_the_write(store: Store) -> None:
    def prune(*args: object) -> int:
        raise OSError("disk trouble")

    store.journal.prune = prune  # type: ignore[method-assign]
    store.limits[zone_of(store).apex].max_versions = 1
    for i in range(3):
        version = store.write(
            ORIGIN, lambda z, i=i: Changeset(added=[rr(f"p{i}", "A", "192.0.2.1")]), "k", "l", "x"
        )
        assert version is not None
    assert store.hook_errors["prune"] >= 1
    journal_matches_memory(store)


# -- plans ---------------------------------------------------------------------------------


def content(store: Store) -> set[Record]:
    return zone_of(store).record_set()


def test_plan_counts_and_apex_flags(store: Store) -> None:
    current = content(store)
    www = rr("www", "A", "192.0.2.10", 3600)
    assert www in current
    wanted = (current - {www}) | {rr("www", "A", "192.0.2.10", 60), rr("new", "A", "192.0.2.7")}
    plan = plan_content(ORIGIN, current, wanted)
    assert (len(plan.removed), len(plan.added), plan.deleted) == (1, 2, 0)  # a TTL change
    assert not plan.apex_ns_changed and not plan.apex_soa_changed and not plan.empty
    assert plan.refusal() is None
    d = plan.to_dict()
    assert (d["removed"], d["added"], d["apex_ns_changed"]) == (1, 2, False)
    assert plan_content(ORIGIN, current, current).empty


def test_plan_refusals(store: Store) -> None:
    current = content(store)
    ns = rr("@", "NS", "ns2.example.net.", 3600)
    assert ns in current
    plan = plan_content(ORIGIN, current, current - {ns})
    assert plan.apex_ns_changed and "--force" in (plan.refusal() or "")
    with pytest.raises(PlanRefused, match="--force"):
        plan.check()
    plan.check(force=True)
    keep = {r for r in current if r[1] in (dns.rdatatype.SOA, dns.rdatatype.NS)}
    mass = plan_content(ORIGIN, current, keep)
    assert mass.delete_share > 0.5 and "max_change_share" in (mass.refusal() or "")
    assert mass.refusal(max_share=0.95) is None


def test_replace_content_refused_by_the_plan_writes_nothing(store: Store) -> None:
    before = store.journal.latest_id(KEY)
    keep = {r for r in content(store) if r[1] in (dns.rdatatype.SOA, dns.rdatatype.NS)}
    with pytest.raises(PlanRefused):
        store.replace_content(ORIGIN, keep, "op", "local", "import", max_share=0.5)
    assert store.journal.latest_id(KEY) == before
    plan, version = store.replace_content(ORIGIN, keep, "op", "local", "import")  # forced
    assert version is not None and plan.deleted == plan.records - (len(keep) - 1)
    assert content(store) - keep == {zone_of(store).soa_record()}


def test_rollback_retries_against_the_newer_version(
    store: Store, interloper: Callable, path: Path
) -> None:
    """A rollback planned on a content another process changes meanwhile: the
    plan is made again on the newest version, and the other change is undone too."""
    v1 = store.journal.versions(KEY)[0]
    store.write(ORIGIN, lambda z: Changeset(added=[rr("late", "A", "192.0.2.5")]), "k", "l", "x")
    other = interloper(1)
    target = store.journal.content_at(KEY, v1)
    plan, version = store.replace_content(ORIGIN, target, "op", "local", "rollback", 0.5)
    assert version is not None and version.channel == "rollback"
    assert other.calls == 2  # the check ran again after the retry
    assert plan.deleted == 2  # "late", and the other process's record
    non_soa = {r for r in content(store) if r[1] != dns.rdatatype.SOA}
    assert non_soa == {r for r in target if r[1] != dns.rdatatype.SOA}
    journal_matches_memory(store)


def test_a_batch_that_cannot_get_the_lock_fails_its_writes_and_changes_nothing(
    store: Store, path: Path
) -> None:
    """Another process holds the journal's write lock beyond the busy timeout:
    each write of the pass fails (the first waits, the others at once)."""
    import sqlite3

    other = Journal(path)
    store.journal.conn.execute("PRAGMA busy_timeout = 50")
    zone = zone_of(store)
    before = (zone.serial, zone.record_set(), store.journal.latest_id(KEY))
    other.begin_locked()
    try:
        store.begin_batch()
        for i in range(3):
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                store.write(
                    ORIGIN,
                    lambda z, i=i: Changeset(added=[rr(f"b{i}", "A", "192.0.2.1")]),
                    "k",
                    "l",
                    "x",
                )
        assert store.end_batch() == []
    finally:
        other.rollback_locked()
        other.close()
    assert (zone.serial, zone.record_set(), store.journal.latest_id(KEY)) == before
    # the next pass gets the lock again
    store.begin_batch()
    store.write(ORIGIN, lambda z: Changeset(added=[rr("b", "A", "192.0.2.1")]), "k", "l", "x")
    assert [v.serial for v in store.end_batch()] == [before[0] + 1]
    journal_matches_memory(store)
