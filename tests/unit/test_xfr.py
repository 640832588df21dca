"""AXFR/IXFR out (ddns_server.xfr): content, splitting, IXFR condensing, ACLs, TSIG.

Every transfer is read back with dnspython's client side (dns.message.from_wire
with multi-message TSIG, and dns.xfr.Inbound applying it to a dnspython zone),
so the messages are checked the way a secondary reads them. No sockets.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
import dns.tsig
import dns.versioned
import dns.xfr
import dns.zone
import pytest
from zonetext import records_from_text

from ddns_server.config import Zone as ZoneConfig
from ddns_server.dnsmsg import DnsHandler
from ddns_server.journal import Journal
from ddns_server.query import QueryEngine
from ddns_server.store import Store, ZoneLimits, records_from_file
from ddns_server.xfr import MESSAGE_SIZE, TransferAcl, TransferProcessor
from ddns_server.zonedata import Changeset, Record, ZoneData, name_to_wire

ORIGIN = dns.name.from_text("dyn.example.test")
XFR_KEY = dns.tsig.Key("xfr-key.", b"x" * 32, dns.tsig.HMAC_SHA256)
OTHER_KEY = dns.tsig.Key("other-key.", b"o" * 32, dns.tsig.HMAC_SHA512)
KEYRING = {XFR_KEY.name: XFR_KEY, OTHER_KEY.name: OTHER_KEY}
ALLOWED = ("127.0.0.1", 40000)
DENIED = ("192.0.2.200", 40000)

# One record as compared here: (owner text lower-case, type, ttl, rdata text).
Row = tuple[str, int, int, str]


class Clock:
    def __init__(self) -> None:
        # Real time to start with: dnspython checks TSIG times against its own clock.
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Setup:
    """A journal, a store with the test zone, a processor and a DnsHandler."""

    def __init__(
        self,
        tmp_path: Path,
        test_data: Path,
        *,
        networks: tuple[str, ...] = ("127.0.0.0/8",),
        keys: tuple[dns.name.Name, ...] = (XFR_KEY.name,),
        message_size: int = MESSAGE_SIZE,
        limits: ZoneLimits | None = None,
        records: list[Record] | None = None,
    ) -> None:
        self.clock = Clock()
        self.journal = Journal(tmp_path / "journal.sqlite3")
        self.store = Store(self.journal, clock=self.clock)
        seed = (
            records
            if records is not None
            else records_from_file(test_data / "example.zone", ORIGIN)
        )
        self.zone = self.store.open_zone(ORIGIN, seed, limits)
        self.config = ZoneConfig(
            name=ORIGIN,
            file=None,
            allow_transfer_networks=networks,
            allow_transfer_keys=keys,
        )
        self.processor = TransferProcessor(
            self.store, [self.config], clock=self.clock, message_size=message_size
        )
        self.handler = DnsHandler(
            QueryEngine(self.store.zones), KEYRING, transfers=self.processor, clock=self.clock
        )

    def transfer(
        self, query: dns.message.Message, source: tuple[str, int] = ALLOWED, tcp: bool = True
    ) -> list[bytes]:
        return self.handler.handle(query.to_wire(), source, tcp)

    def commit(self, removed: Iterable[str] = (), added: Iterable[str] = ()) -> int:
        """One new version from master-file lines; its serial."""
        version = self.store.commit(
            self.zone,
            Changeset(removed=[record(t) for t in removed], added=[record(t) for t in added]),
            "test-key",
            "127.0.0.1",
            "rfc2136",
        )
        return version.serial


def record(text: str) -> Record:
    """'name ttl type rdata' (names relative to the zone) as a Record."""
    name, ttl, rdtype, rdata = text.split(None, 3)
    rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata, origin=ORIGIN)
    owner = dns.name.from_text(name, ORIGIN)
    return (name_to_wire(owner), rd.rdtype, int(ttl), rd.to_wire())


def rows_of_zone(zone: ZoneData) -> set[Row]:
    return {rows_of_record(rr) for rr in zone.records()}


def rows_of_record(rr: Record) -> Row:
    owner, rdtype, ttl, rdata = rr
    rd = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, rdata, 0, len(rdata))
    name = dns.name.from_wire(owner, 0)[0]
    return (name.to_text().lower(), rdtype, ttl, rd.to_text())


def rows_of_dnspython(zone: dns.zone.Zone) -> set[Row]:
    rows = set()
    for name, rdataset in zone.iterate_rdatasets():
        for rd in rdataset:
            rows.add(
                (
                    name.derelativize(ORIGIN).to_text().lower(),
                    rdataset.rdtype,
                    rdataset.ttl,
                    rd.to_text(origin=ORIGIN, relativize=False),
                )
            )
    return rows


def xfr_query(
    rdtype: str = "AXFR",
    *,
    serial: int | None = None,
    key: dns.tsig.Key | None = None,
    name: dns.name.Name = ORIGIN,
    soa: Record | None = None,
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if rdtype == "IXFR":
        assert serial is not None and soa is not None
        rd = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.SOA, soa[3], 0, len(soa[3]))
        assert isinstance(rd, dns.rdtypes.ANY.SOA.SOA)
        rrset = query.find_rrset(
            query.authority, name, dns.rdataclass.IN, dns.rdatatype.SOA, create=True
        )
        rrset.add(rd.replace(serial=serial), 0)
    if key is not None:
        query.use_tsig(key)
    return query


def read_messages(query: dns.message.Message, wires: list[bytes]) -> list[dns.message.Message]:
    """Parse a transfer as dns.query's inbound side does (TSIG checked on each)."""
    is_ixfr = query.question[0].rdtype == dns.rdatatype.IXFR
    messages = []
    tsig_ctx = None
    for i, wire in enumerate(wires):
        message = dns.message.from_wire(
            wire,
            keyring=query.keyring,
            request_mac=query.mac,
            xfr=True,
            origin=ORIGIN,
            tsig_ctx=tsig_ctx,
            multi=True,
            one_rr_per_rrset=is_ixfr,
        )
        assert query.is_response(message, xfr_continuation=i > 0)
        tsig_ctx = message.tsig_ctx
        messages.append(message)
    return messages


def apply_transfer(
    query: dns.message.Message, wires: list[bytes], zone: dns.versioned.Zone
) -> dns.versioned.Zone:
    """Apply a transfer to a dnspython zone with dns.xfr.Inbound (a real client)."""
    rdtype = query.question[0].rdtype
    serial = None
    if rdtype == dns.rdatatype.IXFR:
        serial = dns.xfr.extract_serial_from_query(query)
    done = False
    with dns.xfr.Inbound(zone, rdtype, serial) as inbound:
        for message in read_messages(query, wires):
            assert not done, "messages after the transfer ended"
            done = inbound.process_message(message)
    assert done, "the transfer did not end with the SOA"
    return zone


def answer_rows(messages: list[dns.message.Message]) -> list[tuple[str, int]]:
    """(owner, type) of every answer record, in order (IXFR: one per rrset)."""
    out = []
    for message in messages:
        for rrset in message.answer:
            for _rd in rrset:
                out.append((absolute(rrset).lower(), rrset.rdtype))
    return out


def absolute(rrset: dns.rrset.RRset) -> str:
    """The owner as absolute text (transfers are parsed relative to the origin)."""
    return str(rrset.name.derelativize(ORIGIN).to_text())


def rcode_of(wires: list[bytes], query: dns.message.Message) -> int:
    assert len(wires) == 1
    response = dns.message.from_wire(wires[0], keyring=query.keyring, request_mac=query.mac)
    assert response.id == query.id
    return response.rcode()


@pytest.fixture
def setup(tmp_path: Path, test_data: Path) -> Setup:
    return Setup(tmp_path, test_data)


def big_zone_records(count: int) -> list[Record]:
    lines = [
        "$ORIGIN dyn.example.test.",
        "@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 300",
        "@ 3600 IN NS ns1",
        "ns1 3600 IN A 192.0.2.1",
        "multi 300 IN TXT " + " ".join(f'"{"x" * 200}{i}"' for i in range(3)),
    ]
    lines += [f"h{i} 60 IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(count)]
    return records_from_text("\n".join(lines) + "\n", ORIGIN, "big.zone")


# -- AXFR ---------------------------------------------------------------------------


def test_axfr_content_equals_zone(setup: Setup) -> None:
    query = xfr_query()
    wires = setup.transfer(query)
    messages = read_messages(query, wires)
    first = messages[0]
    assert first.flags & dns.flags.AA and first.flags & dns.flags.QR
    assert first.rcode() == dns.rcode.NOERROR
    rows = answer_rows(messages)
    assert rows[0] == ("dyn.example.test.", dns.rdatatype.SOA)
    assert rows[-1] == ("dyn.example.test.", dns.rdatatype.SOA)
    assert [r for r in rows[1:-1] if r[1] == dns.rdatatype.SOA] == []
    zone = apply_transfer(query, wires, dns.versioned.Zone(ORIGIN))
    assert rows_of_dnspython(zone) == rows_of_zone(setup.zone)
    # The stored owner case goes out as stored (WwW2 in the file).
    names = {absolute(rrset) for m in messages for rrset in m.answer}
    assert "WwW2.dyn.example.test." in names


def test_axfr_split_into_small_messages(tmp_path: Path, test_data: Path) -> None:
    setup = Setup(tmp_path, test_data, message_size=512)
    query = xfr_query()
    wires = setup.transfer(query)
    assert len(wires) > 3
    assert all(len(w) <= 512 for w in wires)
    messages = read_messages(query, wires)
    # RFC 5936 §2.2.1: the question in the first message only (as BIND).
    assert len(messages[0].question) == 1
    assert all(len(m.question) == 0 for m in messages[1:])
    zone = apply_transfer(query, wires, dns.versioned.Zone(ORIGIN))
    assert rows_of_dnspython(zone) == rows_of_zone(setup.zone)


def test_axfr_large_zone(tmp_path: Path, test_data: Path) -> None:
    setup = Setup(tmp_path, test_data, records=big_zone_records(5000))
    query = xfr_query()
    wires = setup.transfer(query)
    assert len(wires) > 3
    assert all(len(w) <= MESSAGE_SIZE for w in wires)
    zone = apply_transfer(query, wires, dns.versioned.Zone(ORIGIN))
    assert rows_of_dnspython(zone) == rows_of_zone(setup.zone)
    assert setup.zone.record_count == 5004


def test_axfr_with_edns_has_opt_in_every_message(tmp_path: Path, test_data: Path) -> None:
    setup = Setup(tmp_path, test_data, message_size=600)
    query = xfr_query()
    query.use_edns(0, payload=1232)
    messages = read_messages(query, setup.transfer(query))
    assert len(messages) > 1
    assert all(m.edns == 0 for m in messages)


def test_axfr_over_udp_is_formerr(setup: Setup) -> None:
    serial = setup.zone.serial
    query = xfr_query()
    assert rcode_of(setup.transfer(query, tcp=False), query) == dns.rcode.FORMERR
    assert setup.zone.serial == serial


# -- access -------------------------------------------------------------------------


def test_acl_network_allows_and_refuses(setup: Setup) -> None:
    before = rows_of_zone(setup.zone)
    serial = setup.zone.serial
    query = xfr_query()
    assert len(setup.transfer(query, ("127.0.0.5", 1000))) >= 1
    assert rcode_of(setup.transfer(query, DENIED), query) == dns.rcode.REFUSED
    assert rcode_of(setup.transfer(query, ("::1", 1000)), query) == dns.rcode.REFUSED
    query = xfr_query("IXFR", serial=serial - 1, soa=setup.zone.soa_record())
    assert rcode_of(setup.transfer(query, DENIED), query) == dns.rcode.REFUSED
    assert rows_of_zone(setup.zone) == before and setup.zone.serial == serial


def test_acl_key_allows_from_any_address(setup: Setup) -> None:
    query = xfr_query(key=XFR_KEY)
    wires = setup.transfer(query, DENIED)
    zone = apply_transfer(query, wires, dns.versioned.Zone(ORIGIN))
    assert rows_of_dnspython(zone) == rows_of_zone(setup.zone)


def test_acl_other_key_refused_and_signed(setup: Setup) -> None:
    serial = setup.zone.serial
    query = xfr_query(key=OTHER_KEY)
    wires = setup.transfer(query, DENIED)
    # The REFUSED answer is signed with the query's key (RFC 8945 §5.3).
    response = dns.message.from_wire(wires[0], keyring=KEYRING, request_mac=query.mac)
    assert response.rcode() == dns.rcode.REFUSED
    assert response.had_tsig and response.keyname == OTHER_KEY.name
    assert setup.zone.serial == serial


def test_unknown_key_is_badkey(setup: Setup) -> None:
    serial = setup.zone.serial
    stranger = dns.tsig.Key("stranger.", b"s" * 32)
    query = xfr_query(key=stranger)
    wires = setup.transfer(query)
    response = dns.message.from_wire(wires[0], keyring=False)
    assert response.rcode() == dns.rcode.NOTAUTH
    assert response.tsig_error == dns.rcode.BADKEY
    assert setup.zone.serial == serial


def test_unknown_zone_is_notauth(setup: Setup) -> None:
    before, serial = rows_of_zone(setup.zone), setup.zone.serial
    for name in ("example.org.", "www.dyn.example.test.", "example.test."):
        query = xfr_query(name=dns.name.from_text(name))
        assert rcode_of(setup.transfer(query), query) == dns.rcode.NOTAUTH, name
    assert rows_of_zone(setup.zone) == before and setup.zone.serial == serial


def test_no_allow_transfer_refuses_everyone(tmp_path: Path, test_data: Path) -> None:
    setup = Setup(tmp_path, test_data, networks=(), keys=())
    before, serial = rows_of_zone(setup.zone), setup.zone.serial
    query = xfr_query()
    assert rcode_of(setup.transfer(query), query) == dns.rcode.REFUSED
    query = xfr_query(key=XFR_KEY)
    assert rcode_of(setup.transfer(query), query) == dns.rcode.REFUSED
    assert rows_of_zone(setup.zone) == before and setup.zone.serial == serial


def test_configure_replaces_acls(setup: Setup) -> None:
    query = xfr_query()
    assert len(setup.transfer(query)) >= 1
    closed = ZoneConfig(name=ORIGIN, file=None, allow_transfer_networks=("127.0.0.2/32",))
    setup.processor.configure([closed])
    assert rcode_of(setup.transfer(query), query) == dns.rcode.REFUSED
    assert len(setup.transfer(query, ("127.0.0.2", 53))) >= 1


@pytest.mark.parametrize(
    ("networks", "address", "allowed"),
    [
        (("127.0.0.0/8",), "127.1.2.3", True),
        (("127.0.0.0/8",), "::ffff:127.0.0.1", True),  # a dual-stack socket's IPv4
        (("127.0.0.1/32",), "127.0.0.2", False),
        (("::1/128",), "::1", True),
        (("::1/128",), "127.0.0.1", False),
        (("2001:db8::/32",), "2001:db8::5%eth0", True),
        (("0.0.0.0/0",), "not-an-address", False),
        ((), "127.0.0.1", False),
    ],
)
def test_acl_addresses(networks: tuple[str, ...], address: str, allowed: bool) -> None:
    acl = TransferAcl.from_zone(
        ZoneConfig(name=ORIGIN, file=None, allow_transfer_networks=networks)
    )
    assert acl.allows(address, None) is allowed


# -- TSIG ---------------------------------------------------------------------------


def test_signed_axfr_every_message_signed(tmp_path: Path, test_data: Path) -> None:
    setup = Setup(tmp_path, test_data, message_size=400)
    query = xfr_query(key=XFR_KEY)
    wires = setup.transfer(query, DENIED)
    assert len(wires) > 3
    assert all(len(w) <= 400 for w in wires)
    messages = read_messages(query, wires)
    assert all(m.had_tsig and m.keyname == XFR_KEY.name for m in messages)
    zone = apply_transfer(query, wires, dns.versioned.Zone(ORIGIN))
    assert rows_of_dnspython(zone) == rows_of_zone(setup.zone)


def test_signed_axfr_tampered_message_fails(tmp_path: Path, test_data: Path) -> None:
    setup = Setup(tmp_path, test_data, message_size=400)
    query = xfr_query(key=XFR_KEY)
    wires = setup.transfer(query)
    # Change one TTL byte in the second message: its MAC must no longer verify.
    second = bytearray(wires[1])
    second[_skip_name(wires[1], 12) + 7] ^= 0x01
    with pytest.raises(dns.tsig.BadSignature):
        read_messages(query, [wires[0], bytes(second), *wires[2:]])
    # Dropping a message breaks the chain of MACs too.
    with pytest.raises(dns.tsig.BadSignature):
        read_messages(query, [wires[0], *wires[2:]])


@pytest.mark.parametrize("algorithm", [dns.tsig.HMAC_SHA1, dns.tsig.HMAC_SHA512, dns.tsig.HMAC_MD5])
def test_signed_axfr_algorithms(tmp_path: Path, test_data: Path, algorithm: dns.name.Name) -> None:
    key = dns.tsig.Key("xfr-key.", b"k" * 40, algorithm)
    setup = Setup(tmp_path, test_data, message_size=700)
    setup.handler.keyring = {key.name: key}
    query = xfr_query(key=key)
    wires = setup.transfer(query, DENIED)
    zone = apply_transfer(query, wires, dns.versioned.Zone(ORIGIN))
    assert rows_of_dnspython(zone) == rows_of_zone(setup.zone)


# -- IXFR ---------------------------------------------------------------------------


def dnspython_copy(setup: Setup) -> dns.versioned.Zone:
    """A dnspython zone with the store zone's current content (a secondary's copy)."""
    query = xfr_query()
    return apply_transfer(query, setup.transfer(query), dns.versioned.Zone(ORIGIN))


def test_ixfr_condensed(setup: Setup) -> None:
    secondary = dnspython_copy(setup)
    old_soa = setup.zone.soa_record()
    old = setup.zone.serial
    setup.commit(added=["new1 60 A 192.0.2.201", "gone 60 A 192.0.2.202"])
    setup.commit(removed=["www 3600 A 192.0.2.10"], added=["www 3600 A 192.0.2.111"])
    setup.commit(removed=["gone 60 A 192.0.2.202", "mail 3600 A 192.0.2.25"])
    new = setup.zone.serial
    assert new == old + 3
    query = xfr_query("IXFR", serial=old, soa=old_soa)
    wires = setup.transfer(query)
    messages = read_messages(query, wires)
    records = [
        (absolute(rrset), rrset.rdtype, rrset[0].to_text()) for m in messages for rrset in m.answer
    ]
    serials = [int(r[2].split()[2]) for r in records if r[1] == dns.rdatatype.SOA]
    assert serials == [new, old, new, new]
    # SOA(new) SOA(old) deletions SOA(new) additions SOA(new); "gone" came and went.
    deletions = {(r[0], r[2]) for r in records[2:4]}
    assert deletions == {
        ("www.dyn.example.test.", "192.0.2.10"),
        ("mail.dyn.example.test.", "192.0.2.25"),
    }
    assert records[4][1] == dns.rdatatype.SOA
    additions = {(r[0], r[2]) for r in records[5:7]}
    assert additions == {
        ("new1.dyn.example.test.", "192.0.2.201"),
        ("www.dyn.example.test.", "192.0.2.111"),
    }
    assert len(records) == 8
    apply_transfer(query, wires, secondary)
    assert rows_of_dnspython(secondary) == rows_of_zone(setup.zone)


def test_ixfr_from_each_older_serial(tmp_path: Path, test_data: Path) -> None:
    setup = Setup(tmp_path, test_data, message_size=300)
    copies = []
    for i in range(4):
        copies.append((setup.zone.serial, setup.zone.soa_record(), dnspython_copy(setup)))
        setup.commit(added=[f"host{i} 60 A 192.0.2.{i + 1}", f'host{i} 60 TXT "v{i}"'])
        setup.commit(removed=[f'host{i} 60 TXT "v{i}"'])
    for serial, soa, secondary in copies:
        query = xfr_query("IXFR", serial=serial, soa=soa, key=XFR_KEY)
        wires = setup.transfer(query)
        first = read_messages(query, wires)[0]
        # Incremental: the second record is the client's own SOA.
        assert first.answer[1].rdtype == dns.rdatatype.SOA
        apply_transfer(query, wires, secondary)
        assert rows_of_dnspython(secondary) == rows_of_zone(setup.zone)


def test_ixfr_up_to_date_or_newer_gets_single_soa(setup: Setup) -> None:
    setup.commit(added=["new1 60 A 192.0.2.201"])
    soa = setup.zone.soa_record()
    for serial in (setup.zone.serial, setup.zone.serial + 5):
        query = xfr_query("IXFR", serial=serial, soa=soa)
        messages = read_messages(query, setup.transfer(query))
        assert len(messages) == 1
        assert [(r.rdtype, r[0].serial) for r in messages[0].answer] == [
            (dns.rdatatype.SOA, setup.zone.serial)
        ]


def test_ixfr_over_udp_gets_single_soa(setup: Setup) -> None:
    old_soa = setup.zone.soa_record()
    old = setup.zone.serial
    setup.commit(added=["new1 60 A 192.0.2.201"])
    query = xfr_query("IXFR", serial=old, soa=old_soa, key=XFR_KEY)
    wires = setup.transfer(query, DENIED, tcp=False)
    assert len(wires) == 1
    response = dns.message.from_wire(wires[0], keyring=KEYRING, request_mac=query.mac)
    assert response.had_tsig
    assert [(r.rdtype, r[0].serial) for r in response.answer] == [
        (dns.rdatatype.SOA, setup.zone.serial)
    ]


def test_ixfr_unknown_serial_falls_back_to_axfr(setup: Setup) -> None:
    secondary = dnspython_copy(setup)
    old_soa = setup.zone.soa_record()
    setup.commit(added=["new1 60 A 192.0.2.201"])
    query = xfr_query("IXFR", serial=12345, soa=old_soa)
    wires = setup.transfer(query)
    first = read_messages(query, wires)[0]
    assert first.answer[0].rdtype == dns.rdatatype.SOA
    assert first.answer[1].rdtype != dns.rdatatype.SOA  # AXFR-style
    apply_transfer(query, wires, secondary)
    assert rows_of_dnspython(secondary) == rows_of_zone(setup.zone)


def test_ixfr_larger_than_zone_falls_back_to_axfr(setup: Setup) -> None:
    # BIND's max-ixfr-ratio 100%: more changed records than the zone holds.
    first_batch = [f"n{i} 60 A 192.0.2.{i}" for i in range(1, 60)]
    setup.commit(added=first_batch)
    old_soa, old = setup.zone.soa_record(), setup.zone.serial
    setup.commit(removed=first_batch, added=[f"m{i} 60 A 192.0.2.{i}" for i in range(1, 60)])
    assert 2 * 59 > setup.zone.record_count
    query = xfr_query("IXFR", serial=old, soa=old_soa)
    first = read_messages(query, setup.transfer(query))[0]
    assert first.answer[1].rdtype != dns.rdatatype.SOA
    # Smaller differences from the same serial go incrementally.
    setup.processor.max_ixfr_ratio = 2.0
    first = read_messages(query, setup.transfer(query))[0]
    assert first.answer[1].rdtype == dns.rdatatype.SOA


def test_ixfr_without_soa_is_formerr(setup: Setup) -> None:
    before, serial = rows_of_zone(setup.zone), setup.zone.serial
    query = dns.message.make_query(ORIGIN, "IXFR")
    assert rcode_of(setup.transfer(query), query) == dns.rcode.FORMERR
    # Refused comes first (as BIND: the ACL is checked before the SOA).
    assert rcode_of(setup.transfer(query, DENIED), query) == dns.rcode.REFUSED
    assert rows_of_zone(setup.zone) == before and setup.zone.serial == serial


# -- journal pruning ------------------------------------------------------------------


def test_prune_by_count_and_ixfr_fallback(tmp_path: Path, test_data: Path) -> None:
    setup = Setup(tmp_path, test_data, limits=ZoneLimits(max_versions=3))
    history = []
    for i in range(6):
        history.append((setup.zone.serial, setup.zone.soa_record()))
        setup.commit(added=[f"p{i} 60 A 192.0.2.{i + 1}"])
    versions = setup.journal.versions("dyn.example.test.")
    assert [v.serial for v in versions] == [setup.zone.serial - i for i in range(3)]
    # The content is intact: pruning drops history, never the current records.
    assert ("p0.dyn.example.test.", dns.rdatatype.A, 60, "192.0.2.1") in rows_of_zone(setup.zone)
    reloaded = ZoneData.from_records(ORIGIN, setup.journal.load("dyn.example.test."))
    assert rows_of_zone(reloaded) == rows_of_zone(setup.zone)
    # A client at a pruned serial gets AXFR-style; one at a kept serial, IXFR.
    pruned_serial, pruned_soa = history[1]
    query = xfr_query("IXFR", serial=pruned_serial, soa=pruned_soa)
    assert read_messages(query, setup.transfer(query))[0].answer[1].rdtype != dns.rdatatype.SOA
    kept_serial, kept_soa = history[-2]
    query = xfr_query("IXFR", serial=kept_serial, soa=kept_soa)
    first = read_messages(query, setup.transfer(query))[0]
    assert first.answer[1].rdtype == dns.rdatatype.SOA
    assert first.answer[1][0].serial == kept_serial


def test_prune_by_age_keeps_latest(tmp_path: Path, test_data: Path) -> None:
    setup = Setup(tmp_path, test_data, limits=ZoneLimits(max_versions=1000, max_age_days=2))
    start = setup.clock.now
    first_serial = setup.zone.serial
    setup.commit(added=["a1 60 A 192.0.2.1"])  # day 0
    setup.clock.now = start + 86400 * 1.5
    setup.commit(added=["a2 60 A 192.0.2.2"])  # day 1.5: the seed and a1 are 1.5 days old
    serials = [v.serial for v in setup.journal.versions("dyn.example.test.")]
    assert serials == [first_serial + 2, first_serial + 1, first_serial]
    setup.clock.now = start + 86400 * 3
    setup.commit(added=["a3 60 A 192.0.2.3"])  # day 3: the seed and a1 are past 2 days
    serials = [v.serial for v in setup.journal.versions("dyn.example.test.")]
    assert serials == [first_serial + 3, first_serial + 2]
    # Long idle: everything is old, but the latest version always stays.
    setup.clock.now = start + 86400 * 30
    setup.commit(added=["a4 60 A 192.0.2.4"])
    serials = [v.serial for v in setup.journal.versions("dyn.example.test.")]
    assert serials == [first_serial + 4]


def test_prune_to_one_version_still_serves_ixfr_poll(tmp_path: Path, test_data: Path) -> None:
    setup = Setup(tmp_path, test_data, limits=ZoneLimits(max_versions=1))
    old_soa, old = setup.zone.soa_record(), setup.zone.serial
    setup.commit(added=["x 60 A 192.0.2.9"])
    assert len(setup.journal.versions("dyn.example.test.")) == 1
    query = xfr_query("IXFR", serial=old, soa=old_soa)
    secondary_first = read_messages(query, setup.transfer(query))[0]
    assert secondary_first.answer[1].rdtype != dns.rdatatype.SOA  # AXFR-style
    query = xfr_query("IXFR", serial=setup.zone.serial, soa=old_soa)
    assert len(read_messages(query, setup.transfer(query))[0].answer) == 1


# -- the wire -------------------------------------------------------------------------


def test_owner_compression_is_valid_across_messages(tmp_path: Path, test_data: Path) -> None:
    """Every pointer points backwards into the same message, at a name."""
    setup = Setup(tmp_path, test_data, records=big_zone_records(300), message_size=1000)
    query = xfr_query()
    for wire in setup.transfer(query):
        pos = 12
        qd, an = struct.unpack_from("!HH", wire, 4)
        for _ in range(qd):
            pos = _skip_name(wire, pos) + 4
        for _ in range(an):
            pos = _skip_name(wire, pos)
            pos += 10 + struct.unpack_from("!H", wire, pos + 8)[0]
    read_messages(query, setup.transfer(query))


def _skip_name(wire: bytes, pos: int) -> int:
    start = pos
    while True:
        length = wire[pos]
        if length & 0xC0 == 0xC0:
            target = ((length & 0x3F) << 8) | wire[pos + 1]
            assert 12 <= target < start
            return pos + 2
        if length == 0:
            return pos + 1
        pos += length + 1
