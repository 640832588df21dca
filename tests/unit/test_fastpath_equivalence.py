"""The hand-parsed fast path gives byte for byte what the dnspython path gives.

Issue 5: `QueryEngine.answer(wire, udp)` must answer every plain query exactly
as `DnsHandler.handle_full(wire, source, tcp)` does. Checked over every name of
the test zones (plus empty non-terminals, absent names, wildcard matches and
names below a cut), the common query types, without EDNS, with EDNS, with DO,
with small and large payloads, in mixed case, over UDP and TCP; then again
after the zone has been changed in place many times (delegations appearing and
going, which the fast path's shortcut depends on).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from ddns_server.dnsmsg import DnsHandler
from ddns_server.query import QueryEngine
from ddns_server.store import records_from_file
from ddns_server.zonedata import Changeset, Record, ZoneData, name_to_wire, wire_to_name

DATA = Path(__file__).resolve().parents[1] / "data"
ZONES = {
    "dyn.example.test.": DATA / "example.zone",
    "wild.example.test.": DATA / "wild.zone",
    "dname.example.test.": DATA / "dname.zone",  # RFC 6672 (issue 14, item 16)
}
QTYPES = ["A", "AAAA", "MX", "TXT", "NS", "SOA", "CNAME", "DS", "ANY", "SRV", "PTR", "CAA"]
# (use_edns, payload, DO)
EDNS_SHAPES = [
    (False, 0, False),
    (0, 512, False),
    (0, 1232, False),
    (0, 4096, True),
    (0, 600, True),
]
SOURCE = ("127.0.0.1", 5300)


def load() -> tuple[QueryEngine, DnsHandler, dict[str, ZoneData]]:
    zones = {}
    for text, path in ZONES.items():
        origin = dns.name.from_text(text)
        zones[text] = ZoneData.from_records(origin, records_from_file(path, origin))
    engine = QueryEngine({zone.apex: zone for zone in zones.values()})
    return engine, DnsHandler(engine, {}), zones


def names_of(zone: ZoneData) -> list[str]:
    """Every owner and empty non-terminal, and names around them."""
    names = set()
    for low in itertools.chain(zone.nodes, zone.below):
        name = wire_to_name(low)
        names.add(name.to_text())
        if name != zone.origin:
            names.add(dns.name.Name((b"absent",) + name.labels).to_text())
            names.add(dns.name.Name((b"two", b"deep") + name.labels).to_text())
            if len(name) < 4:
                # long enough that a DNAME's target passes 255 octets: YXDOMAIN
                names.add(dns.name.Name((b"q" * 63, b"r" * 60) + name.labels).to_text())
            if name.labels[0] == b"*":
                names.add(dns.name.Name((b"match",) + name.labels[1:]).to_text())
                names.add(dns.name.Name((b"two", b"deep") + name.labels[1:]).to_text())
    names.add("outside.example.org.")
    names.add("example.test.")
    return sorted(names)


def mixed_case(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)


def query_wire(name: str, qtype: str, shape: tuple[object, int, bool], ident: int) -> bytes:
    use_edns, payload, do = shape
    if use_edns is False:
        query = dns.message.make_query(name, qtype, use_edns=False)
    else:
        query = dns.message.make_query(name, qtype, use_edns=0, payload=payload, want_dnssec=do)
    query.id = ident
    return query.to_wire()  # type: ignore[no-any-return]


def check(engine: QueryEngine, handler: DnsHandler, wire: bytes) -> None:
    """Both paths agree over UDP and TCP, also when the answer comes from the
    fast path's memory (the same query again, with another ID)."""
    again = bytes([wire[0] ^ 0x5A, wire[1]]) + wire[2:]
    for tcp, query in ((False, wire), (True, wire), (False, again), (True, again)):
        fast = engine.answer(query, not tcp)
        assert fast is not None, "a plain query must take the fast path"
        (full,) = handler.handle_full(query, SOURCE, tcp)
        if fast != full:
            pytest.fail(
                f"fast != full over {'TCP' if tcp else 'UDP'}\nquery: "
                f"{dns.message.from_wire(query).question}\nfast: {dns.message.from_wire(fast)}"
                f"\nfull: {dns.message.from_wire(full)}"
            )


def cases(zones: dict[str, ZoneData]) -> Iterator[tuple[str, str, tuple[object, int, bool]]]:
    for zone in zones.values():
        # one long CNAME chain is enough: the others only repeat it
        for name in [n for n in names_of(zone) if "c20-" not in n or n.startswith("c20-0.")]:
            for qtype in QTYPES:
                for shape in EDNS_SHAPES:
                    yield name, qtype, shape


@pytest.mark.parametrize("zone_name", list(ZONES))
def test_fast_path_equals_full_path(zone_name: str) -> None:
    engine, handler, zones = load()
    rng = random.Random(zone_name)
    count = 0
    for name, qtype, shape in cases({zone_name: zones[zone_name]}):
        check(engine, handler, query_wire(name, qtype, shape, rng.randrange(65536)))
        if shape == EDNS_SHAPES[-1]:
            # the same question in mixed case (as 0x20-randomising resolvers send it)
            check(engine, handler, query_wire(mixed_case(name, rng), qtype, shape, 7))
        count += 1
    assert count > 500


def test_flags_and_odd_queries_equal() -> None:
    """RD/CD/AD bits, BADVERS, REFUSED and TC answers take the same form on both paths."""
    engine, handler, _ = load()
    base = dns.message.make_query("www.dyn.example.test.", "A", use_edns=False).to_wire()
    for flags in (0x0000, 0x0100, 0x0010, 0x0020, 0x0110, 0x0200):
        wire = base[:2] + (int.from_bytes(base[2:4], "big") & ~0x0100 | flags).to_bytes(2, "big")
        check(engine, handler, wire + base[4:])
    for do in (False, True):
        badvers = dns.message.make_query("www.dyn.example.test.", "A", use_edns=1, want_dnssec=do)
        check(engine, handler, badvers.to_wire())
        check(engine, handler, query_wire("big.dyn.example.test.", "TXT", (0, 512, do), 1))
    check(engine, handler, query_wire("big.dyn.example.test.", "TXT", (False, 0, False), 1))
    check(engine, handler, query_wire("c20-0.wild.example.test.", "A", (False, 0, False), 1))
    check(engine, handler, query_wire("anything.org.", "A", (0, 1232, True), 1))


def rr(owner: str, rdtype: str, rdata: str, origin: dns.name.Name) -> Record:
    rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata, origin=origin, relativize=False)
    return (name_to_wire(dns.name.from_text(owner, origin)), rd.rdtype, 300, rd.to_wire())


def test_equal_after_many_changes() -> None:
    """Delegations, wildcards and ENTs come and go; both paths keep agreeing."""
    engine, handler, zones = load()
    zone = zones["dyn.example.test."]
    origin = zone.origin
    rng = random.Random(5)
    pool = [
        rr("www", "NS", "ns.www", origin),
        rr("ns.www", "A", "192.0.2.9", origin),
        rr("sub", "NS", "ns.sub", origin),
        rr("ns.sub", "A", "192.0.2.53", origin),
        rr("x.sub", "A", "192.0.2.54", origin),
        rr("*.sub", "A", "192.0.2.55", origin),
        rr("*", "TXT", '"apex wildcard"', origin),
        rr("a.b.c", "A", "192.0.2.30", origin),
        rr("deep.a.b.c", "NS", "ns.example.net.", origin),
        rr("alias", "CNAME", "x.sub", origin),
        rr("new", "AAAA", "2001:db8::5", origin),
        rr("b.c", "DNAME", "sub", origin),
        rr("alias2", "DNAME", "a.b.c", origin),
        rr("zz", "DNAME", "new", origin),
    ]
    names = [
        "www",
        "ns.www",
        "sub",
        "ns.sub",
        "x.sub",
        "y.sub",
        "q.x.sub",
        "zz",
        "a.b.c",
        "b.c",
        "deep.a.b.c",
        "x.deep.a.b.c",
        "alias",
        "new",
        "c",
        "x.c",
        "x.b.c",
        "deep.alias2",
        "x.zz",
        "zz",
    ]
    for _ in range(60):
        present = zone.record_set()
        change = Changeset()
        for record in rng.sample(pool, k=3):
            exact = next(
                (
                    p
                    for p in present
                    if p[0].lower() == record[0].lower() and p[1] == record[1] and p[3] == record[3]
                ),
                None,
            )
            if exact is not None:
                change.removed.append(exact)
            else:
                change.added.append(record)
        zone.apply(change)
        for name in names:
            for qtype in ("A", "NS", "DS", "TXT"):
                fqdn = f"{name}.dyn.example.test."
                check(engine, handler, query_wire(fqdn, qtype, (0, 1232, False), 9))


@pytest.mark.parametrize("qtype", [41, 249, 250, 251, 252, 253, 254])
def test_meta_types_take_the_full_path(qtype: int) -> None:
    """OPT, TKEY, TSIG, IXFR, AXFR, MAILB, MAILA are never answered as data."""
    engine, _, _ = load()
    wire = query_wire("www.dyn.example.test.", "A", (False, 0, False), 1)
    assert engine.answer(wire[:-4] + qtype.to_bytes(2, "big") + b"\x00\x01", True) is None


@pytest.mark.parametrize("qtype", [0, 255, 256, 257, 32769, 65535])
def test_data_types_above_255_take_the_fast_path(qtype: int) -> None:
    engine, handler, _ = load()
    wire = query_wire("www.dyn.example.test.", "A", (0, 1232, False), 1)
    check(engine, handler, wire[:-15] + qtype.to_bytes(2, "big") + wire[-13:])


def test_labels_holding_zero_octets_equal() -> None:
    """The fast path's first guess ends the name at the first zero octet; a
    label may hold one (or something that looks like a whole name): both
    paths must still read the same question."""
    engine, handler, _ = load()
    origin = dns.name.from_text("dyn.example.test.")
    www = name_to_wire(dns.name.from_text("www", origin))
    odd_labels = [b"a\x00b", b"\x00", b"\x00\x00\x01\x00\x01", www, www[:4], b"\x01\x00"]
    for label in odd_labels:
        for below in (dns.name.from_text("www", origin), origin):
            name = dns.name.Name((label, *below.labels))
            for shape in EDNS_SHAPES:
                wire = dns.message.make_query(name, "A", use_edns=shape[0], payload=shape[1])
                check(engine, handler, wire.to_wire())


def test_edns_options_and_odd_opt_records() -> None:
    """An OPT with options (a cookie) takes the walk; an OPT whose length does
    not match the message is not answered here."""
    engine, handler, _ = load()
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)
    query = dns.message.make_query("www.dyn.example.test.", "A", use_edns=0, options=[cookie])
    check(engine, handler, query.to_wire())
    wire = query_wire("www.dyn.example.test.", "A", (0, 1232, False), 3)
    assert wire[-2:] == b"\x00\x00"
    assert engine.answer(wire[:-2] + b"\x00\x04", True) is None  # says 4 octets follow, none do
