"""Issue 14 against the real server: signed failure replies over UDP, a bad
MAC with trailing bytes over UDP and pipelined TCP, the TSIG fudge cap, NS
below the apex for a key without types, DNAME answers with dig.

Each request that must fail leaves the zone and its serial as they were.
"""

from __future__ import annotations

import socket
import sqlite3
import struct
import time
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.update
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
ADMIN = TsigKey.generate("hard-admin", "hmac-sha256")
HOST = TsigKey.generate("hard-host", "hmac-sha256")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_tool("dig")
    text = example_zone_text() + "red 600 IN DNAME target\ntarget 300 IN A 192.0.2.40\n"
    text += "x.target 300 IN A 192.0.2.41\n"
    srv = ServerProcess(
        tmp_path_factory.mktemp("server"),
        {ZONE: text},
        {"keys": [ADMIN.config(), HOST.config()]},
        zone_extra={
            ZONE: {
                "update_policy": [
                    {"grant": "hard-admin", "match": "zonesub"},
                    {"grant": "hard-host", "match": "subdomain", "name": f"h.{ZONE}"},
                ],
                "allow_transfer": ["127.0.0.0/8"],
            }
        },
    )
    srv.start()
    yield srv
    srv.stop()
    print(f"----- server log (tail) -----\n{tail(srv.log_text())}")


def snapshot(server: ServerProcess) -> tuple[int, list[tuple[str, int, str, str, str]]]:
    transfer = dig(server, ZONE, "AXFR")
    assert transfer.answer, transfer.raw
    return server.soa_serial(), sorted(set(transfer.answer))


@pytest.fixture
def unchanged(server: ServerProcess) -> Iterator[None]:
    before = snapshot(server)
    yield
    assert snapshot(server) == before


def wire_of(message: dns.message.Message) -> bytes:
    out = message.to_wire()
    assert out is not None
    return out


def no_traceback(server: ServerProcess) -> None:
    assert "Traceback" not in server.log_text()


def signed_update(key: TsigKey, name: str = "hard", rdtype: str = "A") -> dns.update.UpdateMessage:
    message = dns.update.UpdateMessage(ZONE)
    message.add(f"{name}.{ZONE}.", 60, rdtype, "192.0.2.200" if rdtype == "A" else "ns.evil.test.")
    message.use_tsig(key.keyring(), key.name, algorithm=key.algorithm)
    return message


# -- item 3 ------------------------------------------------------------------------------


def test_udp_servfail_after_a_failed_journal_write_is_signed(server: ServerProcess) -> None:
    before = snapshot(server)
    journal = server.data_dir / "journal.sqlite3"
    db = sqlite3.connect(journal)
    try:
        # A real SQLite failure, as a full disk gives: a trigger aborts the insert.
        db.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON versions "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        db.commit()
        message = signed_update(ADMIN, "lost")
        response = dns.query.udp(message, "127.0.0.1", timeout=3, port=server.dns_port)
        # dnspython checked the response's TSIG against the request's MAC.
        assert response.had_tsig and response.tsig_error == 0
        assert response.rcode() == dns.rcode.SERVFAIL
    finally:
        db.execute("DROP TRIGGER IF EXISTS fail")
        db.commit()
        db.close()
    assert snapshot(server) == before
    response = dns.query.udp(signed_update(ADMIN, "kept"), "127.0.0.1", 3, server.dns_port)
    assert response.rcode() == dns.rcode.NOERROR
    wait_for(lambda: "journal write failed" in server.log_text(), message="the log line")
    no_traceback(server)


# -- item 5 ------------------------------------------------------------------------------


def bad_mac_with_junk() -> bytes:
    message = dns.message.make_query(f"www.{ZONE}.", "A")
    message.use_tsig(ADMIN.keyring(), ADMIN.name, algorithm=ADMIN.algorithm)
    data = bytearray(wire_of(message))
    data[-10] ^= 0xFF  # a byte of the MAC
    return bytes(data) + b"\x00"


@pytest.mark.usefixtures("unchanged")
def test_bad_mac_with_trailing_byte_over_udp(server: ServerProcess) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(bad_mac_with_junk(), ("127.0.0.1", server.dns_port))
        reply = dns.message.from_wire(sock.recv(65535), keyring=False)
    assert reply.rcode() == dns.rcode.FORMERR
    no_traceback(server)


def read_frame(conn: socket.socket) -> bytes:
    (length,) = struct.unpack("!H", conn.recv(2, socket.MSG_WAITALL))
    return conn.recv(length, socket.MSG_WAITALL)


@pytest.mark.usefixtures("unchanged")
def test_bad_mac_with_trailing_byte_over_tcp_keeps_the_connection(server: ServerProcess) -> None:
    good = wire_of(dns.message.make_query(f"www.{ZONE}.", "A"))
    bad = bad_mac_with_junk()
    frames = b"".join(struct.pack("!H", len(m)) + m for m in (good, bad, good))
    with socket.create_connection(("127.0.0.1", server.dns_port), timeout=3) as conn:
        conn.sendall(frames)  # pipelined: three queries in one write
        replies = [dns.message.from_wire(read_frame(conn), keyring=False) for _ in range(3)]
        assert [r.rcode() for r in replies] == [0, dns.rcode.FORMERR, 0]
        assert replies[2].answer
        # and the connection still answers
        conn.sendall(struct.pack("!H", len(good)) + good)
        assert dns.message.from_wire(read_frame(conn)).answer
    no_traceback(server)


# -- item 13 -----------------------------------------------------------------------------


@pytest.mark.usefixtures("unchanged")
def test_fudge_65535_is_capped(server: ServerProcess) -> None:
    key = ADMIN.dnspython_key()
    message = dns.update.UpdateMessage(ZONE)
    message.add(f"late.{ZONE}.", 60, "A", "192.0.2.9")
    unsigned = wire_of(message)
    stale = int(time.time()) - 60000
    rdata = dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, stale, 65535, b"", message.id, 0, b""
    )
    signed, _ = dns.tsig.sign(unsigned, key, rdata, stale, b"")
    rdata_wire = signed.to_wire()
    owner = key.name.to_wire()
    assert rdata_wire is not None and owner is not None
    data = bytearray(unsigned)
    data += owner + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata_wire))
    data += rdata_wire
    struct.pack_into("!H", data, 10, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(bytes(data), ("127.0.0.1", server.dns_port))
        reply = dns.message.from_wire(sock.recv(65535), keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH
    assert reply.tsig is not None and reply.tsig[0].error == dns.rcode.BADTIME


# -- item 11 -----------------------------------------------------------------------------


@pytest.mark.usefixtures("unchanged")
def test_a_key_without_types_cannot_delegate_below_its_name(server: ServerProcess) -> None:
    for key, name in ((HOST, "sub.h"), (ADMIN, "deleg")):
        message = signed_update(key, name, "NS")
        response = dns.query.tcp(message, "127.0.0.1", timeout=3, port=server.dns_port)
        assert response.rcode() == dns.rcode.REFUSED
        assert response.had_tsig


# -- item 16 -----------------------------------------------------------------------------


def test_dname_answers_with_dig(server: ServerProcess) -> None:
    result = dig(server, f"x.red.{ZONE}", "A")
    assert result.status == "NOERROR"
    types = [record[3] for record in result.answer]
    assert types == ["DNAME", "CNAME", "A"]
    assert result.answer[1][0] == f"x.red.{ZONE}." and result.answer[1][1] == 600
    assert result.answer[2][4] == "192.0.2.41"


@pytest.mark.usefixtures("unchanged")
def test_type0_in_an_update_is_formerr(server: ServerProcess) -> None:
    message = dns.update.UpdateMessage(ZONE)
    message.add(f"zero.{ZONE}.", 60, dns.rdata.from_text("IN", "TYPE0", r"\# 1 00"))
    message.use_tsig(ADMIN.keyring(), ADMIN.name, algorithm=ADMIN.algorithm)
    response = dns.query.udp(message, "127.0.0.1", timeout=3, port=server.dns_port)
    assert response.rcode() == dns.rcode.FORMERR
