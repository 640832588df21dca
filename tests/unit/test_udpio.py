"""Batched UDP I/O (edge/udpio.py) and the read loop on it, over real loopback sockets.

recvmmsg/sendmmsg must give exactly what recvfrom/sendto give: every octet
of every datagram (the largest UDP payload included, never cut), the sender
as (host, port), replies to the right sender, and a reply the kernel refuses
must not stop the others.
"""

from __future__ import annotations

import random
import select
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.testing import MemoryReactorClock

from ddns_server.dnsmsg import DnsHandler
from ddns_server.edge import udpio
from ddns_server.edge.dns import DnsUdp, DnsUdpPort
from ddns_server.edge.udpio import SEND_SIZE, SLOTS, MmsgUdpIO, PlainUdpIO, udp_io
from ddns_server.journal import Journal
from ddns_server.metrics import Metrics
from ddns_server.model import RateLimit
from ddns_server.query import QueryEngine
from ddns_server.rrl import DROP, SEND, SLIP, RateLimiter, truncated
from ddns_server.store import Store, records_from_file

DATA = Path(__file__).resolve().parents[1] / "data"
ORIGIN = dns.name.from_text("dyn.example.test")

needs_mmsg = pytest.mark.skipif(udpio._CALLS is None, reason="recvmmsg/sendmmsg are Linux's")

IPV4_MAX = 65507  # the largest UDP payload over IPv4
IPV6_MAX = 65527


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def pair(family: int) -> tuple[socket.socket, socket.socket]:
    """A non-blocking 'server' socket and a client, on loopback, with room for big datagrams."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    sockets = []
    for _ in range(2):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.bind((host, 0))
        sockets.append(s)
    sockets[0].setblocking(False)
    sockets[1].settimeout(5)
    return sockets[0], sockets[1]


def recv_all(io: PlainUdpIO | MmsgUdpIO, count: int, timeout: float = 10.0) -> list:
    """Everything `io` reads until `count` datagrams came (bounded by a deadline)."""
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        batch = io.recv()
        assert len(batch) <= SLOTS
        got.extend(batch)
        if not batch:
            select.select([io.sock], [], [], 0.05)
    return got


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def family(request: pytest.FixtureRequest) -> int:
    if request.param == socket.AF_INET6 and not has_ipv6():
        pytest.skip("no IPv6 loopback")
    return int(request.param)


@pytest.fixture(params=["mmsg", "plain"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "mmsg" and udpio._CALLS is None:
        pytest.skip("recvmmsg/sendmmsg are Linux's")
    return str(request.param)


def make_io(kind: str, sock: socket.socket) -> PlainUdpIO | MmsgUdpIO:
    return MmsgUdpIO(sock) if kind == "mmsg" else PlainUdpIO(sock)


def test_every_octet_of_every_size_arrives_with_its_sender(family: int, kind: str) -> None:
    server, client = pair(family)
    io = make_io(kind, server)
    biggest = IPV6_MAX if family == socket.AF_INET6 else IPV4_MAX
    sizes = [0, 1, 12, 512, 1232, 4096, 4097, 65000, biggest]
    payloads = [bytes((i * 7 + n) & 0xFF for i in range(n)) for n in sizes]
    sender = client.getsockname()[:2]
    for p in payloads:
        client.sendto(p, server.getsockname())
    got = recv_all(io, len(payloads))
    assert [d for d, _a in got] == payloads
    assert all(a == sender for _d, a in got)
    assert io.recv() == []  # nothing left: an empty list, no exception
    if isinstance(io, MmsgUdpIO):
        # the headers are never reset: the kernel must have left every address length as set
        wanted = 28 if family == socket.AF_INET6 else 16
        assert {io._rhdr[i].msg_hdr.msg_namelen for i in range(SLOTS)} == {wanted}


def test_replies_go_back_whole_in_order_more_than_a_batch(family: int, kind: str) -> None:
    server, client = pair(family)
    io = make_io(kind, server)
    count = SLOTS * 2 + 5
    for i in range(count):
        client.sendto(i.to_bytes(2, "big"), server.getsockname())
    got = recv_all(io, count)
    assert len(got) == count
    # small replies (a batch's worth per system call), then replies of every
    # size around a send slot's: under it, at it, over it (sent alone)
    small = [(d + bytes(i % 300), a) for i, (d, a) in enumerate(got)]
    edge = [(d + bytes(SEND_SIZE - 2 + (i % 3) - 1), a) for i, (d, a) in enumerate(got)]
    for replies in (small, edge):
        io.send(replies)
        for data, _addr in replies:
            assert client.recv(65535) == data


def test_one_datagram_and_a_few_replies(family: int, kind: str) -> None:
    """A quiet server's passes: one datagram read, fewer than FEW replies sent
    (both take shorter ways than a batch; a refused reply still stops nothing)."""
    server, client = pair(family)
    io = make_io(kind, server)
    for size in (12, 1232, 65000):
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        client.sendto(payload, server.getsockname())
        (got,) = recv_all(io, 1)
        assert got == (payload, client.getsockname()[:2])
        replies = [(b"one" + payload[:9], got[1]), (b"two", got[1])]
        if family == socket.AF_INET:
            replies.insert(1, (b"lost", ("255.255.255.255", 9)))  # EACCES: skipped
        assert len(replies) < udpio.FEW
        io.send(replies)
        assert client.recv(100) == b"one" + payload[:9]
        assert client.recv(100) == b"two"


def test_two_clients_get_their_own_replies(family: int, kind: str) -> None:
    server, first = pair(family)
    _other_server, second = pair(family)
    io = make_io(kind, server)
    for i in range(10):
        (first if i % 2 else second).sendto(bytes([i]), server.getsockname())
    got = recv_all(io, 10)
    io.send([(b"re" + d, a) for d, a in got])
    assert sorted(first.recv(100) for _ in range(5)) == [
        b"re" + bytes([i]) for i in (1, 3, 5, 7, 9)
    ]
    assert sorted(second.recv(100) for _ in range(5)) == [
        b"re" + bytes([i]) for i in (0, 2, 4, 6, 8)
    ]


@needs_mmsg
def test_a_refused_reply_does_not_stop_the_others() -> None:
    server, client = pair(socket.AF_INET)
    io = MmsgUdpIO(server)
    for i in range(3):
        client.sendto(bytes([i]), server.getsockname())
    got = recv_all(io, 3)
    # The kernel refuses a datagram to the broadcast address without SO_BROADCAST (EACCES).
    raw = socket.AF_INET.to_bytes(2, sys.byteorder) + (9).to_bytes(2, "big")
    broadcast = io._remember(
        int.from_bytes(raw + socket.inet_aton("255.255.255.255"), sys.byteorder)
    )
    assert broadcast == ("255.255.255.255", 9)
    replies = [(b"a", got[0][1]), (b"lost", broadcast), (b"b", got[1][1]), (b"lost", broadcast)]
    replies.append((b"c", got[2][1]))
    io.send(replies)
    assert [client.recv(100) for _ in range(3)] == [b"a", b"b", b"c"]


def test_a_real_socket_on_linux_gets_mmsg_a_wrapped_one_the_plain_io() -> None:
    server, _client = pair(socket.AF_INET)

    class Wrapped:
        def __getattr__(self, name: str) -> object:
            return getattr(server, name)

    assert isinstance(udp_io(Wrapped()), PlainUdpIO)
    expected = PlainUdpIO if udpio._CALLS is None else MmsgUdpIO
    assert isinstance(udp_io(server), expected)


@pytest.fixture
def port(tmp_path: Path) -> Iterator[DnsUdpPort]:
    store = Store(Journal(tmp_path / "journal.sqlite3"))
    store.open_zone(ORIGIN, records_from_file(DATA / "example.zone", ORIGIN))
    handler = DnsHandler(QueryEngine(store.zones), {})
    metrics = Metrics(CollectorRegistry(), lambda: store.zones)
    p = DnsUdpPort(
        0, DnsUdp(handler, metrics, store), interface="127.0.0.1", reactor=MemoryReactorClock()
    )
    p.startListening()
    p.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    yield p
    p.stopListening()
    store.journal.close()


def test_the_read_loop_answers_every_query_of_a_long_queue(port: DnsUdpPort) -> None:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    count = DnsUdpPort.PASS_LIMIT + SLOTS + 3  # more than one pass reads
    queries = []
    for i in range(count):
        name = "www" if i % 3 else f"nx{i}"
        q = dns.message.make_query(dns.name.from_text(name, ORIGIN), "A", id=i)
        queries.append(q)
        client.sendto(q.to_wire(), port.socket.getsockname())
    answers: dict[int, dns.message.Message] = {}
    deadline = time.monotonic() + 10
    while len(answers) < count and time.monotonic() < deadline:
        select.select([port.socket], [], [], 0.05)
        port.doRead()
        client.setblocking(False)
        try:
            while True:
                a = dns.message.from_wire(client.recv(65535))
                answers[a.id] = a
        except BlockingIOError:
            pass
        client.settimeout(5)
    assert sorted(answers) == list(range(count))
    for q in queries:
        a = answers[q.id]
        assert a.question == q.question
        assert a.rcode() == (dns.rcode.NOERROR if q.id % 3 else dns.rcode.NXDOMAIN)
    a_type = dns.rdatatype.A.to_bytes(2, "big")
    nx = count // 3 + 1
    assert port.protocol.metrics.query_counts() == {(a_type, 0): count - nx, (a_type, 3): nx}
    assert port.protocol.metrics.hits  # most of them counted by the engine's hit()
    client.close()


class Inbox:
    """The port's socket, reading from datagrams the test already took off it
    (so one pass sees them all, however late a busy machine delivers them)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox: list[tuple[bytes, Any]] = []
        self.sent: list[tuple[bytes, Any]] = []

    def take(self, count: int) -> None:
        for _ in range(count):
            ready, _w, _x = select.select([self.sock], [], [], 10)
            assert ready, "a datagram sent over loopback never arrived"
            self.inbox.append(self.sock.recvfrom(65535))

    def recvfrom(self, size: int) -> tuple[bytes, Any]:
        if not self.inbox:
            raise BlockingIOError
        return self.inbox.pop(0)

    def sendto(self, data: bytes, addr: Any) -> int:
        self.sent.append((data, addr))
        return len(data)


def passes(seed: int, count: int) -> list[tuple[float, int]]:
    """(instant, datagrams) of `count` passes: bursts and trickles, gaps short and long."""
    rng = random.Random(seed)
    now, out = 1000.0, [(1000.0, 150)]
    for _ in range(count):
        now += rng.choice((0.0, 0.3, 1.0, 2.5, 10.0))
        out.append((now, rng.choice((1, 2, 5, 12))))
    return out


PASSES = passes(0, 40)  # a seed whose passes catch a loop that forgets to refill


@pytest.mark.parametrize("passes", [PASSES[:1], PASSES], ids=["one-pass", "many-passes"])
def test_the_read_loop_rate_limits_exactly_as_check(
    port: DnsUdpPort, passes: list[tuple[float, int]]
) -> None:
    """RRL in the read loop (its shortcut included) sends, slips and drops
    exactly what check() decides, answer by answer, for two hosts of one
    prefix, in passes at one instant each (the port's clock is the test's)."""
    settings = RateLimit(responses_per_second=6, nxdomains_per_second=3, slip=2)
    port.protocol.rrl = RateLimiter(settings)
    reference = RateLimiter(settings)
    counted = Metrics(CollectorRegistry(), dict)  # what was sent, counted one by one
    clients = []
    for host in ("127.0.0.1", "127.0.0.2"):
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind((host, 0))
        clients.append(c)
    rng = random.Random(3)
    names = ["www", "mail", "nx1", "nx2", "@"]
    answer = port.protocol.handler.engine.answer
    seen: set[int] = set()
    for now, count in passes:
        sent = []
        for i in range(count):
            name = rng.choice(names)
            q = dns.message.make_query(dns.name.from_text(name, ORIGIN), "A", id=i).to_wire()
            client = clients[rng.randrange(2)]
            client.sendto(q, port.socket.getsockname())
            sent.append((q, client.getsockname()))
        inbox = Inbox(port.socket)
        inbox.take(len(sent))
        real, port.socket = port.socket, inbox
        port.monotonic = lambda now=now: now  # type: ignore[method-assign]
        try:
            port.doRead()  # one pass, one instant
        finally:
            port.socket = real
        expected = []
        for q, addr in sent:
            a = answer(q, True)
            assert a is not None
            verdict = reference.check(addr[0], q, a, now)
            seen.add(verdict)
            if verdict == SLIP:
                a = truncated(a)
            if verdict != DROP:
                assert a is not None
                expected.append((a, addr))
                counted.count_query(q, a)
        assert inbox.sent == expected
    assert port.protocol.rrl.counters == reference.counters
    assert seen == {SEND, DROP, SLIP}
    # answers counted by the read loop (hits by the engine) are the ones sent
    assert port.protocol.metrics.query_counts() == counted.query_counts()
    for c in clients:
        c.close()
