"""The TCP group commit (edge/dns.py TcpGroupCommit): UPDATEs read in one
reactor pass share one SQLite commit, no reply leaves before it, answers stay
in order per connection, and a failed commit confirms nothing.

Real journal and handler; the connections are DnsTcp protocols on Twisted's
StringTransport, the reactor a MemoryReactorClock (advance(0) ends the pass).
Every write to a transport records what a second connection to the journal
(another process) sees at that moment.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.testing import MemoryReactorClock, StringTransport

from ddns_server.dnsmsg import DnsHandler
from ddns_server.edge.dns import DnsTcp, DnsTcpFactory, TcpGroupCommit
from ddns_server.journal import Journal
from ddns_server.metrics import Metrics
from ddns_server.model import PolicyRule, Zone
from ddns_server.query import QueryEngine
from ddns_server.store import Store, records_from_file, zone_key
from ddns_server.update_handler import UpdateProcessor
from ddns_server.zonedata import ZoneData

DATA = Path(__file__).resolve().parents[1] / "data"
ORIGIN = dns.name.from_text("dyn.example.test")
KEY = zone_key(ORIGIN)
KEY_NAME = dns.name.from_text("home-key")
KEYRING = {KEY_NAME: dns.tsig.Key(KEY_NAME, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=")}
RULES = (PolicyRule(KEY_NAME, "zonesub", None, None),)


class SpyTransport(StringTransport):
    """A transport recording, per write, the journal's latest version id as
    another connection sees it."""

    def __init__(self, observer: Journal) -> None:
        super().__init__()
        self.observer = observer
        self.seen: list[int] = []

    def write(self, data: bytes) -> None:
        self.seen.append(self.observer.latest_id(KEY))
        super().write(data)

    def messages(self) -> list[bytes]:
        """The length-prefixed messages written so far."""
        out, data = [], self.value()
        while data:
            (size,) = struct.unpack("!H", data[:2])
            out.append(data[2 : 2 + size])
            data = data[2 + size :]
        return out


@dataclass
class Tcp:
    store: Store
    factory: DnsTcpFactory
    reactor: MemoryReactorClock
    observer: Journal
    commits: list[str] = field(default_factory=list)

    @property
    def zone(self) -> ZoneData:
        zone = self.store.zone_for(ORIGIN)
        assert zone is not None
        return zone

    def connect(self) -> tuple[DnsTcp, SpyTransport]:
        conn = self.factory.buildProtocol(None)
        transport = SpyTransport(self.observer)
        conn.makeConnection(transport)
        return conn, transport


def framed(*messages: dns.message.Message) -> bytes:
    return b"".join(struct.pack("!H", len(w)) + w for w in (m.to_wire() for m in messages))


def update(host: str, address: str = "192.0.2.77") -> dns.update.UpdateMessage:
    message = dns.update.UpdateMessage(ORIGIN)
    message.add(dns.name.from_text(host, ORIGIN), 60, "A", address)
    message.use_tsig(KEYRING, KEY_NAME, algorithm=dns.tsig.HMAC_SHA256)
    return message


def parse(wire: bytes, request: dns.message.Message) -> dns.message.Message:
    return dns.message.from_wire(wire, keyring=KEYRING, request_mac=request.mac or b"")


@pytest.fixture
def tcp(tmp_path: Path) -> Iterator[Tcp]:
    path = tmp_path / "journal.sqlite3"
    store = Store(Journal(path))
    store.open_zone(ORIGIN, records_from_file(DATA / "example.zone", ORIGIN))
    handler = DnsHandler(QueryEngine(store.zones), dict(KEYRING))
    handler.updates = UpdateProcessor(store, [Zone(ORIGIN, None, RULES)])
    metrics = Metrics(CollectorRegistry(), lambda: store.zones)
    reactor = MemoryReactorClock()
    factory = DnsTcpFactory(handler, metrics, TcpGroupCommit(reactor, store, handler))
    observer = Journal(path)
    t = Tcp(store, factory, reactor, observer)
    store.journal.conn.set_trace_callback(
        lambda sql: t.commits.append(sql) if sql.strip().upper() == "COMMIT" else None
    )
    yield t
    observer.close()
    store.journal.close()


def test_updates_ready_at_once_share_one_commit_and_reply_after_it(tcp: Tcp) -> None:
    before = tcp.observer.latest_id(KEY)
    one, one_t = tcp.connect()
    two, two_t = tcp.connect()
    first, second, third = update("t1"), update("t2"), update("t3")
    one.dataReceived(framed(first, second))  # pipelined on one connection
    two.dataReceived(framed(third))  # and one more on another, same pass
    assert one_t.value() == b"" and two_t.value() == b""  # nothing before the pass ends
    tcp.reactor.advance(0)
    replies = one_t.messages() + two_t.messages()
    answers = [parse(w, r) for w, r in zip(replies, (first, second, third), strict=True)]
    assert [a.rcode() for a in answers] == [dns.rcode.NOERROR] * 3
    assert all(a.had_tsig for a in answers)
    latest = tcp.observer.latest_id(KEY)
    assert latest == before + 3
    assert one_t.seen == [latest, latest] and two_t.seen == [latest]  # after the commit
    assert len(tcp.commits) == 1  # one transaction for the three


def test_a_query_behind_an_update_is_answered_after_it_from_journaled_content(tcp: Tcp) -> None:
    conn, transport = tcp.connect()
    request = update("t9", "192.0.2.99")
    query = dns.message.make_query(dns.name.from_text("t9", ORIGIN), "A")
    conn.dataReceived(framed(request, query))
    assert transport.value() == b""
    tcp.reactor.advance(0)
    reply, answer = transport.messages()
    assert parse(reply, request).rcode() == dns.rcode.NOERROR
    got = dns.message.from_wire(answer)
    assert got.id == query.id
    assert [rr.to_text() for rrset in got.answer for rr in rrset] == ["192.0.2.99"]
    latest = tcp.observer.latest_id(KEY)
    assert transport.seen == [latest, latest]


def test_a_query_alone_is_answered_at_once(tcp: Tcp) -> None:
    conn, transport = tcp.connect()
    query = dns.message.make_query(dns.name.from_text("www", ORIGIN), "A")
    conn.dataReceived(framed(query))
    (answer,) = transport.messages()  # without waiting for the end of the pass
    assert dns.message.from_wire(answer).rcode() == dns.rcode.NOERROR
    assert not tcp.reactor.getDelayedCalls()


def test_a_failed_commit_answers_servfail_signed_and_changes_nothing(tcp: Tcp) -> None:
    tcp.observer.conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON versions BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    zone = tcp.zone
    before = (zone.serial, zone.record_set(), tcp.observer.latest_id(KEY))
    conn, transport = tcp.connect()
    first, second = update("lost1"), update("lost2")
    conn.dataReceived(framed(first, second))
    tcp.reactor.advance(0)
    replies = [parse(w, r) for w, r in zip(transport.messages(), (first, second), strict=True)]
    assert [(r.rcode(), r.had_tsig) for r in replies] == [(dns.rcode.SERVFAIL, True)] * 2
    assert (zone.serial, zone.record_set(), tcp.observer.latest_id(KEY)) == before
    assert not tcp.store.journal.conn.in_transaction
    # the next pass works again once the journal does
    tcp.observer.conn.execute("DROP TRIGGER refuse")
    transport.clear()
    request = update("back")
    conn.dataReceived(framed(request))
    tcp.reactor.advance(0)
    (wire,) = transport.messages()
    assert parse(wire, request).rcode() == dns.rcode.NOERROR
    assert tcp.zone.serial == before[0] + 1


def test_a_refused_update_in_a_batch_keeps_its_rcode_and_the_others_commit(tcp: Tcp) -> None:
    serial = tcp.zone.serial
    conn, transport = tcp.connect()
    good = update("ok1")
    bad = dns.update.UpdateMessage(ORIGIN)
    bad.present(dns.name.from_text("nowhere", ORIGIN), "A")  # prerequisite fails: NXRRSET
    bad.add(dns.name.from_text("nowhere", ORIGIN), 60, "A", "192.0.2.1")
    bad.use_tsig(KEYRING, KEY_NAME, algorithm=dns.tsig.HMAC_SHA256)
    conn.dataReceived(framed(good, bad))
    tcp.reactor.advance(0)
    answers = [parse(w, r) for w, r in zip(transport.messages(), (good, bad), strict=True)]
    assert [a.rcode() for a in answers] == [dns.rcode.NOERROR, dns.rcode.NXRRSET]
    assert tcp.zone.serial == serial + 1
    assert tcp.zone.rdataset(dns.name.from_text("nowhere", ORIGIN), dns.rdatatype.A) is None
