"""The UDP group commit (edge/dns.py DnsUdpPort.doRead): no reply before the
journal commit, and no held answer after a failed one.

A real UDP socket on loopback and a real journal; the port's read loop is
driven by calling doRead() (Twisted's MemoryReactorClock only records the reader).
What the server sends is observed at the socket: each sendto records what a
second connection to the journal (another process) sees at that moment.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.testing import MemoryReactorClock

from ddns_server.dnsmsg import DnsHandler
from ddns_server.edge.dns import DnsUdp, DnsUdpPort
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


class SpySocket:
    """The port's socket, recording the journal's latest version id (as another
    connection sees it) at every send.

    Reads come from `inbox`, datagrams the test already took off the real
    socket: a loaded machine may deliver loopback datagrams late (ksoftirqd),
    and a pass of doRead that saw only some of them would test nothing.
    """

    def __init__(self, sock: socket.socket, observer: Journal) -> None:
        self.sock = sock
        self.observer = observer
        self.sent: list[tuple[bytes, int]] = []  # (response, latest id visible when sent)
        self.inbox: list[tuple[bytes, Any]] = []

    def recvfrom(self, size: int) -> tuple[bytes, Any]:
        if not self.inbox:
            raise BlockingIOError  # what the non-blocking socket says when empty
        return self.inbox.pop(0)

    def receive(self, count: int, timeout: float = 10.0) -> None:
        """Take `count` datagrams off the real socket into the inbox (bounded wait)."""
        for _ in range(count):
            ready, _w, _x = select.select([self.sock], [], [], timeout)
            assert ready, "a datagram sent over loopback never arrived"
            self.inbox.append(self.sock.recvfrom(65535))

    def sendto(self, data: bytes, addr: Any) -> int:
        self.sent.append((data, self.observer.latest_id(KEY)))
        return self.sock.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@dataclass
class Udp:
    store: Store
    port: DnsUdpPort
    spy: SpySocket
    client: socket.socket
    observer: Journal
    calls: list[int] = field(default_factory=list)

    @property
    def zone(self) -> ZoneData:
        zone = self.store.zone_for(ORIGIN)
        assert zone is not None
        return zone

    def send(self, *messages: dns.message.Message) -> None:
        """Queue datagrams at the port, then run one pass of its read loop."""
        address = self.port.socket.getsockname()
        for message in messages:
            self.client.sendto(message.to_wire(), address)
        self.spy.receive(len(messages))  # all of them, so one pass sees them all
        self.port.doRead()
        assert not self.spy.inbox


def update(host: str, address: str = "192.0.2.77") -> dns.update.UpdateMessage:
    message = dns.update.UpdateMessage(ORIGIN)
    message.add(dns.name.from_text(host, ORIGIN), 60, "A", address)
    message.use_tsig(KEYRING, KEY_NAME, algorithm=dns.tsig.HMAC_SHA256)
    return message


@pytest.fixture
def udp(tmp_path: Path) -> Iterator[Udp]:
    path = tmp_path / "journal.sqlite3"
    store = Store(Journal(path))
    store.open_zone(ORIGIN, records_from_file(DATA / "example.zone", ORIGIN))
    handler = DnsHandler(QueryEngine(store.zones), dict(KEYRING))
    handler.updates = UpdateProcessor(store, [Zone(ORIGIN, None, RULES)])
    metrics = Metrics(CollectorRegistry(), lambda: store.zones)
    protocol = DnsUdp(handler, metrics, store)
    port = DnsUdpPort(0, protocol, interface="127.0.0.1", reactor=MemoryReactorClock())
    port.startListening()
    observer = Journal(path)
    spy = SpySocket(port.socket, observer)
    port.socket = spy
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(2)
    yield Udp(store, port, spy, client, observer)
    client.close()
    port.socket = spy.sock
    port.stopListening()
    observer.close()
    store.journal.close()


def parse(wire: bytes, request: dns.message.Message) -> dns.message.Message:
    return dns.message.from_wire(wire, keyring=KEYRING, request_mac=request.mac or b"")


def test_replies_leave_only_after_the_journal_commit(udp: Udp) -> None:
    before = udp.observer.latest_id(KEY)
    first, second = update("g1"), update("g2")
    query = dns.message.make_query(dns.name.from_text("www", ORIGIN), "A")
    udp.send(first, query, second)
    # every reply of the pass, the plain query's too, left after the commit
    assert len(udp.spy.sent) == 3
    latest = udp.observer.latest_id(KEY)
    assert latest == before + 2  # two versions, one transaction
    assert [seen for _wire, seen in udp.spy.sent] == [latest] * 3
    requests = (first, query, second)
    answers = [parse(wire, r) for (wire, _seen), r in zip(udp.spy.sent, requests, strict=True)]
    assert [a.rcode() for a in answers] == [dns.rcode.NOERROR] * 3


def test_a_failed_commit_answers_servfail_signed_and_drops_held_answers(udp: Udp) -> None:
    # The journal refuses the write (as a full disk would) when the batch commits.
    udp.observer.conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON versions BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    zone = udp.zone
    before = (zone.serial, zone.record_set(), udp.observer.latest_id(KEY))
    request = update("lost")
    query = dns.message.make_query(dns.name.from_text("lost", ORIGIN), "A")
    udp.send(request, query)
    # The UPDATE gets SERVFAIL, signed (TSIG verified here); the query's answer,
    # computed from the unjournaled content, is never sent.
    (wire, _seen) = udp.spy.sent[0]
    assert len(udp.spy.sent) == 1
    reply = parse(wire, request)
    assert reply.rcode() == dns.rcode.SERVFAIL and reply.had_tsig
    assert (zone.serial, zone.record_set(), udp.observer.latest_id(KEY)) == before
    assert not udp.store.journal.conn.in_transaction  # the lock was released
    # and the next pass works again once the journal does
    udp.observer.conn.execute("DROP TRIGGER refuse")
    udp.spy.sent.clear()
    request = update("back")
    udp.send(request)
    assert parse(udp.spy.sent[0][0], request).rcode() == dns.rcode.NOERROR
    assert udp.zone.serial == before[0] + 1


def test_a_raising_listener_changes_no_udp_answer(udp: Udp) -> None:
    seen: list[int] = []

    def broken(zone: ZoneData, version: object) -> None:
        raise RuntimeError("mirror down")

    udp.store.add_listener(broken)
    udp.store.add_listener(lambda zone, version: seen.append(zone.serial))
    serial = udp.zone.serial
    request = update("g1")
    udp.send(request)
    (wire, committed) = udp.spy.sent[0]
    assert parse(wire, request).rcode() == dns.rcode.NOERROR
    assert committed == udp.observer.latest_id(KEY) and udp.zone.serial == serial + 1
    assert seen == [serial + 1] and list(udp.store.hook_errors.values()) == [1]


def test_replies_leave_before_the_listeners_run(udp: Udp) -> None:
    # The audit line, NOTIFY, metrics and mirrors run after the replies are
    # out: they are not part of the client's wait (the commit is).
    sent_when_called: list[int] = []
    udp.store.add_listener(lambda zone, version: sent_when_called.append(len(udp.spy.sent)))
    first, second = update("l1"), update("l2")
    udp.send(first, second)
    assert len(udp.spy.sent) == 2
    assert sent_when_called == [2, 2]  # one call per version, both after both replies
    latest = udp.observer.latest_id(KEY)
    assert [seen for _wire, seen in udp.spy.sent] == [latest, latest]


def test_the_journal_names_the_key_as_each_request_spelled_it(udp: Udp) -> None:
    # The key name's text is cached per spelling, not per (case-blind) name.
    secret = KEYRING[KEY_NAME].secret
    for spelling, host in (("home-key", "c1"), ("HOME-Key", "c2"), ("home-key", "c3")):
        message = dns.update.UpdateMessage(ORIGIN)
        message.add(dns.name.from_text(host, ORIGIN), 60, "A", "192.0.2.7")
        message.use_tsig(dns.tsig.Key(spelling, secret, dns.tsig.HMAC_SHA256))
        udp.send(message)
    assert [wire[3] & 0x0F for wire, _seen in udp.spy.sent] == [dns.rcode.NOERROR] * 3
    whos = [v.who for v in reversed(udp.observer.versions(KEY, limit=3))]
    assert whos == ["home-key", "HOME-Key", "home-key"]
