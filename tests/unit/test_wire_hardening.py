"""Issue 14, network input: each case fails without its fix.

Messages go through `DnsHandler.handle` exactly as the UDP/TCP edges call
it; the zone and its serial are checked unchanged where a request fails.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.update
import pytest
from zonetext import records_from_text

from ddns_server import model
from ddns_server.dnsmsg import DnsHandler
from ddns_server.journal import Journal
from ddns_server.limits import UpdateLimits, check_limits
from ddns_server.model import PolicyRule
from ddns_server.query import QueryEngine
from ddns_server.ratelog import RateLimitedLog
from ddns_server.store import Store
from ddns_server.update_handler import UpdateProcessor
from ddns_server.xfr import TransferProcessor
from ddns_server.zonedata import Changeset, Record, ZoneData, name_to_wire

ORIGIN = dns.name.from_text("example.test")
SOURCE = ("127.0.0.1", 5300)
KEY = dns.tsig.Key("k.example.test.", b"s" * 32, dns.tsig.HMAC_SHA256)
ONE = dns.tsig.Key("one.example.test.", b"o" * 32, dns.tsig.HMAC_SHA256)
KEYRING = {KEY.name: KEY, ONE.name: ONE}
RULES = (
    PolicyRule(KEY.name, "zonesub", None, None),
    PolicyRule(ONE.name, "name", dns.name.from_text("a.example.test"), None),
)

# 4 x 61 octets of labels + test.: a DNAME target of 250 octets.
LONG_TARGET = ".".join(["a" * 60] * 4) + ".test."
ZONE = f"""
$ORIGIN example.test.
$TTL 300
@        SOA   ns1 hostmaster 100 3600 600 86400 60
@        NS    ns1
ns1      A     192.0.2.1
www      A     192.0.2.10
red      600 DNAME  target
hidden.red A   192.0.2.99
target   A     192.0.2.20
x.target A     192.0.2.21
y.target CNAME www
out      DNAME elsewhere.test.
long     DNAME {LONG_TARGET}
"""


class Served:
    """A real journal and store behind a DnsHandler with updates and transfers."""

    def __init__(self, tmp_path: Path, text: str = ZONE, **handler_args: object) -> None:
        self.store = Store(Journal(tmp_path / "journal.sqlite3"))
        self.store.open_zone(ORIGIN, records_from_text(text, ORIGIN, "test"))
        zone_config = model.Zone(ORIGIN, None, RULES, allow_transfer_networks=("127.0.0.0/8",))
        self.handler = DnsHandler(QueryEngine(self.store.zones), KEYRING, **handler_args)  # type: ignore[arg-type]
        self.handler.updates = UpdateProcessor(self.store, [zone_config])
        self.handler.transfers = TransferProcessor(self.store, [zone_config])

    @property
    def zone(self) -> ZoneData:
        zone = self.store.zone_for(ORIGIN)
        assert zone is not None
        return zone

    def state(self) -> tuple[int, set[tuple[bytes, int, int, bytes]]]:
        return self.zone.serial, self.zone.record_set()

    def ask(self, wire: bytes, tcp: bool = False) -> list[bytes]:
        return self.handler.handle(wire, SOURCE, tcp)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.store.journal.close()


def query(name: str, rdtype: str = "A", **kwargs: object) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]


def wire(message: dns.message.Message) -> bytes:
    out = message.to_wire()
    assert out is not None
    return out


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


# -- item 5: a bad MAC with trailing bytes; no traceback from any packet ---------------


def bad_mac_with_junk() -> bytes:
    message = query("www.example.test.")
    message.use_tsig(KEYRING, KEY.name)
    signed = bytearray(wire(message))
    signed[-10] ^= 0xFF  # inside the MAC (other-len, other data, error, id follow it)
    return bytes(signed) + b"\x00"


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_bad_mac_with_trailing_byte_is_formerr(
    served: Served, tcp: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = served.state()
    (response,) = served.ask(bad_mac_with_junk(), tcp)
    parsed = dns.message.from_wire(response, keyring=False)
    # Like an unsigned message with trailing junk: FORMERR, unsigned (the
    # MAC was never verified), no question echoed.
    assert parsed.rcode() == dns.rcode.FORMERR and not parsed.question
    no_tracebacks(caplog)
    assert served.state() == before
    # The handler keeps answering (over TCP: the next pipelined message).
    (again,) = served.ask(wire(query("www.example.test.")), tcp)
    assert dns.message.from_wire(again).answer


class Exploding:
    """An update processor with a bug (the handler must contain it)."""

    def handle_update(self, query: dns.message.Message, source: tuple[str, int]) -> int:
        raise RuntimeError("a bug")


def test_an_internal_error_is_counted_logged_once_and_answered_signed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[int] = []
    served = Served(tmp_path, count_error=lambda: errors.append(1))
    served.handler.updates = Exploding()
    message = dns.update.UpdateMessage(ORIGIN)
    message.add("a", 60, "A", "192.0.2.1")
    message.use_tsig(KEYRING, KEY.name)
    (response,) = served.ask(wire(message))
    checked = dns.message.from_wire(response, keyring=KEYRING, request_mac=message.mac)
    assert checked.rcode() == dns.rcode.SERVFAIL and checked.had_tsig
    assert errors == [1]
    lines = [r.getMessage() for r in caplog.records if "internal error" in r.getMessage()]
    assert len(lines) == 1 and "RuntimeError: a bug" in lines[0]
    no_tracebacks(caplog)
    served.store.journal.close()


def test_rate_limited_log_summarises(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelog"), 3, lambda: now[0])
    caplog.set_level(logging.INFO, logger="test.ratelog")
    for i in range(50):
        limited.error("packet %d", i)
    assert [r.getMessage() for r in caplog.records] == ["packet 0", "packet 1", "packet 2"]
    now[0] += 1
    limited.error("packet %d", 50)
    assert [r.getMessage() for r in caplog.records][3:] == [
        "47 similar messages suppressed",
        "packet 50",
    ]


# -- item 3: every reply to a signed request is signed --------------------------------


def test_failure_response_to_a_signed_update_is_signed(served: Served) -> None:
    message = dns.update.UpdateMessage(ORIGIN)
    message.add("a", 60, "A", "192.0.2.1")
    message.use_tsig(KEYRING, KEY.name)
    response = served.handler.failure_response(wire(message))
    checked = dns.message.from_wire(response, keyring=KEYRING, request_mac=message.mac)
    assert checked.rcode() == dns.rcode.SERVFAIL and checked.had_tsig


# -- items 6 and 14: names over 255 octets ----------------------------------------------


def long_name_query(qtype: int = 1, edns: bool = False) -> bytes:
    labels = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x07example\x04test\x00"
    assert len(labels) > 255
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" if edns else b""
    head = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 1 if edns else 0)
    return head + labels + struct.pack("!HH", qtype, 1) + opt


@pytest.mark.parametrize("qtype", [1, 16, 252, 255, 0])
@pytest.mark.parametrize("edns", [False, True])
def test_names_over_255_octets_are_formerr_without_a_question(
    served: Served, qtype: int, edns: bool
) -> None:
    data = long_name_query(qtype, edns)
    for tcp in (False, True):
        (fast,) = served.ask(data, tcp)
        (full,) = served.handler.handle_full(data, SOURCE, tcp)
        assert fast == full  # the fast path gives the full path's bytes
        parsed = dns.message.from_wire(fast)
        assert parsed.rcode() == dns.rcode.FORMERR
        assert parsed.question == [] and parsed.id == 0x1234


# -- item 13: the fudge we honour is capped --------------------------------------------


def test_huge_fudge_far_out_of_time_is_badtime(tmp_path: Path) -> None:
    served = Served(tmp_path, clock=lambda: time.time() + 60000)
    before = served.state()
    message = dns.update.UpdateMessage(ORIGIN)
    message.add("a", 60, "A", "192.0.2.1")
    message.use_tsig(KEYRING, KEY.name, fudge=65535)
    (response,) = served.ask(wire(message))
    parsed = dns.message.from_wire(response, keyring=False)
    assert parsed.rcode() == dns.rcode.NOTAUTH
    tsig = parsed.tsig[0] if parsed.tsig else None
    assert isinstance(tsig, dns.rdtypes.ANY.TSIG.TSIG) and tsig.error == dns.rcode.BADTIME
    assert served.state() == before
    # a configured larger cap honours it again
    served.handler.max_fudge = 65535
    (response,) = served.ask(wire(message))
    assert dns.message.from_wire(response, keyring=False).rcode() == dns.rcode.NOERROR
    served.store.journal.close()


# -- item 16: DNAME (RFC 6672) on both paths; meta types in updates --------------------


def both_paths(served: Served, data: bytes, tcp: bool = False) -> dns.message.Message:
    (fast,) = served.ask(data, tcp)
    (full,) = served.handler.handle_full(data, SOURCE, tcp)
    assert fast == full
    return dns.message.from_wire(fast)


def texts(message: dns.message.Message) -> list[str]:
    return [line for rrset in message.answer for line in rrset.to_text().splitlines()]


def test_dname_synthesis_follows_in_zone(served: Served) -> None:
    response = both_paths(served, wire(query("x.red.example.test.")))
    assert response.rcode() == dns.rcode.NOERROR
    assert texts(response) == [
        "red.example.test. 600 IN DNAME target.example.test.",
        "x.red.example.test. 600 IN CNAME x.target.example.test.",
        "x.target.example.test. 300 IN A 192.0.2.21",
    ]


def test_dname_then_cname_chain(served: Served) -> None:
    response = both_paths(served, wire(query("Y.red.example.test.")))
    assert texts(response)[1:] == [
        "Y.red.example.test. 600 IN CNAME y.target.example.test.",
        "y.target.example.test. 300 IN CNAME www.example.test.",
        "www.example.test. 300 IN A 192.0.2.10",
    ]


def test_dname_occludes_data_below_it(served: Served) -> None:
    response = both_paths(served, wire(query("hidden.red.example.test.")))
    assert texts(response)[1] == (
        "hidden.red.example.test. 600 IN CNAME hidden.target.example.test."
    )
    assert response.rcode() == dns.rcode.NXDOMAIN  # the target does not exist


def test_dname_owner_itself_is_not_redirected(served: Served) -> None:
    response = both_paths(served, wire(query("red.example.test.", "DNAME")))
    assert texts(response) == ["red.example.test. 600 IN DNAME target.example.test."]
    response = both_paths(served, wire(query("red.example.test.", "A")))
    assert response.answer == [] and response.rcode() == dns.rcode.NOERROR


def test_dname_out_of_zone_stops_after_the_cname(served: Served) -> None:
    response = both_paths(served, wire(query("a.b.out.example.test.")), tcp=True)
    assert texts(response) == [
        "out.example.test. 300 IN DNAME elsewhere.test.",
        "a.b.out.example.test. 300 IN CNAME a.b.elsewhere.test.",
    ]


def test_dname_result_too_long_is_yxdomain(served: Served) -> None:
    name = "b" * 60 + "." + "c" * 10 + ".long.example.test."
    response = both_paths(served, wire(query(name)))
    assert response.rcode() == dns.rcode.YXDOMAIN
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.DNAME]


def test_dname_added_by_update_is_applied(served: Served) -> None:
    message = dns.update.UpdateMessage(ORIGIN)
    message.add("new", 60, "DNAME", "target")
    message.use_tsig(KEYRING, KEY.name)
    rule = PolicyRule(KEY.name, "zonesub", None, frozenset({dns.rdatatype.DNAME}))
    served.handler.updates.policies[served.zone.apex] = (rule,)  # type: ignore[union-attr]
    (response,) = served.ask(wire(message))
    assert dns.message.from_wire(response, keyring=KEYRING, request_mac=message.mac).rcode() == 0
    response_q = both_paths(served, wire(query("x.new.example.test.")))
    assert texts(response_q)[-1] == "x.target.example.test. 300 IN A 192.0.2.21"


@pytest.mark.parametrize("rdtype", [0, 41, 249, 250, 251, 252, 255])
def test_meta_and_type0_adds_are_formerr(served: Served, rdtype: int) -> None:
    # One add RR of the type, by hand (dnspython will not build them).
    rr = b"\x01a" + name_to_wire(ORIGIN) + struct.pack("!HHIH", rdtype, 1, 60, 1) + b"\x00"
    unsigned = bytearray(wire(dns.update.UpdateMessage(ORIGIN)))
    struct.pack_into("!H", unsigned, 8, 1)
    unsigned += rr
    try:
        signed = dns.message.from_wire(bytes(unsigned))
        signed.use_tsig(KEYRING, KEY.name)
        data = wire(signed)
    except dns.exception.FormError:  # OPT, TSIG, TKEY: not even parseable
        data = bytes(unsigned)
    before = served.state()
    (response,) = served.ask(data)
    assert dns.message.from_wire(response, keyring=False).rcode() == dns.rcode.FORMERR
    assert served.state() == before


# -- items 9 and 10: caps and sizes -----------------------------------------------------


def update_of(*lines: tuple[str, int, str, str], key: dns.tsig.Key = ONE) -> bytes:
    message = dns.update.UpdateMessage(ORIGIN)
    for name, ttl, rdtype, rdata in lines:
        message.add(name, ttl, rdtype, rdata)
    message.use_tsig(KEYRING, key.name)
    return wire(message)


def rcode(served: Served, data: bytes) -> int:
    (response,) = served.ask(data, tcp=True)
    return dns.message.from_wire(response, keyring=False).rcode()


def test_records_per_type_cap(served: Served) -> None:
    many = [("a", 60, "MX", f"10 mx{i}.example.test.") for i in range(101)]
    before = served.state()
    assert rcode(served, update_of(*many)) == dns.rcode.REFUSED
    assert served.state() == before
    assert rcode(served, update_of(*many[:100])) == dns.rcode.NOERROR
    # one more, in another message: still over the cap, and nothing changes
    full = served.state()
    assert rcode(served, update_of(many[100])) == dns.rcode.REFUSED
    assert served.state() == full
    assert len(served.zone.records_at(name_to_wire(dns.name.from_text("a", ORIGIN)))) == 100


def test_types_per_name_cap(served: Served) -> None:
    many = [("a", 60, f"TYPE{65280 + i}", r"\# 1 00") for i in range(101)]
    before = served.state()
    assert rcode(served, update_of(*many)) == dns.rcode.REFUSED
    assert served.state() == before
    assert rcode(served, update_of(*many[:100])) == dns.rcode.NOERROR


def test_rdata_and_rrset_size_caps(served: Served) -> None:
    big = " ".join(['"' + "x" * 250 + '"'] * 20)  # 5,020 octets of rdata
    before = served.state()
    assert rcode(served, update_of(("a", 60, "TXT", big))) == dns.rcode.REFUSED
    many = [("a", 60, "TXT", f'"{i:03d}{"y" * 200}" "{"y" * 203}"') for i in range(90)]
    assert rcode(served, update_of(*many)) == dns.rcode.REFUSED  # 90 x 420 > 32,768
    assert served.state() == before


def test_caps_are_configurable_and_deletes_always_pass(served: Served) -> None:
    zone = served.zone
    owner = name_to_wire(dns.name.from_text("a", ORIGIN))
    added = [(owner, dns.rdatatype.A, 60, bytes((192, 0, 2, i))) for i in range(150)]
    with pytest.raises(Exception, match="max_records_per_type"):
        check_limits(zone, Changeset(added=added))
    check_limits(zone, Changeset(added=added), UpdateLimits(max_records_per_type=0))
    zone.apply(Changeset(added=added))
    check_limits(zone, Changeset(removed=added[:1]))  # over the cap, shrinking: fine


def test_types_per_name_cap_counts_what_the_name_holds_after(served: Served) -> None:
    """The cap on types is on the name after the change: types it had, the
    ones added, less the ones emptied (checked directly, with a cap of 3)."""
    zone = served.zone
    owner = name_to_wire(dns.name.from_text("t", ORIGIN))

    def rec(rdtype: int, octet: int = 1) -> Record:
        return (owner, rdtype, 60, bytes([octet]))

    caps = UpdateLimits(max_types_per_name=3)
    zone.apply(Changeset(added=[rec(65280), rec(65281)]))  # two types there
    check_limits(zone, Changeset(added=[rec(65282)]), caps)  # three: fine
    check_limits(zone, Changeset(added=[rec(65280, 2), rec(65281, 2), rec(65282)]), caps)
    with pytest.raises(Exception, match="4 types"):
        check_limits(zone, Changeset(added=[rec(65282), rec(65283)]), caps)
    # one emptied, two added: three after
    check_limits(zone, Changeset(removed=[rec(65280)], added=[rec(65282), rec(65283)]), caps)
    with pytest.raises(Exception, match="4 types"):  # a new name, four types at once
        check_limits(
            zone,
            Changeset(added=[(b"\x02t2" + owner[2:], 65280 + i, 60, b"\x01") for i in range(4)]),
            caps,
        )


def test_tcp_answer_too_big_is_servfail(tmp_path: Path) -> None:
    txt = '"' + "z" * 250 + '"'
    lines = "\n".join(f'big TXT {txt} "{i}"' for i in range(300))  # ~80 KB RRset
    served = Served(tmp_path, ZONE + lines + "\n")
    response = both_paths(served, wire(query("big.example.test.", "TXT")), tcp=True)
    assert response.rcode() == dns.rcode.SERVFAIL and not response.answer
    signed = query("big.example.test.", "TXT")
    signed.use_tsig(KEYRING, KEY.name)
    (answer,) = served.ask(wire(signed), tcp=True)
    checked = dns.message.from_wire(answer, keyring=KEYRING, request_mac=signed.mac)
    assert checked.rcode() == dns.rcode.SERVFAIL
    # over UDP: truncated, as before
    udp = both_paths(served, wire(query("big.example.test.", "TXT", use_edns=0)))
    assert udp.flags & dns.flags.TC
    served.store.journal.close()


def test_transfer_with_a_record_that_cannot_fit_fails_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # 65,416 octets of TXT: alone with an OPT and a TSIG it passes 65,535.
    txt = " ".join(['"' + "q" * 255 + '"'] * 255) + ' "' + "q" * 135 + '"'
    served = Served(tmp_path, ZONE + f"huge TXT {txt}\n")
    axfr = query("example.test.", "AXFR", use_edns=0)
    axfr.use_tsig(KEYRING, KEY.name)
    (response,) = served.ask(wire(axfr), tcp=True)
    checked = dns.message.from_wire(response, keyring=KEYRING, request_mac=axfr.mac)
    assert checked.rcode() == dns.rcode.SERVFAIL
    assert any("cannot fit" in r.getMessage() for r in caplog.records)
    no_tracebacks(caplog)
    served.store.journal.close()


def test_transfer_messages_with_a_large_record_fit(tmp_path: Path) -> None:
    txt = " ".join(['"' + "q" * 255 + '"'] * 230)  # 58,880 octets: fits alone
    served = Served(tmp_path, ZONE + f"huge TXT {txt}\n")
    axfr = query("example.test.", "AXFR", use_edns=0)
    axfr.use_tsig(KEYRING, KEY.name)
    messages = served.ask(wire(axfr), tcp=True)
    assert all(len(m) <= 65535 for m in messages)
    ctx = None
    count = 0
    for m in messages:
        parsed = dns.message.from_wire(
            m, keyring=KEYRING, request_mac=axfr.mac, xfr=True, multi=True, tsig_ctx=ctx
        )
        ctx = parsed.tsig_ctx
        count += sum(len(rrset) for rrset in parsed.answer)
    assert count == served.zone.record_count + 1
    served.store.journal.close()


def test_tsig_failures_do_not_flood_the_log(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ddns_server.dnsmsg")
    message = query("www.example.test.")
    message.use_tsig({KEY.name: dns.tsig.Key(KEY.name, b"x" * 32)}, KEY.name)  # wrong secret
    data = wire(message)
    for _ in range(200):
        (response,) = served.ask(data)
        assert dns.message.from_wire(response, keyring=False).rcode() == dns.rcode.NOTAUTH
    lines = [r.getMessage() for r in caplog.records if "BADSIG" in r.getMessage()]
    # 20 a second: at most two windows' worth, however the run straddles a second
    assert 1 <= len(lines) <= 40
