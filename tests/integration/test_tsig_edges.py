"""TSIG (RFC 8945) and malformed UPDATE edge cases that nsupdate cannot produce.

Driven with dnspython over UDP and raw sockets, against the real server.
Every request here fails, and each test checks that the zone (AXFR) and its
SOA serial are exactly as before.
"""

from __future__ import annotations

import hmac
import socket
import struct
import time
from collections.abc import Callable, Iterator

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig
import dns.update
import dns.wire
import pytest
from harness import (
    EXAMPLE_ZONE_NAME,
    ServerProcess,
    TsigKey,
    dig,
    example_zone_text,
    require_tool,
    tail,
    wait_for,
)

ZONE = EXAMPLE_ZONE_NAME
KEY = TsigKey.generate("edge-key", "hmac-sha256")
OTHER = TsigKey.generate("edge-key-512", "hmac-sha512")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_tool("dig")
    srv = ServerProcess(
        tmp_path_factory.mktemp("server"),
        {ZONE: example_zone_text()},
        {"keys": [KEY.config(), OTHER.config()]},
        zone_extra={
            ZONE: {
                "update_policy": [
                    {"grant": "edge-key", "match": "zonesub"},
                    {"grant": "edge-key-512", "match": "zonesub"},
                ],
                "allow_transfer": ["127.0.0.0/8"],
            }
        },
    )
    srv.start()
    yield srv
    srv.stop()
    print(f"----- server log (tail) -----\n{tail(srv.log_text())}")


@pytest.fixture
def unchanged(server: ServerProcess) -> Iterator[None]:
    """The test's requests must leave the zone and its serial as they were."""
    before = snapshot(server)
    yield
    assert snapshot(server) == before


def snapshot(server: ServerProcess) -> tuple[int, list[tuple[str, int, str, str, str]]]:
    transfer = dig(server, ZONE, "AXFR")
    assert transfer.answer, transfer.raw
    return server.soa_serial(), sorted(set(transfer.answer))


# -- building and sending messages ----------------------------------------------------


def update(host: str = "edge") -> dns.update.UpdateMessage:
    message = dns.update.UpdateMessage(ZONE)
    message.add(f"{host}.{ZONE}.", 60, "A", "192.0.2.200")
    return message


def wire_of(message: dns.message.Message) -> bytes:
    wire = message.to_wire()
    assert wire is not None
    return wire


def tsig_start(wire: bytes) -> int:
    """Where the last record (the TSIG) of a message starts."""
    qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", wire, 4)
    parser = dns.wire.Parser(wire, 12)
    for _ in range(qdcount):
        parser.get_name(decompress=True)
        parser.get_struct("!HH")
    for _ in range(ancount + nscount + arcount - 1):
        parser.get_name(decompress=True)
        parser.seek(parser.current + parser.get_struct("!HHIH")[3])
    return parser.current


def append_record(
    wire: bytes, owner: dns.name.Name, rdtype: int, rdclass: int, rdata: bytes
) -> bytes:
    out = bytearray(wire)
    owner_wire = owner.to_wire()
    assert owner_wire is not None
    out += owner_wire + struct.pack("!HHIH", rdtype, rdclass, 0, len(rdata)) + rdata
    struct.pack_into("!H", out, 10, struct.unpack_from("!H", out, 10)[0] + 1)
    return bytes(out)


def sign(
    wire: bytes,
    key: dns.tsig.Key,
    *,
    time_signed: int | None = None,
    fudge: int = 300,
    mangle: Callable[[bytes], bytes] | None = None,
) -> tuple[bytes, bytes]:
    """`wire` signed with `key` at `time_signed`; returns (wire, the MAC sent).

    dnspython always signs with the current time and the whole MAC; this lets
    a test pick the time and change the MAC (truncate it, flip bits).
    """
    now = int(time.time()) if time_signed is None else time_signed
    message_id = struct.unpack_from("!H", wire)[0]
    rdata = dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, now, fudge, b"", message_id, 0, b""
    )
    signed, _ = dns.tsig.sign(wire, key, rdata, now, b"")
    if mangle is not None:
        signed = signed.replace(mac=mangle(signed.mac))
    rdata_wire = signed.to_wire()
    assert rdata_wire is not None
    return append_record(
        wire, key.name, dns.rdatatype.TSIG, dns.rdataclass.ANY, rdata_wire
    ), signed.mac


def exchange(server: ServerProcess, wire: bytes, tcp: bool = False) -> bytes:
    """Send raw bytes and return the raw response (no TSIG checks on our side)."""
    address = ("127.0.0.1", server.dns_port)
    if tcp:
        with socket.create_connection(address, timeout=3) as conn:
            conn.sendall(struct.pack("!H", len(wire)) + wire)
            head = conn.recv(2, socket.MSG_WAITALL)
            (length,) = struct.unpack("!H", head)
            return conn.recv(length, socket.MSG_WAITALL)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(wire, address)
        return sock.recv(65535)


def parse(response: bytes) -> dns.message.Message:
    return dns.message.from_wire(response, keyring=False)


def tsig_of(response: bytes) -> dns.rdtypes.ANY.TSIG.TSIG:
    message = parse(response)
    assert message.tsig is not None, f"no TSIG in the response:\n{message}"
    rdata = message.tsig[0]
    assert isinstance(rdata, dns.rdtypes.ANY.TSIG.TSIG)
    return rdata


def mac_verifies(response: bytes, key: dns.tsig.Key, request_mac: bytes) -> bool:
    """Check a signed response's MAC by hand (dnspython refuses to when the
    TSIG carries an error)."""
    rdata = tsig_of(response)
    start = tsig_start(response)
    arcount = struct.unpack_from("!H", response, 10)[0] - 1
    unsigned = response[:10] + struct.pack("!H", arcount) + response[12:start]
    expected, _ = dns.tsig.sign(unsigned, key, rdata, rdata.time_signed, request_mac)
    return hmac.compare_digest(expected.mac, rdata.mac)


def rcode_of(response: bytes) -> str:
    return dns.rcode.to_text(parse(response).rcode())


# -- TSIG -----------------------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_good_signature_gets_a_signed_answer(server: ServerProcess, tcp: bool) -> None:
    message = update(f"signed-{'tcp' if tcp else 'udp'}")
    message.use_tsig(KEY.keyring(), KEY.name, algorithm=KEY.algorithm)
    wire = wire_of(message)
    response = exchange(server, wire, tcp)
    checked = dns.message.from_wire(response, keyring=KEY.keyring(), request_mac=message.mac)
    assert checked.rcode() == dns.rcode.NOERROR
    assert checked.had_tsig and checked.tsig_error == 0


@pytest.mark.usefixtures("unchanged")
def test_bad_mac_is_badsig(server: ServerProcess) -> None:
    wire, _ = sign(wire_of(update()), KEY.dnspython_key(), mangle=lambda mac: bytes(32))
    response = exchange(server, wire)
    assert rcode_of(response) == "NOTAUTH"
    tsig = tsig_of(response)
    assert tsig.error == dns.rcode.BADSIG
    assert tsig.mac == b""  # RFC 8945 §5.3.2: unsigned


@pytest.mark.usefixtures("unchanged")
def test_wrong_secret_is_badsig(server: ServerProcess) -> None:
    impostor = dns.tsig.Key(KEY.name, TsigKey.generate("x").secret, KEY.algorithm)
    wire, _ = sign(wire_of(update()), impostor)
    response = exchange(server, wire)
    assert rcode_of(response) == "NOTAUTH"
    assert tsig_of(response).error == dns.rcode.BADSIG


@pytest.mark.usefixtures("unchanged")
def test_unknown_key_is_badkey(server: ServerProcess) -> None:
    stranger = TsigKey.generate("stranger").dnspython_key()
    wire, _ = sign(wire_of(update()), stranger)
    response = exchange(server, wire)
    assert rcode_of(response) == "NOTAUTH"
    tsig = tsig_of(response)
    assert tsig.error == dns.rcode.BADKEY and tsig.mac == b""
    assert parse(response).keyname == stranger.name


@pytest.mark.usefixtures("unchanged")
def test_known_key_with_another_algorithm_is_badkey(server: ServerProcess) -> None:
    # BIND looks keys up by name and algorithm
    wrong = dns.tsig.Key(KEY.name, KEY.secret, dns.tsig.HMAC_SHA512)
    wire, _ = sign(wire_of(update()), wrong)
    response = exchange(server, wire)
    assert rcode_of(response) == "NOTAUTH"
    assert tsig_of(response).error == dns.rcode.BADKEY


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("skew", [-1000, 1000], ids=["past", "future"])
def test_time_outside_the_fudge_is_badtime(server: ServerProcess, skew: int) -> None:
    key = KEY.dnspython_key()
    stale = int(time.time()) + skew
    wire, request_mac = sign(wire_of(update()), key, time_signed=stale)
    response = exchange(server, wire)
    assert rcode_of(response) == "NOTAUTH"
    tsig = tsig_of(response)
    assert tsig.error == dns.rcode.BADTIME
    # RFC 8945 §5.2.3: signed; our time in "other data"; like BIND, the
    # request's time as the time signed
    assert mac_verifies(response, key, request_mac)
    assert len(tsig.other) == 6
    high, low = struct.unpack("!HI", tsig.other)
    assert abs(((high << 32) | low) - time.time()) < 10
    assert tsig.time_signed == stale


@pytest.mark.usefixtures("unchanged")
def test_small_fudge_is_honoured(server: ServerProcess) -> None:
    wire, _ = sign(
        wire_of(update()), KEY.dnspython_key(), time_signed=int(time.time()) - 30, fudge=5
    )
    assert tsig_of(exchange(server, wire)).error == dns.rcode.BADTIME


@pytest.mark.usefixtures("unchanged")
def test_bad_mac_and_bad_time_is_badsig(server: ServerProcess) -> None:
    """RFC 8945 §5.2: the MAC is checked before the time."""
    wire, _ = sign(
        wire_of(update()),
        KEY.dnspython_key(),
        time_signed=int(time.time()) - 1000,
        mangle=lambda mac: bytes(len(mac)),
    )
    assert tsig_of(exchange(server, wire)).error == dns.rcode.BADSIG


# RFC 8945 §5.2.2.1 MAC truncation, hmac-sha256 (32 octets; minimum 16)
@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("mangle", "rcode", "tsig_error"),
    [
        (lambda mac: mac[:8], "FORMERR", None),  # below max(10, 16): FORMERR
        (lambda mac: mac[:15], "FORMERR", None),
        (lambda mac: mac + b"\0" * 4, "FORMERR", None),  # longer than the hash
        (lambda mac: mac[:16], "NOTAUTH", dns.rcode.BADTRUNC),  # allowed, but not by us
        (lambda mac: mac[:20], "NOTAUTH", dns.rcode.BADTRUNC),
        (lambda mac: bytes(16), "NOTAUTH", dns.rcode.BADSIG),  # allowed length, wrong MAC
        (lambda mac: b"", "NOTAUTH", dns.rcode.BADSIG),  # no MAC at all
    ],
    ids=["8", "15", "36", "16-valid", "20-valid", "16-wrong", "empty"],
)
def test_truncated_mac(
    server: ServerProcess,
    mangle: Callable[[bytes], bytes],
    rcode: str,
    tsig_error: int | None,
) -> None:
    key = KEY.dnspython_key()
    wire, request_mac = sign(wire_of(update()), key, mangle=mangle)
    response = exchange(server, wire)
    assert rcode_of(response) == rcode
    if tsig_error is None:
        return
    tsig = tsig_of(response)
    assert tsig.error == tsig_error
    if tsig_error == dns.rcode.BADTRUNC:
        # the MAC verified: the error is signed, over the truncated request MAC
        assert mac_verifies(response, key, request_mac)


@pytest.mark.usefixtures("unchanged")
def test_truncated_mac_with_bad_time_is_badtime(server: ServerProcess) -> None:
    key = KEY.dnspython_key()
    wire, request_mac = sign(
        wire_of(update()), key, time_signed=int(time.time()) - 1000, mangle=lambda mac: mac[:16]
    )
    response = exchange(server, wire)
    assert tsig_of(response).error == dns.rcode.BADTIME
    assert mac_verifies(response, key, request_mac)


@pytest.mark.usefixtures("unchanged")
def test_tsig_not_last_is_formerr(server: ServerProcess) -> None:
    wire, _ = sign(wire_of(update()), KEY.dnspython_key())
    wire = append_record(
        wire, dns.name.from_text(ZONE), dns.rdatatype.TXT, dns.rdataclass.IN, b"\x01x"
    )
    assert rcode_of(exchange(server, wire)) == "FORMERR"


@pytest.mark.usefixtures("unchanged")
def test_sha512_key_works_and_errors_are_signed(server: ServerProcess) -> None:
    message = dns.update.UpdateMessage(ZONE)
    message.add("x.other.test.", 60, "A", "192.0.2.1")  # outside the zone: NOTZONE
    message.use_tsig(OTHER.keyring(), OTHER.name, algorithm=OTHER.algorithm)
    response = exchange(server, wire_of(message))
    checked = dns.message.from_wire(response, keyring=OTHER.keyring(), request_mac=message.mac)
    assert checked.rcode() == dns.rcode.NOTZONE
    assert checked.had_tsig


# -- malformed UPDATE messages and zone section errors ----------------------------------


def header(qd: int, an: int, ns: int, ar: int = 0, message_id: int = 4242) -> bytes:
    return struct.pack("!HHHHHH", message_id, dns.opcode.UPDATE << 11, qd, an, ns, ar)


def zone_rr(
    name: str = ZONE, rdtype: int = dns.rdatatype.SOA, rdclass: int = dns.rdataclass.IN
) -> bytes:
    owner = dns.name.from_text(name).to_wire()
    assert owner is not None
    return owner + struct.pack("!HH", rdtype, rdclass)


def rr(name: str, rdtype: int, rdclass: int, ttl: int, rdata: bytes) -> bytes:
    owner = dns.name.from_text(name).to_wire()
    assert owner is not None
    return owner + struct.pack("!HHIH", rdtype, rdclass, ttl, len(rdata)) + rdata


A_RDATA = bytes([192, 0, 2, 99])
HOST = f"bad.{ZONE}"
IN = dns.rdataclass.IN
ANY = dns.rdataclass.ANY
NONE = dns.rdataclass.NONE

MALFORMED = {
    # zone section (RFC 2136 §3.1.1): exactly one RR, type SOA
    "no-zone": (header(0, 0, 1) + rr(HOST, 1, IN, 60, A_RDATA), "FORMERR"),
    "two-zones": (header(2, 0, 0) + zone_rr() + zone_rr(), "FORMERR"),
    "zone-type-a": (header(1, 0, 0) + zone_rr(rdtype=dns.rdatatype.A), "FORMERR"),
    "zone-class-any": (header(1, 0, 0) + zone_rr(rdclass=ANY), "FORMERR"),
    "zone-not-served": (header(1, 0, 0) + zone_rr("other.test"), "NOTAUTH"),
    "zone-below-ours": (header(1, 0, 0) + zone_rr(f"www.{ZONE}"), "NOTAUTH"),
    "zone-class-ch": (header(1, 0, 0) + zone_rr(rdclass=dns.rdataclass.CH), "NOTAUTH"),
    # prerequisites (§3.2): class ANY/NONE with rdata, TTL not zero, bad class
    "prereq-any-rdata": (header(1, 1, 0) + zone_rr() + rr(HOST, 1, ANY, 0, A_RDATA), "FORMERR"),
    "prereq-none-rdata": (header(1, 1, 0) + zone_rr() + rr(HOST, 1, NONE, 0, A_RDATA), "FORMERR"),
    "prereq-ttl": (header(1, 1, 0) + zone_rr() + rr(f"www.{ZONE}", 255, ANY, 60, b""), "FORMERR"),
    "prereq-class-ch": (
        header(1, 1, 0) + zone_rr() + rr(f"www.{ZONE}", 16, dns.rdataclass.CH, 0, b"\x01x"),
        "FORMERR",
    ),
    "prereq-notzone": (
        header(1, 1, 0) + zone_rr() + rr("x.other.test", 255, ANY, 0, b""),
        "NOTZONE",
    ),
    # update section (§3.4.1): meta types, delete with rdata or TTL, bad class, outside the zone
    "update-type-any": (header(1, 0, 1) + zone_rr() + rr(HOST, 255, IN, 60, b""), "FORMERR"),
    "update-type-axfr": (header(1, 0, 1) + zone_rr() + rr(HOST, 252, IN, 60, b""), "FORMERR"),
    "update-any-rdata": (header(1, 0, 1) + zone_rr() + rr(HOST, 1, ANY, 0, A_RDATA), "FORMERR"),
    "update-any-ttl": (header(1, 0, 1) + zone_rr() + rr(HOST, 1, ANY, 60, b""), "FORMERR"),
    "update-none-ttl": (header(1, 0, 1) + zone_rr() + rr(HOST, 1, NONE, 60, A_RDATA), "FORMERR"),
    "update-class-ch": (
        header(1, 0, 1) + zone_rr() + rr(HOST, 16, dns.rdataclass.CH, 60, b"\x01x"),
        "FORMERR",
    ),
    "update-bad-rdata": (header(1, 0, 1) + zone_rr() + rr(HOST, 1, IN, 60, b"\x01\x02"), "FORMERR"),
    "update-notzone": (
        header(1, 0, 1) + zone_rr() + rr("x.other.test", 1, IN, 60, A_RDATA),
        "NOTZONE",
    ),
    "truncated": ((header(1, 0, 1) + zone_rr() + rr(HOST, 1, IN, 60, A_RDATA))[:-3], "FORMERR"),
    "counts-too-big": (header(1, 0, 2) + zone_rr() + rr(HOST, 1, IN, 60, A_RDATA), "FORMERR"),
}


# the cases dnspython's parser rejects (RFC 2136 §3.1/§2.4: rdata where none may be)
PARSER_ERRORS = {"prereq-any-rdata", "prereq-none-rdata", "update-any-rdata", "update-bad-rdata"}


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("name"), list(MALFORMED))
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_malformed_updates(server: ServerProcess, name: str, signed: bool) -> None:
    wire, expected = MALFORMED[name]
    if signed and name not in ("truncated", "counts-too-big"):
        wire, _ = sign(wire, KEY.dnspython_key())
    if not signed and name.startswith(("prereq-", "update-")) and name not in PARSER_ERRORS:
        # Unsigned updates are refused before their prerequisites and update
        # RRs are looked at (BIND does the same); what dnspython cannot parse,
        # or a zone we do not serve, is answered before that.
        expected = "REFUSED"
    response = exchange(server, wire)
    assert rcode_of(response) == expected, parse(response)
    assert parse(response).id == 4242


@pytest.mark.usefixtures("unchanged")
def test_unsigned_update_is_refused(server: ServerProcess) -> None:
    response = exchange(server, wire_of(update("unsigned")))
    assert rcode_of(response) == "REFUSED"
    assert parse(response).tsig is None


def test_signed_update_after_all_that_still_works(server: ServerProcess) -> None:
    serial = server.soa_serial()
    wire, request_mac = sign(wire_of(update("final")), KEY.dnspython_key())
    response = exchange(server, wire)
    checked = dns.message.from_wire(response, keyring=KEY.keyring(), request_mac=request_mac)
    assert checked.rcode() == dns.rcode.NOERROR
    assert server.soa_serial() == serial + 1
    assert dig(server, f"final.{ZONE}", "A").rdata("A") == ["192.0.2.200"]


def test_tsig_failures_are_logged(server: ServerProcess) -> None:
    wire, _ = sign(wire_of(update()), KEY.dnspython_key(), mangle=lambda mac: bytes(32))
    exchange(server, wire)
    wait_for(
        lambda: "TSIG key edge-key: BADSIG" in server.log_text(),
        message="the BADSIG log line",
    )
