"""ZoneData, the compact in-memory zone: building, changing in place, reading back.

The invariant that matters most: after any sequence of `apply` calls the zone
is the same as one built from scratch from the resulting records (nodes, the
empty-non-terminal counts, cuts, occluded names, wildcards, record count, SOA).
"""

from __future__ import annotations

import random
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from ddns_server.store import records_from_file
from ddns_server.zonedata import (
    Changeset,
    Record,
    ZoneData,
    is_subdomain,
    name_to_wire,
    parent,
    split_rrset,
    tails,
    wire_to_name,
)

DATA = Path(__file__).resolve().parents[1] / "data"
ORIGIN = dns.name.from_text("dyn.example.test")
WILD_ORIGIN = dns.name.from_text("wild.example.test")


def w(text: str) -> bytes:
    """Lower-cased wire of an absolute or zone-relative name."""
    return name_to_wire(dns.name.from_text(text, ORIGIN)).lower()


def rr(
    owner: str, rdtype: str, rdata: str, ttl: int = 3600, origin: dns.name.Name = ORIGIN
) -> Record:
    rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata, origin=origin, relativize=False)
    return (name_to_wire(dns.name.from_text(owner, origin)), rd.rdtype, ttl, rd.to_wire())


def example_records() -> list[Record]:
    return records_from_file(DATA / "example.zone", ORIGIN)


def example() -> ZoneData:
    return ZoneData.from_records(ORIGIN, example_records())


def shape(zone: ZoneData) -> dict[str, object]:
    """Everything a query or an update reads, in an order-free form."""
    return {
        "nodes": {
            low: {rdtype: (count, sorted(tails(wire))) for rdtype, (count, wire) in node.items()}
            for low, node in zone.nodes.items()
        },
        "case": dict(zone.case),
        "below": dict(zone.below),
        "cuts": set(zone.cuts),
        "occluded": set(zone.occluded),
        "wildcards": zone.wildcards,
        "serial": zone.serial,
        "record_count": zone.record_count,
        "negative_soa": zone.negative_soa,
    }


# -- helpers ----------------------------------------------------------------------


def test_parent_and_is_subdomain() -> None:
    assert parent(w("a.b")) == w("b")
    assert parent(w("dyn.example.test.")) == w("example.test.")
    assert is_subdomain(w("a.b"), w("@"))
    assert is_subdomain(w("@"), w("@"))
    assert not is_subdomain(w("example.test."), w("@"))
    # a suffix that is not on a label boundary is not a parent
    assert not is_subdomain(w("xdyn.example.test."), w("@"))
    assert not is_subdomain(name_to_wire(dns.name.from_text("adyn.example.test.")), w("@"))


def test_wire_round_trip() -> None:
    name = dns.name.from_text("MiXeD.dyn.example.test.")
    assert wire_to_name(name_to_wire(name)) == name
    assert wire_to_name(name_to_wire(name)).to_text() == "MiXeD.dyn.example.test."


# -- building ----------------------------------------------------------------------


def test_from_records_indexes_the_example_zone() -> None:
    records = example_records()
    zone = ZoneData.from_records(ORIGIN, records)
    assert zone.apex == w("@")
    assert zone.serial == 2026112501
    assert zone.record_count == len(records)
    # owners are lower-cased keys; the stored spelling is kept aside
    assert w("www2") in zone.nodes
    assert zone.case[w("www2")] == name_to_wire(dns.name.from_text("WwW2", ORIGIN))
    assert zone.owner_wire(w("www2")).startswith(b"\x04WwW2")
    assert zone.cuts == {w("sub")}
    assert zone.occluded == {w("sub"), w("ns.sub")}
    assert zone.wildcards == 2  # *.wild and *.wildcname
    # empty non-terminals: c and b.c (a.b.c exists), wild (only *.wild exists)
    for ent in ("c", "b.c", "wild", "wildcname"):
        assert w(ent) not in zone.nodes
        assert zone.below[w(ent)] >= 1
    assert zone.below[w("@")] == len(zone.nodes) - 1


def test_negative_soa_ttl_is_min_of_soa_ttl_and_minimum() -> None:
    """RFC 2308 §3: the SOA in a negative answer has TTL min(SOA TTL, minimum)."""
    zone = example()  # SOA TTL 3600, minimum 300
    rdtype, ttl, _ = next(split_rrset(b"\xc0\x0c" + zone.negative_soa))
    assert (rdtype, ttl) == (dns.rdatatype.SOA, 300)
    wild = ZoneData.from_records(WILD_ORIGIN, records_from_file(DATA / "wild.zone", WILD_ORIGIN))
    _, ttl, _ = next(split_rrset(b"\xc0\x0c" + wild.negative_soa))
    assert ttl == 600  # SOA TTL 600, minimum 3600


def test_records_round_trip_soa_first() -> None:
    records = example_records()
    zone = ZoneData.from_records(ORIGIN, records)
    out = list(zone.records())
    assert out[0][1] == dns.rdatatype.SOA
    assert sorted(out) == sorted(records)
    assert zone.record_set() == set(records)


def test_readers() -> None:
    zone = example()
    www = dns.name.from_text("WWW", ORIGIN)
    rdataset = zone.rdataset(www, dns.rdatatype.A)
    assert rdataset is not None and [r.to_text() for r in rdataset] == ["192.0.2.10"]
    assert rdataset.ttl == 3600
    assert zone.rdataset(www, dns.rdatatype.MX) is None
    assert sorted(zone.rdtypes(www)) == [dns.rdatatype.A, dns.rdatatype.AAAA]
    assert len(zone.records_at(w("big"), dns.rdatatype.TXT)) == 6
    assert zone.records_at(w("nothere")) == []
    assert zone.soa().serial == 2026112501
    assert zone.soa_record()[1] == dns.rdatatype.SOA


# -- changing ------------------------------------------------------------------------


def test_apply_add_and_remove_a_name() -> None:
    zone = example()
    count = zone.record_count
    new = rr("x.y.z", "A", "192.0.2.77")
    zone.apply(Changeset(added=[new]))
    assert zone.records_at(w("x.y.z")) == [new]
    assert zone.below[w("y.z")] == 1 and zone.below[w("z")] == 1
    assert zone.record_count == count + 1
    zone.apply(Changeset(removed=[new]))
    assert w("x.y.z") not in zone.nodes
    assert w("y.z") not in zone.below and w("z") not in zone.below
    assert zone.record_count == count
    assert shape(zone) == shape(example())


def test_apply_keeps_rrset_order_and_ignores_duplicates() -> None:
    zone = example()
    first, second = rr("www", "A", "192.0.2.10"), rr("www", "A", "192.0.2.11")
    zone.apply(Changeset(added=[second, first]))  # first is already there
    assert [r[3] for r in zone.records_at(w("www"), dns.rdatatype.A)] == [first[3], second[3]]
    assert zone.nodes[w("www")][dns.rdatatype.A][0] == 2


def test_apply_keeps_the_stored_owner_case() -> None:
    zone = example()
    zone.apply(Changeset(added=[rr("WWW2", "TXT", '"x"')]))
    assert zone.owner_wire(w("www2")).startswith(b"\x04WwW2")
    zone.apply(Changeset(added=[rr("NewName", "A", "192.0.2.1")]))
    assert zone.owner_wire(w("newname")).startswith(b"\x07NewName")


def test_apply_moves_the_serial_and_negative_soa() -> None:
    zone = example()
    old = zone.soa_record()
    new = rr("@", "SOA", "ns1 hostmaster 2026112502 3600 600 604800 60")
    zone.apply(Changeset(removed=[old], added=[new]))
    assert zone.serial == 2026112502
    _, ttl, _ = next(split_rrset(b"\xc0\x0c" + zone.negative_soa))
    assert ttl == 60


def test_apply_delegation_comes_and_goes() -> None:
    zone = example()
    ns = rr("www", "NS", "ns.www")
    glue = rr("ns.www", "A", "192.0.2.9")
    zone.apply(Changeset(added=[glue]))
    assert w("ns.www") not in zone.occluded
    zone.apply(Changeset(added=[ns]))
    assert w("www") in zone.cuts
    assert {w("www"), w("ns.www")} <= zone.occluded
    zone.apply(Changeset(removed=[ns]))
    assert w("www") not in zone.cuts
    assert w("www") not in zone.occluded and w("ns.www") not in zone.occluded
    assert zone.cuts == {w("sub")}


def test_apply_wildcard_count() -> None:
    zone = example()
    star = rr("*.new", "A", "192.0.2.1")
    zone.apply(Changeset(added=[star]))
    assert zone.wildcards == 3
    zone.apply(Changeset(removed=[star]))
    assert zone.wildcards == 2


NAMES = ["www", "WWW", "a.b", "A.b.c", "x.sub", "sub", "*.w", "deep.er.name", "ns.sub", "c", "new"]
TYPES = [("A", "192.0.2.{}"), ("AAAA", "2001:db8::{}"), ("TXT", '"t{}"'), ("NS", "ns{}.example.")]


@pytest.mark.parametrize("seed", range(5))
def test_random_changes_equal_a_fresh_build(seed: int) -> None:
    """Many applies in a row leave exactly what from_records builds."""
    rng = random.Random(seed)
    zone = example()
    content = {(o.lower(), t, ttl, r): (o, t, ttl, r) for o, t, ttl, r in example_records()}
    for _ in range(200):
        removed: list[Record] = []
        added: list[Record] = []
        present = [rec for rec in content.values() if rec[1] != dns.rdatatype.SOA]
        for rec in rng.sample(present, k=min(len(present), rng.randint(0, 3))):
            removed.append(rec)
        for _ in range(rng.randint(0, 3)):
            rdtype, fmt = rng.choice(TYPES)
            name = rng.choice(NAMES)
            record = rr(name, rdtype, fmt.format(rng.randint(1, 5)))
            key = (record[0].lower(), record[1], record[2], record[3])
            if (
                key in content
                or any((a[0].lower(), a[1], a[2], a[3]) == key for a in added)
                or any((r[0].lower(), r[1], r[2], r[3]) == key for r in removed)
            ):
                continue
            added.append(record)
        zone.apply(Changeset(removed=removed, added=added))
        for rec in removed:
            del content[(rec[0].lower(), rec[1], rec[2], rec[3])]
        for rec in added:
            # the zone keeps the case of the first spelling of a name
            owner = zone.owner_wire(rec[0].lower())
            content[(rec[0].lower(), rec[1], rec[2], rec[3])] = (owner, *rec[1:])
        fresh = ZoneData.from_records(ORIGIN, list(content.values()))
        assert shape(zone) == shape(fresh)
    assert zone.record_set() == set(content.values())
