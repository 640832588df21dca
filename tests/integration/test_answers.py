"""Authoritative answers from the running server, as a resolver sees them.

One server (tests/data/example.zone and tests/data/wild.zone, a TSIG key)
serves the whole module; the real `dig` asks the questions, dnspython and raw
sockets send what dig cannot (malformed messages, pipelined TCP, TSIG checks).
The same semantics are unit-tested without sockets in tests/unit/test_query.py.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest
from harness import DigResult, ServerProcess, TsigKey, dig, http_get, require_tool

DATA = Path(__file__).resolve().parents[1] / "data"
ZONE = "dyn.example.test"
WILD = "wild.example.test"
SERIAL = 2026112501
KEY = TsigKey.generate("answers-key")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_tool("dig")
    proc = ServerProcess(
        tmp_path_factory.mktemp("answers"),
        {
            ZONE: (DATA / "example.zone").read_text(),
            WILD: (DATA / "wild.zone").read_text(),
        },
        {"keys": [KEY.config()]},
    )
    proc.start()
    yield proc
    proc.stop()


def z(name: str) -> str:
    return f"{name}.{ZONE}." if name != "@" else f"{ZONE}."


def wz(name: str) -> str:
    return f"{name}.{WILD}." if name != "@" else f"{WILD}."


def ask(server: ServerProcess, *args: str) -> DigResult:
    result = dig(server, *args)
    assert result.responded, result.raw + result.stderr
    assert "ra" not in result.flags  # authoritative only: RA is never set
    return result


def rdata(result: DigResult, section: str = "answer") -> list[tuple[str, int, str, str]]:
    return [(r[0], r[1], r[3], r[4]) for r in getattr(result, section)]


def assert_negative(result: DigResult, status: str, apex: str, ttl: int) -> None:
    """RFC 2308: AA, the apex SOA alone in authority, TTL min(SOA TTL, SOA minimum)."""
    assert result.status == status, result.raw
    assert "aa" in result.flags
    soa = result.records("authority")
    assert len(soa) == 1 and soa[0][3] == "SOA" and soa[0][0].lower() == apex
    assert soa[0][1] == ttl
    assert not result.additional


def udp_raw(server: ServerProcess, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(data, ("127.0.0.1", server.dns_port))
        return sock.recv(65535)


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def tcp_raw(server: ServerProcess, messages: list[bytes]) -> list[bytes]:
    """Send every message at once on one connection; read one answer each."""
    with socket.create_connection(("127.0.0.1", server.dns_port), timeout=3) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(m)) + m for m in messages))
        answers = []
        for _ in messages:
            (size,) = struct.unpack("!H", recv_exact(sock, 2))
            answers.append(recv_exact(sock, size))
        return answers


def assert_zone_unchanged(server: ServerProcess) -> None:
    """Refused and malformed input never changes the zone."""
    assert server.soa_serial(ZONE) == SERIAL
    assert ask(server, z("www"), "A").rdata() == ["192.0.2.10"]


# -- positive answers ----------------------------------------------------------------


def test_soa_is_authoritative(server: ServerProcess) -> None:
    result = ask(server, ZONE, "SOA")
    assert result.status == "NOERROR"
    assert "aa" in result.flags and "qr" in result.flags
    (soa,) = result.answer
    assert soa[3] == "SOA" and soa[4].split()[2] == str(SERIAL)


def test_noerror_with_data(server: ServerProcess) -> None:
    result = ask(server, z("www"), "A")
    assert result.status == "NOERROR" and "aa" in result.flags
    assert rdata(result) == [(z("www"), 3600, "A", "192.0.2.10")]
    assert not result.authority
    assert ask(server, z("www"), "AAAA").rdata() == ["2001:db8::10"]


# -- negative answers ------------------------------------------------------------------


def test_nodata(server: ServerProcess) -> None:
    result = ask(server, z("www"), "MX")
    assert not result.answer
    assert_negative(result, "NOERROR", z("@"), 300)  # SOA TTL 3600, minimum 300
    result = ask(server, wz("explicit"), "A")
    assert not result.answer
    assert_negative(result, "NOERROR", wz("@"), 600)  # SOA TTL 600, minimum 3600


def test_nxdomain(server: ServerProcess) -> None:
    result = ask(server, z("nope"), "A")
    assert not result.answer
    assert_negative(result, "NXDOMAIN", z("@"), 300)


def test_empty_non_terminal_is_nodata(server: ServerProcess) -> None:
    assert_negative(ask(server, z("b.c"), "A"), "NOERROR", z("@"), 300)
    assert_negative(ask(server, z("x.c"), "A"), "NXDOMAIN", z("@"), 300)


# -- CNAME ------------------------------------------------------------------------------


def test_cname_chain_inside_the_zone(server: ServerProcess) -> None:
    result = ask(server, z("chain"), "A")
    assert result.status == "NOERROR" and "aa" in result.flags
    assert rdata(result) == [
        (z("chain"), 3600, "CNAME", z("alias")),
        (z("alias"), 3600, "CNAME", z("www")),
        (z("www"), 3600, "A", "192.0.2.10"),
    ]


def test_cname_leaving_the_zone(server: ServerProcess) -> None:
    result = ask(server, z("outside"), "A")
    assert result.status == "NOERROR" and "aa" in result.flags
    assert rdata(result) == [(z("outside"), 3600, "CNAME", "www.example.net.")]
    assert not result.authority


def test_dangling_cname(server: ServerProcess) -> None:
    result = ask(server, z("dangling"), "A")
    assert rdata(result) == [(z("dangling"), 3600, "CNAME", z("nothere"))]
    assert_negative(result, "NXDOMAIN", z("@"), 300)


def test_cname_loop(server: ServerProcess) -> None:
    result = ask(server, z("loop1"), "A")
    assert result.status == "SERVFAIL"  # as BIND 9 answers a loop
    assert [r[3] for r in result.answer] == ["CNAME", "CNAME"]


def test_cname_into_a_delegation(server: ServerProcess) -> None:
    result = ask(server, wz("tocut"), "A")
    assert result.status == "NOERROR" and "aa" in result.flags
    assert rdata(result) == [(wz("tocut"), 600, "CNAME", wz("host.cut"))]
    assert rdata(result, "authority") == [(wz("cut"), 600, "NS", wz("ns.cut"))]
    assert {r[4] for r in result.additional} == {"192.0.2.202", "2001:db8::202"}


# -- wildcards (RFC 4592) ---------------------------------------------------------------


def test_wildcard(server: ServerProcess) -> None:
    result = ask(server, z("anything.wild"), "A")
    assert result.status == "NOERROR" and "aa" in result.flags
    assert rdata(result) == [(z("anything.wild"), 3600, "A", "192.0.2.99")]
    result = ask(server, z("two.deep.wild"), "TXT")
    assert rdata(result) == [(z("two.deep.wild"), 3600, "TXT", '"wildcard"')]


def test_wildcard_nodata(server: ServerProcess) -> None:
    result = ask(server, z("anything.wild"), "MX")
    assert not result.answer
    assert_negative(result, "NOERROR", z("@"), 300)


def test_wildcard_cname(server: ServerProcess) -> None:
    result = ask(server, z("host.wildcname"), "A")
    assert rdata(result) == [
        (z("host.wildcname"), 3600, "CNAME", z("www")),
        (z("www"), 3600, "A", "192.0.2.10"),
    ]


def test_wildcard_below_an_empty_non_terminal(server: ServerProcess) -> None:
    """RFC 4592 §2.2.2: "ent" exists (empty), so x.ent does not match "*" at the apex."""
    assert ask(server, wz("elsewhere"), "A").rdata() == ["192.0.2.200"]
    assert_negative(ask(server, wz("x.ent"), "A"), "NXDOMAIN", wz("@"), 600)
    assert_negative(ask(server, wz("ent"), "A"), "NOERROR", wz("@"), 600)
    assert ask(server, wz("a.ent"), "A").rdata() == ["192.0.2.201"]


# -- delegations -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "rdtype"), [("host.sub", "A"), ("sub", "NS"), ("ns.sub", "A")])
def test_referral_with_glue(server: ServerProcess, name: str, rdtype: str) -> None:
    result = ask(server, z(name), rdtype)
    assert result.status == "NOERROR"
    assert "aa" not in result.flags  # a referral is not authoritative
    assert not result.answer
    assert sorted(rdata(result, "authority")) == [
        (z("sub"), 3600, "NS", "ns.other.example."),
        (z("sub"), 3600, "NS", z("ns.sub")),
    ]
    assert rdata(result, "additional") == [(z("ns.sub"), 3600, "A", "192.0.2.53")]


def test_ds_at_the_cut_is_answered_by_the_parent(server: ServerProcess) -> None:
    result = ask(server, wz("cut"), "DS")
    assert result.status == "NOERROR" and "aa" in result.flags
    assert [r[3] for r in result.answer] == ["DS"]
    assert result.answer[0][4].startswith("12345 13 2 ")
    assert_negative(ask(server, z("sub"), "DS"), "NOERROR", z("@"), 300)


# -- names, ANY, REFUSED -----------------------------------------------------------------


def test_case_insensitive_with_the_query_case_echoed(server: ServerProcess) -> None:
    result = ask(server, "wWw.DYN.Example.TEST.", "A")
    assert result.question == [("wWw.DYN.Example.TEST.", "IN", "A")]
    assert result.rdata() == ["192.0.2.10"]
    assert ask(server, "WWW2.dyn.example.test.", "A").rdata() == ["192.0.2.11"]
    # byte for byte, over UDP and TCP
    query = dns.message.make_query("mAiL.dYn.ExAmPlE.tEsT.", "A")
    wire = query.to_wire()
    for answer in (udp_raw(server, wire), *tcp_raw(server, [wire])):
        end = 12 + len(query.question[0].name.to_wire()) + 4
        assert answer[12:end] == wire[12:end]


def test_any_gets_the_full_set(server: ServerProcess) -> None:
    result = ask(server, ZONE, "ANY")
    assert result.status == "NOERROR" and "aa" in result.flags
    assert sorted({r[3] for r in result.answer}) == ["MX", "NS", "SOA", "TXT"]


@pytest.mark.parametrize("qname", ["example.org.", "test.", "example.test.", "other.test."])
def test_refused_outside_the_served_zones(server: ServerProcess, qname: str) -> None:
    result = ask(server, qname, "A")
    assert result.status == "REFUSED"
    assert "aa" not in result.flags
    assert not result.answer and not result.authority
    assert_zone_unchanged(server)


# -- malformed messages and opcodes ------------------------------------------------------

PLAIN = dns.message.make_query(f"www.{ZONE}.", "A", use_edns=False)
PLAIN.id = 0xBEEF
WIRE = PLAIN.to_wire()
MALFORMED = {
    "truncated question": WIRE[:-2],
    "qdcount 2": WIRE[:4] + b"\x00\x02" + WIRE[6:] + WIRE[12:],
    "trailing garbage": WIRE + b"\xde\xad",
    "bad label type": WIRE[:12] + b"\x41abc" + WIRE[12:],
    "label past the end": WIRE[:12] + b"\x3fabc",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_formerr_for_malformed_queries(server: ServerProcess, name: str) -> None:
    data = MALFORMED[name]
    for answer in (udp_raw(server, data), *tcp_raw(server, [data])):
        assert answer[:2] == b"\xbe\xef"
        assert answer[2] & 0x80  # a response
        assert answer[3] & 0x0F == dns.rcode.FORMERR
    assert_zone_unchanged(server)


@pytest.mark.parametrize("opcode", ["status", "3"])
def test_notimp_for_unknown_opcodes(server: ServerProcess, opcode: str) -> None:
    result = ask(server, f"+opcode={opcode}", z("www"), "A")
    assert result.status == "NOTIMP"
    assert not result.answer
    assert_zone_unchanged(server)


# -- EDNS(0) ------------------------------------------------------------------------------


def test_edns_opt_echoed(server: ServerProcess) -> None:
    result = ask(server, z("www"), "A")  # dig sends EDNS(0) with a 1232 payload by default
    assert result.edns.present and result.edns.version == 0 and result.edns.udp == 1232
    assert "do" not in result.edns.flags
    result = ask(server, "+noedns", z("www"), "A")
    assert not result.edns.present


def test_do_bit_echoed(server: ServerProcess) -> None:
    for name, rdtype in (("www", "A"), ("nope", "A"), ("host.sub", "A")):
        result = ask(server, "+dnssec", z(name), rdtype)
        assert "do" in result.edns.flags, result.raw


def test_badvers_for_edns_version_1(server: ServerProcess) -> None:
    result = ask(server, "+edns=1", "+noednsnegotiation", z("www"), "A")
    assert result.status == "BADVERS"
    assert result.edns.present and result.edns.version == 0
    assert not result.answer
    assert_zone_unchanged(server)


def test_payload_honoured(server: ServerProcess) -> None:
    """big TXT is ~700 bytes: TC for a 512-byte client, the whole answer for a 4096 one."""
    small = ask(server, "+bufsize=512", "+ignore", z("big"), "TXT")
    assert "tc" in small.flags and not small.answer
    large = ask(server, "+bufsize=4096", "+ignore", z("big"), "TXT")
    assert "tc" not in large.flags and len(large.answer) == 6
    assert large.msg_size is not None and large.msg_size <= 1232
    plain = ask(server, "+noedns", "+ignore", z("big"), "TXT")
    assert "tc" in plain.flags and not plain.answer


def test_truncated_answer_retried_over_tcp(server: ServerProcess) -> None:
    # dig retries over TCP on its own when TC is set (+ignore off)
    result = ask(server, "+bufsize=512", z("big"), "TXT")
    assert result.truncated_retry
    assert "tc" not in result.flags and len(result.answer) == 6
    assert result.protocol == "TCP"
    result = ask(server, "+tcp", "+noedns", z("big"), "TXT")
    assert "tc" not in result.flags and len(result.answer) == 6


def test_tcp_pipelined_queries(server: ServerProcess) -> None:
    """Three queries sent at once on one connection: three answers, ids matching."""
    queries = []
    for ident, (name, rdtype) in zip(
        (101, 202, 303), [("www", "A"), ("nope", "A"), ("big", "TXT")], strict=True
    ):
        query = dns.message.make_query(z(name), rdtype)
        query.id = ident
        queries.append(query)
    answers = [dns.message.from_wire(a) for a in tcp_raw(server, [q.to_wire() for q in queries])]
    assert [a.id for a in answers] == [101, 202, 303]
    assert [dns.rcode.to_text(a.rcode()) for a in answers] == ["NOERROR", "NXDOMAIN", "NOERROR"]
    assert len(answers[2].answer[0]) == 6 and not answers[2].flags & dns.flags.TC


# -- TSIG -----------------------------------------------------------------------------------


def test_signed_query_gets_a_signed_answer(server: ServerProcess) -> None:
    for tcp in (False, True):
        query = dns.message.make_query(z("www"), "A")
        query.use_tsig(KEY.keyring(), keyname=KEY.name)
        send = dns.query.tcp if tcp else dns.query.udp
        # dnspython verifies the response's TSIG against the request and raises if wrong
        response = send(query, "127.0.0.1", port=server.dns_port, timeout=3)
        assert response.had_tsig
        assert response.flags & dns.flags.AA
        assert [r.to_text() for r in response.answer[0]] == ["192.0.2.10"]
    result = ask(server, "-y", KEY.dig_arg(), z("www"), "A")
    assert result.rdata() == ["192.0.2.10"]
    assert result.tsig and "NOERROR" in result.tsig[0][4]
    assert not any("could not be validated" in note.lower() for note in result.notes)


def test_unknown_tsig_key_is_notauth(server: ServerProcess) -> None:
    stranger = TsigKey.generate("stranger-key")
    query = dns.message.make_query(z("www"), "A")
    query.use_tsig(stranger.keyring(), keyname=stranger.name)
    response = dns.message.from_wire(udp_raw(server, query.to_wire()), keyring=False)
    assert response.rcode() == dns.rcode.NOTAUTH
    assert response.tsig_error == dns.rcode.BADKEY
    assert not response.answer
    assert_zone_unchanged(server)


# -- HTTP: /healthz and /metrics ----------------------------------------------------------


def test_healthz(server: ServerProcess) -> None:
    status, body = http_get(f"{server.http_url}/healthz")
    assert status == 200
    assert body.strip() == "ok"


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match[3])
    return None


def test_metrics(server: ServerProcess) -> None:
    # enough UDP queries that the sampled latency histogram sees some
    for _ in range(40):
        dns.query.udp(
            dns.message.make_query(z("www"), "AAAA"), "127.0.0.1", port=server.dns_port, timeout=3
        )
    dns.query.udp(
        dns.message.make_query(z("nope"), "MX"), "127.0.0.1", port=server.dns_port, timeout=3
    )
    status, text = http_get(f"{server.http_url}/metrics")
    assert status == 200
    aaaa = metric(text, "ddns_queries_total", qtype="AAAA", rcode="NOERROR")
    assert aaaa is not None and aaaa >= 40
    nx = metric(text, "ddns_queries_total", qtype="MX", rcode="NXDOMAIN")
    assert nx is not None and nx >= 1
    assert "# TYPE ddns_query_latency_seconds histogram" in text
    count = metric(text, "ddns_query_latency_seconds_count")
    assert count is not None and count >= 1
    assert metric(text, "ddns_query_latency_seconds_bucket", le="+Inf") == count
    for zone, serial, path in ((ZONE, SERIAL, "example.zone"), (WILD, 7, "wild.zone")):
        assert metric(text, "ddns_zone_serial", zone=f"{zone}.") == serial
        parsed = dns.zone.from_file(str(DATA / path), zone, relativize=False)
        records = sum(len(rdataset) for _, rdataset in parsed.iterate_rdatasets())
        assert metric(text, "ddns_zone_records", zone=f"{zone}.") == records
