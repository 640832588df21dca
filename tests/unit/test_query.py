"""Authoritative answer semantics of the query core, without sockets.

Each query goes through `DnsHandler.handle` (the hand-parsed fast path of
`QueryEngine.answer`, else the dnspython path) exactly as the UDP/TCP edges
call it, and the response wire is read back with dnspython. The same cases
are checked against the running server with dig in
tests/integration/test_answers.py; where BIND 9 answers differently the
comment says so.
"""

from __future__ import annotations

import struct
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import pytest
from zonetext import records_from_text

from ddns_server.dnsmsg import DnsHandler
from ddns_server.query import EDNS_PAYLOAD, MAX_CHAIN, QueryEngine
from ddns_server.store import records_from_file
from ddns_server.zonedata import ZoneData

DATA = Path(__file__).resolve().parents[1] / "data"
EXAMPLE = dns.name.from_text("dyn.example.test")
WILD = dns.name.from_text("wild.example.test")
KEYRING = dns.tsigkeyring.from_text(
    {"test-key": ("hmac-sha256", "dGhpcyBpcyBhIHRlc3Qga2V5IG9mIDMyIGJ5dGVzISE=")}
)
SOURCE = ("127.0.0.1", 5300)


def make_engine(*extra: ZoneData) -> QueryEngine:
    zones = [
        ZoneData.from_records(EXAMPLE, records_from_file(DATA / "example.zone", EXAMPLE)),
        ZoneData.from_records(WILD, records_from_file(DATA / "wild.zone", WILD)),
        *extra,
    ]
    return QueryEngine({zone.apex: zone for zone in zones})


@pytest.fixture(scope="module")
def handler() -> DnsHandler:
    return DnsHandler(make_engine(), KEYRING)


def raw(handler: DnsHandler, data: bytes, tcp: bool = False) -> list[bytes]:
    return handler.handle(data, SOURCE, tcp)


def ask(
    handler: DnsHandler,
    qname: str,
    rdtype: str = "A",
    *,
    tcp: bool = False,
    **kwargs: object,
) -> dns.message.Message:
    """One query through the handler; the single response, parsed."""
    kwargs.setdefault("use_edns", False)
    query = dns.message.make_query(qname, rdtype, **kwargs)  # type: ignore[arg-type]
    responses = raw(handler, query.to_wire(), tcp)
    assert len(responses) == 1
    response = dns.message.from_wire(responses[0])
    assert response.id == query.id
    assert response.flags & dns.flags.QR
    assert not response.flags & dns.flags.RA  # never recursive
    return response


def texts(section: list[dns.rrset.RRset]) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def z(name: str) -> str:
    return f"{name}.dyn.example.test." if name != "@" else "dyn.example.test."


def wz(name: str) -> str:
    return f"{name}.wild.example.test." if name != "@" else "wild.example.test."


def assert_negative(response: dns.message.Message, rcode: int, apex: str, ttl: int) -> None:
    """RFC 2308: AA, the rcode, the apex SOA alone in authority with TTL min(TTL, minimum)."""
    assert response.rcode() == rcode
    assert response.flags & dns.flags.AA
    assert len(response.authority) == 1
    soa = response.authority[0]
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.name == dns.name.from_text(apex)
    assert soa.ttl == ttl
    assert not response.additional


# -- positive answers -------------------------------------------------------------------


def test_positive_answer(handler: DnsHandler) -> None:
    response = ask(handler, z("www"), "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert texts(response.answer) == [f"{z('www')} 3600 IN A 192.0.2.10"]
    assert not response.authority and not response.additional


def test_rd_and_cd_are_copied_ra_never_set(handler: DnsHandler) -> None:
    query = dns.message.make_query(z("www"), "A", use_edns=False)
    query.flags |= dns.flags.CD
    response = dns.message.from_wire(raw(handler, query.to_wire())[0])
    assert response.flags & dns.flags.RD and response.flags & dns.flags.CD
    assert not response.flags & dns.flags.RA
    query.flags &= ~(dns.flags.RD | dns.flags.CD)
    response = dns.message.from_wire(raw(handler, query.to_wire())[0])
    assert not response.flags & (dns.flags.RD | dns.flags.CD | dns.flags.RA)


def test_apex_soa_and_ns(handler: DnsHandler) -> None:
    response = ask(handler, z("@"), "SOA")
    assert texts(response.answer) == [
        f"{z('@')} 3600 IN SOA ns1.dyn.example.test. hostmaster.dyn.example.test. "
        "2026112501 3600 600 604800 300"
    ]
    response = ask(handler, z("@"), "NS")
    assert sorted(texts(response.answer)) == [
        f"{z('@')} 3600 IN NS ns1.dyn.example.test.",
        f"{z('@')} 3600 IN NS ns2.example.net.",
    ]
    assert response.flags & dns.flags.AA


# -- negative answers (RFC 2308) ----------------------------------------------------


def test_nodata(handler: DnsHandler) -> None:
    response = ask(handler, z("www"), "MX")
    assert not response.answer
    assert_negative(response, dns.rcode.NOERROR, z("@"), 300)


def test_nodata_ttl_is_soa_ttl_when_smaller(handler: DnsHandler) -> None:
    response = ask(handler, wz("explicit"), "A")  # wild.zone: SOA TTL 600 < minimum 3600
    assert not response.answer
    assert_negative(response, dns.rcode.NOERROR, wz("@"), 600)


def test_nxdomain(handler: DnsHandler) -> None:
    response = ask(handler, z("nope"), "A")
    assert not response.answer
    assert_negative(response, dns.rcode.NXDOMAIN, z("@"), 300)
    response = ask(handler, wz("nope.ent"), "TXT")
    assert_negative(response, dns.rcode.NXDOMAIN, wz("@"), 600)


def test_empty_non_terminal_is_nodata(handler: DnsHandler) -> None:
    """c and b.c exist only because a.b.c does (RFC 8020: not NXDOMAIN)."""
    for name in ("c", "b.c"):
        response = ask(handler, z(name), "A")
        assert not response.answer
        assert_negative(response, dns.rcode.NOERROR, z("@"), 300)
    response = ask(handler, z("x.c"), "A")
    assert_negative(response, dns.rcode.NXDOMAIN, z("@"), 300)


# -- CNAME ----------------------------------------------------------------------------


def test_cname_chain_inside_the_zone(handler: DnsHandler) -> None:
    response = ask(handler, z("chain"), "A")
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert texts(response.answer) == [
        f"{z('chain')} 3600 IN CNAME alias.dyn.example.test.",
        f"{z('alias')} 3600 IN CNAME www.dyn.example.test.",
        f"{z('www')} 3600 IN A 192.0.2.10",
    ]
    assert not response.authority


def test_cname_query_for_the_cname_itself(handler: DnsHandler) -> None:
    response = ask(handler, z("chain"), "CNAME")
    assert texts(response.answer) == [f"{z('chain')} 3600 IN CNAME alias.dyn.example.test."]


def test_cname_chain_to_nodata(handler: DnsHandler) -> None:
    response = ask(handler, z("alias"), "MX")
    assert texts(response.answer) == [f"{z('alias')} 3600 IN CNAME www.dyn.example.test."]
    assert_negative(response, dns.rcode.NOERROR, z("@"), 300)


def test_cname_leaving_the_zone(handler: DnsHandler) -> None:
    """The resolver follows it; we stop at the zone's edge (BIND does the same)."""
    response = ask(handler, z("outside"), "A")
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert texts(response.answer) == [f"{z('outside')} 3600 IN CNAME www.example.net."]
    assert not response.authority


def test_dangling_cname_is_nxdomain(handler: DnsHandler) -> None:
    """RFC 6604: the rcode is the last link's; the CNAME stays in the answer."""
    response = ask(handler, z("dangling"), "A")
    assert texts(response.answer) == [f"{z('dangling')} 3600 IN CNAME nothere.dyn.example.test."]
    assert_negative(response, dns.rcode.NXDOMAIN, z("@"), 300)


def test_cname_loop_is_servfail(handler: DnsHandler) -> None:
    """Like BIND 9: SERVFAIL, with each CNAME of the loop once."""
    response = ask(handler, z("loop1"), "A")
    assert response.rcode() == dns.rcode.SERVFAIL
    assert response.flags & dns.flags.AA
    assert texts(response.answer) == [
        f"{z('loop1')} 3600 IN CNAME loop2.dyn.example.test.",
        f"{z('loop2')} 3600 IN CNAME loop1.dyn.example.test.",
    ]


def test_long_cname_chains(handler: DnsHandler) -> None:
    """Up to BIND's max-restarts: 8 links are followed, 20 give SERVFAIL after 12."""
    response = ask(handler, wz("c8-0"), "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert len(response.answer) == 9
    assert texts(response.answer)[-1] == f"{wz('ns1')} 600 IN A 192.0.2.1"
    response = ask(handler, wz("c20-0"), "A", tcp=True)
    assert response.rcode() == dns.rcode.SERVFAIL
    assert len(response.answer) == MAX_CHAIN == 12
    assert all(rrset.rdtype == dns.rdatatype.CNAME for rrset in response.answer)


def test_cname_into_a_delegation_adds_the_referral(handler: DnsHandler) -> None:
    """RFC 1034 §4.3.2 step 3b; BIND 9 keeps AA and adds the NS RRset and glue."""
    response = ask(handler, wz("tocut"), "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert texts(response.answer) == [f"{wz('tocut')} 600 IN CNAME host.cut.wild.example.test."]
    assert texts(response.authority) == [f"{wz('cut')} 600 IN NS ns.cut.wild.example.test."]
    assert sorted(texts(response.additional)) == [
        f"{wz('ns.cut')} 600 IN A 192.0.2.202",
        f"{wz('ns.cut')} 600 IN AAAA 2001:db8::202",
    ]


# -- wildcards (RFC 4592) --------------------------------------------------------------


def test_wildcard_synthesis(handler: DnsHandler) -> None:
    response = ask(handler, z("anything.wild"), "A")
    assert response.flags & dns.flags.AA and response.rcode() == dns.rcode.NOERROR
    # the owner is the query name, never "*"
    assert texts(response.answer) == [f"{z('anything.wild')} 3600 IN A 192.0.2.99"]
    response = ask(handler, z("two.labels.wild"), "TXT")  # §3.3.1: closest encloser "wild"
    assert texts(response.answer) == [f'{z("two.labels.wild")} 3600 IN TXT "wildcard"']
    response = ask(handler, wz("x"), "A")  # a wildcard at the apex
    assert texts(response.answer) == [f"{wz('x')} 600 IN A 192.0.2.200"]


def test_wildcard_nodata(handler: DnsHandler) -> None:
    response = ask(handler, z("anything.wild"), "MX")
    assert not response.answer
    assert_negative(response, dns.rcode.NOERROR, z("@"), 300)


def test_wildcard_does_not_cover_existing_names(handler: DnsHandler) -> None:
    """§2.2.1: a name that exists is answered from its own node only."""
    response = ask(handler, wz("explicit"), "A")
    assert not response.answer
    assert_negative(response, dns.rcode.NOERROR, wz("@"), 600)
    # below an existing name the closest encloser is that name, which has no "*"
    response = ask(handler, wz("q.explicit"), "A")
    assert_negative(response, dns.rcode.NXDOMAIN, wz("@"), 600)


def test_wildcard_and_empty_non_terminal(handler: DnsHandler) -> None:
    """§2.2.2: the ENT "ent" exists, so names below it do not match "*" above it."""
    response = ask(handler, wz("ent"), "A")
    assert not response.answer
    assert_negative(response, dns.rcode.NOERROR, wz("@"), 600)
    for name in ("x.ent", "y.x.ent", "b.a.ent"):
        response = ask(handler, wz(name), "A")
        assert_negative(response, dns.rcode.NXDOMAIN, wz("@"), 600)
    assert texts(ask(handler, wz("a.ent"), "A").answer) == [f"{wz('a.ent')} 600 IN A 192.0.2.201"]


def test_wildcard_cname(handler: DnsHandler) -> None:
    response = ask(handler, z("host.wildcname"), "A")
    assert texts(response.answer) == [
        f"{z('host.wildcname')} 3600 IN CNAME www.dyn.example.test.",
        f"{z('www')} 3600 IN A 192.0.2.10",
    ]
    response = ask(handler, wz("x.cn"), "CNAME")
    assert texts(response.answer) == [f"{wz('x.cn')} 600 IN CNAME ns1.wild.example.test."]


def test_the_wildcard_owner_itself(handler: DnsHandler) -> None:
    response = ask(handler, z("*.wild"), "A")
    assert texts(response.answer) == [f"{z('*.wild')} 3600 IN A 192.0.2.99"]


# -- delegations -------------------------------------------------------------------------


def assert_referral(response: dns.message.Message) -> None:
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.flags & dns.flags.AA  # not authoritative below the cut
    assert not response.answer
    assert sorted(texts(response.authority)) == [
        f"{z('sub')} 3600 IN NS ns.other.example.",
        f"{z('sub')} 3600 IN NS ns.sub.dyn.example.test.",
    ]
    assert texts(response.additional) == [f"{z('ns.sub')} 3600 IN A 192.0.2.53"]


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("x.sub", "A"),
        ("deep.x.sub", "AAAA"),
        ("sub", "NS"),
        ("sub", "A"),
        ("ns.sub", "A"),
        ("x.sub", "DS"),
        ("sub", "ANY"),
    ],
)
def test_referral_with_glue(handler: DnsHandler, name: str, rdtype: str) -> None:
    assert_referral(ask(handler, z(name), rdtype))


def test_ds_at_the_cut_is_answered_by_the_parent(handler: DnsHandler) -> None:
    """RFC 4035 §3.1.4.1: DS lives on the parent side of the cut."""
    response = ask(handler, wz("cut"), "DS")
    assert response.flags & dns.flags.AA
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.DS]
    assert not response.authority
    response = ask(handler, z("sub"), "DS")  # no DS there: authoritative NODATA
    assert not response.answer
    assert_negative(response, dns.rcode.NOERROR, z("@"), 300)


def test_child_zone_served_here_wins() -> None:
    """The longest matching served zone answers (a child zone beside its parent)."""
    child_name = dns.name.from_text("sub.dyn.example.test")
    child = ZoneData.from_records(
        child_name,
        records_from_text(
            "@ 60 IN SOA ns hostmaster 1 60 60 60 60\n@ 60 IN NS ns\nns 60 IN A 192.0.2.53\n"
            "x 60 IN A 192.0.2.54\n",
            child_name,
            "child",
        ),
    )
    handler = DnsHandler(make_engine(child), {})
    response = ask(handler, z("x.sub"), "A")
    assert response.flags & dns.flags.AA
    assert texts(response.answer) == [f"{z('x.sub')} 60 IN A 192.0.2.54"]


# -- names -------------------------------------------------------------------------------


def test_case_insensitive_and_the_question_echoed(handler: DnsHandler) -> None:
    query = dns.message.make_query("wWw.DYN.Example.TEST.", "A", use_edns=False)
    wire = query.to_wire()
    response_wire = raw(handler, wire)[0]
    # the question section is the query's, byte for byte (0x20 case included)
    assert response_wire[12 : len(wire)] == wire[12:]
    response = dns.message.from_wire(response_wire)
    assert response.question[0].name.to_text() == "wWw.DYN.Example.TEST."
    assert [r.to_text() for r in response.answer[0]] == ["192.0.2.10"]
    # names stored in mixed case are found in any case
    response = ask(handler, "www2.DYN.example.test.", "A")
    assert [r.to_text() for r in response.answer[0]] == ["192.0.2.11"]
    assert_negative(ask(handler, "NOPE.dyn.EXAMPLE.test.", "A"), dns.rcode.NXDOMAIN, z("@"), 300)


def test_any_is_answered_with_every_rrset(handler: DnsHandler) -> None:
    """Documented choice (RFC 8482 allows it): ANY gets the full set of the name."""
    response = ask(handler, z("@"), "ANY")
    assert response.flags & dns.flags.AA
    assert sorted(dns.rdatatype.to_text(r.rdtype) for r in response.answer) == [
        "MX",
        "NS",
        "SOA",
        "TXT",
    ]
    response = ask(handler, z("x.wild"), "ANY")
    assert sorted(texts(response.answer)) == [
        f"{z('x.wild')} 3600 IN A 192.0.2.99",
        f'{z("x.wild")} 3600 IN TXT "wildcard"',
    ]
    response = ask(handler, z("alias"), "ANY")
    assert texts(response.answer) == [f"{z('alias')} 3600 IN CNAME www.dyn.example.test."]


@pytest.mark.parametrize(
    "qname", ["example.org.", "test.", "example.test.", ".", "xdyn.example.test."]
)
def test_refused_outside_the_served_zones(handler: DnsHandler, qname: str) -> None:
    response = ask(handler, qname, "A")
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & dns.flags.AA
    assert not response.answer and not response.authority and not response.additional


def test_other_classes_are_refused(handler: DnsHandler) -> None:
    query = dns.message.make_query(z("www"), "A", rdclass=dns.rdataclass.CH, use_edns=False)
    response = dns.message.from_wire(raw(handler, query.to_wire())[0])
    assert response.rcode() == dns.rcode.REFUSED


# -- malformed messages and opcodes ----------------------------------------------------

PLAIN = dns.message.make_query("www.dyn.example.test.", "A", use_edns=False)
PLAIN.id = 0x1234
WIRE = PLAIN.to_wire()

MALFORMED = {
    "truncated question": WIRE[:-2],
    "name cut short": WIRE[:16],
    "qdcount 0": WIRE[:4] + b"\x00\x00" + WIRE[6:12],
    "qdcount 2": WIRE[:4] + b"\x00\x02" + WIRE[6:] + WIRE[12:],
    "qdcount 2, one question": WIRE[:4] + b"\x00\x02" + WIRE[6:],
    "ancount 1 without the record": WIRE[:6] + b"\x00\x01" + WIRE[8:],
    "trailing garbage": WIRE + b"\x00\x00\x01",
    "label type 01": WIRE[:12] + b"\x41abc" + WIRE[12:],
    "label type 10": WIRE[:12] + b"\x80abc\x00\x00\x01\x00\x01",
    "pointer forward": WIRE[:12] + b"\xc0\x20\x00\x01\x00\x01",
    "qtype OPT": WIRE[:-4] + b"\x00\x29\x00\x01",
    "two OPT records": (
        dns.message.make_query("www.dyn.example.test.", "A").to_wire()[:11]
        + b"\x02"
        + dns.message.make_query("www.dyn.example.test.", "A").to_wire()[12:]
        + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_formerr_for_malformed_queries(handler: DnsHandler, name: str) -> None:
    data = MALFORMED[name]
    for tcp in (False, True):
        responses = raw(handler, data, tcp)
        assert len(responses) == 1
        wire = responses[0]
        assert wire[:2] == data[:2]  # the query's id
        assert wire[2] & 0x80  # QR
        assert wire[3] & 0x0F == dns.rcode.FORMERR
        assert not wire[3] & 0x80  # RA


def test_too_short_and_responses_are_dropped(handler: DnsHandler) -> None:
    assert raw(handler, WIRE[:11]) == []
    assert raw(handler, b"") == []
    response_bit = WIRE[:2] + bytes([WIRE[2] | 0x80]) + WIRE[3:]
    assert raw(handler, response_bit) == []


@pytest.mark.parametrize("opcode", [1, 2, 3, 6, 7, 15])
def test_notimp_for_unknown_opcodes(handler: DnsHandler, opcode: int) -> None:
    data = WIRE[:2] + bytes([(WIRE[2] & 0x87) | (opcode << 3)]) + WIRE[3:]
    (wire,) = raw(handler, data)
    assert wire[:2] == data[:2]
    assert (wire[2] >> 3) & 0x0F == opcode  # the opcode is echoed
    assert wire[3] & 0x0F == dns.rcode.NOTIMP
    assert not wire[2] & 0x04  # AA clear


@pytest.mark.parametrize("rdtype", ["MAILA", "MAILB"])
def test_notimp_for_obsolete_meta_types(handler: DnsHandler, rdtype: str) -> None:
    assert ask(handler, z("www"), rdtype).rcode() == dns.rcode.NOTIMP


# -- EDNS(0), RFC 6891 --------------------------------------------------------------------


def test_no_opt_without_edns(handler: DnsHandler) -> None:
    response = ask(handler, z("www"), "A")
    assert response.edns == -1


def test_opt_echoed_with_our_payload(handler: DnsHandler) -> None:
    for payload in (512, 1232, 4096):
        response = ask(handler, z("www"), "A", use_edns=0, payload=payload)
        assert response.edns == 0
        assert response.payload == EDNS_PAYLOAD
        assert not response.ednsflags & dns.flags.DO
        assert response.options == ()


def test_do_bit_echoed(handler: DnsHandler) -> None:
    for name, rdtype in (("www", "A"), ("nope", "A"), ("x.sub", "A"), ("www", "MX")):
        response = ask(handler, z(name), rdtype, use_edns=0, want_dnssec=True)
        assert response.ednsflags & dns.flags.DO, name


def test_unknown_options_are_ignored(handler: DnsHandler) -> None:
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)
    response = ask(handler, z("www"), "A", use_edns=0, options=[cookie])
    assert response.rcode() == dns.rcode.NOERROR and response.answer


@pytest.mark.parametrize("do", [False, True])
def test_badvers_for_edns_version_above_zero(handler: DnsHandler, do: bool) -> None:
    """RFC 6891 §6.1.3: BADVERS (extended rcode 16), our OPT says version 0."""
    response = ask(handler, z("www"), "A", use_edns=1, want_dnssec=do)
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0
    assert not response.answer and not response.authority
    assert bool(response.ednsflags & dns.flags.DO) == do  # as BIND 9


def test_payload_honoured_tc_when_it_does_not_fit(handler: DnsHandler) -> None:
    """big TXT is ~700 bytes: TC for a 512-byte client, whole for a 4096 one."""
    for kwargs in (
        {"use_edns": False},
        {"use_edns": 0, "payload": 512},
        {"use_edns": 0, "payload": 100},
    ):
        response = ask(handler, z("big"), "TXT", **kwargs)
        assert response.flags & dns.flags.TC
        assert response.flags & dns.flags.AA
        assert not response.answer
        assert response.question[0].name == dns.name.from_text(z("big"))
        assert response.edns == (-1 if kwargs["use_edns"] is False else 0)
    response = ask(handler, z("big"), "TXT", use_edns=0, payload=4096)
    assert not response.flags & dns.flags.TC
    assert len(response.answer[0]) == 6


def test_tcp_gets_the_whole_answer(handler: DnsHandler) -> None:
    response = ask(handler, z("big"), "TXT", tcp=True)
    assert not response.flags & dns.flags.TC
    assert len(response.answer[0]) == 6
    response = ask(handler, wz("c20-0"), "A", tcp=True)  # > 512 bytes, no EDNS
    assert not response.flags & dns.flags.TC


def test_udp_answers_never_exceed_the_limit(handler: DnsHandler) -> None:
    for payload in (512, 600, 1000, 1232, 4096):
        query = dns.message.make_query(z("big"), "TXT", use_edns=0, payload=payload)
        (wire,) = raw(handler, query.to_wire())
        assert len(wire) <= min(max(payload, 512), EDNS_PAYLOAD)


# -- TSIG (RFC 8945) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rdtype"), [("www", "A"), ("nope", "A"), ("x.sub", "A"), ("chain", "A")]
)
def test_signed_query_gets_a_signed_answer(handler: DnsHandler, name: str, rdtype: str) -> None:
    query = dns.message.make_query(z(name), rdtype, use_edns=0)
    query.use_tsig(KEYRING, keyname="test-key")
    (wire,) = raw(handler, query.to_wire())
    # from_wire checks the MAC against the request's; it raises if it is wrong
    response = dns.message.from_wire(wire, keyring=KEYRING, request_mac=query.mac)
    assert response.had_tsig
    unsigned = ask(handler, z(name), rdtype, use_edns=0)
    assert response.rcode() == unsigned.rcode()
    assert response.flags == unsigned.flags
    assert texts(response.answer) == texts(unsigned.answer)
    assert sorted(texts(response.authority)) == sorted(texts(unsigned.authority))


def test_signed_truncated_answer_is_signed(handler: DnsHandler) -> None:
    query = dns.message.make_query(z("big"), "TXT", use_edns=0, payload=512)
    query.use_tsig(KEYRING, keyname="test-key")
    (wire,) = raw(handler, query.to_wire())
    assert len(wire) <= 512
    response = dns.message.from_wire(wire, keyring=KEYRING, request_mac=query.mac)
    assert response.flags & dns.flags.TC
    (wire,) = raw(handler, query.to_wire(), tcp=True)
    response = dns.message.from_wire(wire, keyring=KEYRING, request_mac=query.mac)
    assert len(response.answer[0]) == 6


def test_unknown_key_is_notauth_badkey(handler: DnsHandler) -> None:
    other = dns.tsigkeyring.from_text({"other-key": ("hmac-sha256", "b3RoZXI=")})
    query = dns.message.make_query(z("www"), "A")
    query.use_tsig(other, keyname="other-key")
    (wire,) = raw(handler, query.to_wire())
    response = dns.message.from_wire(wire, keyring=False)
    assert response.rcode() == dns.rcode.NOTAUTH
    assert response.tsig_error == dns.rcode.BADKEY
    assert not response.answer


def test_header_layout_of_the_fast_path(handler: DnsHandler) -> None:
    """ID copied, QR AA (RD) set, counts right: read with struct, not dnspython."""
    (wire,) = raw(handler, WIRE)
    ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", wire[:12])
    assert ident == 0x1234
    assert flags == 0x8000 | 0x0400 | 0x0100  # QR AA RD, opcode 0, NOERROR
    assert (qd, an, ns, ar) == (1, 1, 0, 0)


def test_tsig_as_question_type_is_formerr(handler: DnsHandler) -> None:
    """RFC 8945 §5: TSIG is a meta-RR; as a question it is malformed (BIND: FORMERR)."""
    (wire,) = raw(handler, WIRE[:-4] + b"\x00\xfa\x00\x01")
    assert wire[3] & 0x0F == dns.rcode.FORMERR
