"""The mirror engine over a real journal (SQLite in a temporary folder).

The provider here is an in-memory table behind the Provider interface (the
real providers have their own tests against real peers); it counts calls and
can be told to fail, which is what the engine's rules are about.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import pytest
from zonetext import records_from_text

from ddns_server.journal import Journal
from ddns_server.mirrors import state
from ddns_server.mirrors.base import Change, PermanentError, RRset, TransientError
from ddns_server.mirrors.engine import MAX_BACKOFF, Mirror, backoff, status
from ddns_server.mirrors.spec import MirrorSpec
from ddns_server.store import Store
from ddns_server.zonedata import Changeset, Record, ZoneData, name_to_wire

ORIGIN = dns.name.from_text("dyn.example.test")
ZONE = "dyn.example.test."
ZONE_TEXT = """$ORIGIN dyn.example.test.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 604800 300
@ NS ns1
@ A 192.0.2.1
ns1 A 192.0.2.1
home A 192.0.2.10
home TXT "hello"
lab1.lab A 192.0.2.20
other A 192.0.2.30
"""


def rr(owner: str, rdtype: str, rdata: str, ttl: int = 300) -> Record:
    rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata, origin=ORIGIN, relativize=False)
    return (name_to_wire(dns.name.from_text(owner, ORIGIN)), rd.rdtype, ttl, rd.to_wire())


class Upstream:
    """A provider's zone in memory."""

    def __init__(self) -> None:
        self.rrsets: dict[tuple[str, str], RRset] = {}
        self.reads = 0
        self.applies = 0
        self.fail: Exception | None = None

    def put(self, name: str, rdtype: str, *values: str, ttl: int = 300) -> None:
        self.rrsets[(name, rdtype)] = RRset(name, rdtype, ttl, tuple(sorted(values)))

    def read(self, keys: Iterable[tuple[str, str]] | None = None) -> list[RRset]:
        self.reads += 1
        if self.fail:
            raise self.fail
        if keys is None:
            return list(self.rrsets.values())
        return [self.rrsets[k] for k in keys if k in self.rrsets]

    def apply(self, changes: list[Change]) -> None:
        self.applies += 1
        if self.fail:
            raise self.fail
        for c in changes:
            if c.new is None:
                self.rrsets.pop(c.key, None)
            else:
                self.rrsets[c.key] = c.new

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite3")
    yield j
    j.close()


@pytest.fixture
def store(journal: Journal) -> Store:
    s = Store(journal)
    s.open_zone(ORIGIN, records_from_text(ZONE_TEXT, ORIGIN, "zone"))
    return s


def zone(store: Store) -> ZoneData:
    z = store.zone_for(ORIGIN)
    assert z is not None
    return z


def set_a(store: Store, owner: str, address: str) -> None:
    z = zone(store)
    old = [r for r in z.record_set() if r[0].lower() == rr(owner, "A", address)[0] and r[1] == 1]
    store.commit(z, Changeset(removed=old, added=[rr(owner, "A", address)]), "t", "local", "test")


def make(
    journal: Journal, upstream: Upstream, clock: Clock | None = None, **kwargs: object
) -> Mirror:
    spec = MirrorSpec(
        name="pub",
        provider="memory",
        zone=ZONE,
        upstream_zone=ZONE,
        names=kwargs.pop("names", ("home", "*.lab")),  # type: ignore[arg-type]
        calls_per_second=0,
        resync_interval=0,
        **kwargs,  # type: ignore[arg-type]
    )
    clock = clock or Clock()
    return Mirror(spec, journal, upstream, clock=clock, sleep=clock.sleep, rand=lambda: 0.5)


def test_spec_matching() -> None:
    spec = MirrorSpec("m", "x", ZONE, ZONE, names=("@", "home", "*.lab"))
    assert spec.manages(ZONE, "A")
    assert spec.manages("home.dyn.example.test.", "TXT")
    assert spec.manages("a.lab.dyn.example.test.", "A")
    assert spec.manages("b.a.lab.dyn.example.test.", "AAAA")
    assert not spec.manages("lab.dyn.example.test.", "A")
    assert not spec.manages("other.dyn.example.test.", "A")
    assert not spec.manages("home.dyn.example.test.", "NS")
    default = MirrorSpec("m", "x", ZONE, ZONE)
    assert default.manages("other.dyn.example.test.", "A")
    assert not default.manages(ZONE, "A")


def test_first_sync_pushes_managed_only_and_leaves_the_rest(store: Store, journal: Journal) -> None:
    up = Upstream()
    up.put("other.dyn.example.test.", "A", "203.0.113.1")  # outside the managed names
    mirror = make(journal, up)
    assert mirror.step() is None
    assert set(up.rrsets) == {
        ("home.dyn.example.test.", "A"),
        ("home.dyn.example.test.", "TXT"),
        ("lab1.lab.dyn.example.test.", "A"),
        ("other.dyn.example.test.", "A"),
    }
    assert up.rrsets[("other.dyn.example.test.", "A")].values == ("203.0.113.1",)
    st = state.load(journal.conn, "pub", ZONE)
    assert st.version_id == journal.latest_id(ZONE) and st.serial == zone(store).serial


def test_many_versions_collapse_into_one_push(store: Store, journal: Journal) -> None:
    up = Upstream()
    mirror = make(journal, up)
    mirror.step()
    applies = up.applies
    for i in range(200):
        set_a(store, "home", f"10.0.0.{i % 250}")
    mirror.step()
    assert up.applies == applies + 1
    assert up.rrsets[("home.dyn.example.test.", "A")].values == ("10.0.0.199",)
    st = state.load(journal.conn, "pub", ZONE)
    assert st.version_id == journal.latest_id(ZONE)
    assert status(journal, mirror.spec, 0)["pending"] == 0


def test_delete_and_unmanaged_changes(store: Store, journal: Journal) -> None:
    up = Upstream()
    mirror = make(journal, up)
    mirror.step()
    z = zone(store)
    store.commit(z, Changeset(removed=[rr("home", "TXT", '"hello"')]), "t", "l", "test")
    set_a(store, "other", "192.0.2.99")  # not managed: nothing pushed for it
    applies = up.applies
    mirror.step()
    assert up.applies == applies + 1
    assert ("home.dyn.example.test.", "TXT") not in up.rrsets
    assert ("other.dyn.example.test.", "A") not in up.rrsets


def test_transient_error_keeps_cursor_and_backs_off(store: Store, journal: Journal) -> None:
    up = Upstream()
    clock = Clock()
    mirror = make(journal, up, clock)
    mirror.step()
    before = state.load(journal.conn, "pub", ZONE).version_id
    set_a(store, "home", "10.9.9.9")
    up.fail = TransientError("timed out")
    wait = mirror.step()
    st = state.load(journal.conn, "pub", ZONE)
    assert st.version_id == before and st.error_class == "transient" and wait is not None
    calls = up.applies
    # Woken again before the retry time: no call (no retry storm).
    for _ in range(5):
        mirror.step()
    assert up.applies == calls
    up.fail = None
    clock.now += wait + 0.01
    mirror.step()
    st = state.load(journal.conn, "pub", ZONE)
    assert st.version_id == journal.latest_id(ZONE) and st.error_class is None
    assert up.rrsets[("home.dyn.example.test.", "A")].values == ("10.9.9.9",)


def test_backoff_is_capped_and_honours_retry_after() -> None:
    assert backoff(1, None, lambda: 1.0) == 1.0
    assert backoff(30, None, lambda: 1.0) == MAX_BACKOFF
    assert backoff(1, 42.0, lambda: 0.0) == 42.0
    assert backoff(3, None, lambda: 0.0) == 2.0  # jitter halves at most


def test_permanent_error_stops_until_reset(store: Store, journal: Journal) -> None:
    up = Upstream()
    up.fail = PermanentError("BADKEY")
    mirror = make(journal, up)
    assert mirror.step() is None
    st = state.load(journal.conn, "pub", ZONE)
    assert st.stopped and st.error_class == "permanent" and "BADKEY" in (st.error_message or "")
    calls = up.reads + up.applies
    for _ in range(10):
        mirror.step()
    assert up.reads + up.applies == calls
    up.fail = None
    state.reset_stopped(journal.conn, ["pub"])
    mirror.step()
    assert ("home.dyn.example.test.", "A") in up.rrsets
    assert not state.load(journal.conn, "pub", ZONE).stopped


def test_conflict_left_alone_unless_adopt(store: Store, journal: Journal) -> None:
    up = Upstream()
    up.put("home.dyn.example.test.", "A", "198.51.100.1")  # someone else's
    mirror = make(journal, up)
    mirror.step()
    assert up.rrsets[("home.dyn.example.test.", "A")].values == ("198.51.100.1",)
    st = state.load(journal.conn, "pub", ZONE)
    assert "home.dyn.example.test. A" in st.conflicts
    set_a(store, "home", "10.1.1.1")
    mirror.step()
    assert up.rrsets[("home.dyn.example.test.", "A")].values == ("198.51.100.1",)
    # adopt: true takes it over
    adopting = make(journal, up, adopt=True)
    set_a(store, "home", "10.1.1.2")
    adopting.step()
    assert up.rrsets[("home.dyn.example.test.", "A")].values == ("10.1.1.2",)
    assert state.load(journal.conn, "pub", ZONE).conflicts == []


def test_resync_threshold(store: Store, journal: Journal) -> None:
    up = Upstream()
    z = zone(store)
    store.commit(
        z,
        Changeset(added=[rr(f"h{i}.lab", "A", f"10.2.0.{i}") for i in range(12)]),
        "t",
        "l",
        "test",
    )
    mirror = make(journal, up)
    mirror.step()
    assert len(up.rrsets) == 15
    for i in range(6):  # drift: half of what we wrote changed at the provider
        up.put(f"h{i}.lab.dyn.example.test.", "A", "192.0.2.250")
    plan = mirror.plan()
    assert len(plan.replaces) == 6 and not plan.creates
    assert plan.refusal(0.3, "pub") is not None and "--force" in (plan.refusal(0.3, "pub") or "")
    assert plan.refusal(0.5, "pub") is None
    mirror.apply_plan(plan)  # what --force does
    assert up.rrsets[("h0.lab.dyn.example.test.", "A")].values == ("10.2.0.0",)
    assert mirror.plan().changes == []


def test_pruned_cursor_falls_back_to_full_compare(store: Store, journal: Journal) -> None:
    up = Upstream()
    mirror = make(journal, up)
    mirror.step()
    for i in range(30):
        set_a(store, "home", f"10.3.0.{i}")
    z = zone(store)
    store.commit(z, Changeset(removed=[rr("lab1.lab", "A", "192.0.2.20")]), "t", "l", "test")
    journal.prune(ZONE, 5, 0, 0)
    assert status(journal, mirror.spec, 0)["pending"] is None
    mirror.step()
    assert up.rrsets[("home.dyn.example.test.", "A")].values == ("10.3.0.29",)
    assert ("lab1.lab.dyn.example.test.", "A") not in up.rrsets


def test_rate_limit_spaces_calls(store: Store, journal: Journal) -> None:
    up = Upstream()
    clock = Clock()
    spec = dataclasses.replace(make(journal, up, clock).spec, calls_per_second=2.0)
    mirror = Mirror(
        spec,
        journal,
        up,
        clock=clock,
        sleep=clock.sleep,
    )
    mirror.step()  # read + apply: the second waits half a second
    assert clock.slept == pytest.approx(0.5)
