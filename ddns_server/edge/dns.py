"""UDP and TCP framing: bytes in, the handler's bytes out. Nothing else."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import udp
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.protocols.basic import Int16StringReceiver
from twisted.protocols.policies import TimeoutMixin

from ddns_server.dnsmsg import DnsHandler
from ddns_server.edge.udpio import SLOTS, MmsgUdpIO, PlainUdpIO, udp_io
from ddns_server.metrics import LATENCY_SAMPLE, Metrics
from ddns_server.ratelog import RateLimitedLog, describe
from ddns_server.rrl import DROP, SEND, SLIP, UNLIMITED, RateLimiter, truncated
from ddns_server.store import Store

# A failing disk fails every batch: a few lines a second, then a summary.
journal_log = RateLimitedLog(logging.getLogger("ddns_server.edge.dns"))

# BIND's tcp-idle-timeout default: 30 seconds.
TCP_IDLE_TIMEOUT = 30


class DnsUdp(DatagramProtocol):
    """One UDP socket's state; DnsUdpPort's read loop does the work (it reads,
    answers and sends itself, so Twisted's datagramReceived is never called)."""

    def __init__(self, handler: DnsHandler, metrics: Metrics, store: Store | None = None) -> None:
        self.handler = handler
        self.store = store  # for group commit of UPDATEs (see DnsUdpPort)
        self.hit = handler.engine.hit
        self.walk = handler.engine.walk
        self.metrics = metrics
        self.count = metrics.count_query
        self._tick = 0
        self.rrl: RateLimiter | None = None  # response rate limiting, when configured


_OPCODE_UPDATE = 5 << 3  # opcode bits of the third header byte


class DnsUdpPort(udp.Port):
    """A UDP port whose read loop answers plain queries itself.

    Twisted's `Port.write` validates the address text on every datagram and
    `doRead` dispatches each one through the protocol; on the query path that
    costs more than answering. Here the loop reads, answers and sends
    itself, a batch of datagrams per system call each way (edge/udpio.py:
    recvmmsg/sendmmsg on Linux), and hands anything else to the handler's
    full path.

    It is also where UPDATEs are group-committed: the versions of every
    UPDATE read in one pass are journaled in one SQLite transaction at its
    end (Store.begin_batch/end_batch). From the first staged version on,
    every response of the pass is held back until that commit, so nothing
    leaves the server that reflects an unjournaled change.
    """

    maxPacketSize = 65535
    # Datagrams one pass reads at most (SLOTS per system call), so TCP and timers get their turn.
    PASS_LIMIT = 256

    # RRL's clock, read once per pass (tests set their own instants)
    monotonic: Callable[[], float] = time.monotonic

    _io: PlainUdpIO | MmsgUdpIO | None = None
    _io_socket: Any = None

    def _udp_io(self) -> PlainUdpIO | MmsgUdpIO:
        """Batched reads and writes on the current socket (tests may swap the socket)."""
        if self._io is None or self._io_socket is not self.socket:
            self._io = udp_io(self.socket)
            self._io_socket = self.socket
        return self._io

    def doRead(self) -> None:  # noqa: N802
        protocol: DnsUdp = self.protocol
        store = protocol.store
        io = self._udp_io()
        recv = io.recv
        send = io.send
        hit = protocol.hit
        walk = protocol.walk
        hits = protocol.metrics.hits
        count = protocol.count
        observe = protocol.metrics.latency.observe
        clock = time.perf_counter
        tick = protocol._tick
        held: list[tuple[bytes, Any]] = []  # responses waiting for the batch commit
        rrl = protocol.rrl
        if rrl is not None:
            now = self.monotonic()  # one clock read per pass
            aggs = rrl.hosts
            aggregate = rrl.aggregate
            agg_rate = rrl.agg_rate
            check = rrl.check
        else:
            now = 0.0
            aggs = None
        updates: list[tuple[bytes, Any]] = []  # the UPDATEs among them (request, addr)
        if store is not None:
            store.begin_batch()
        try:
            for _ in range(self.PASS_LIMIT // SLOTS):
                batch = recv()
                out: list[tuple[bytes, Any]] = []  # this batch's replies, one sendmmsg
                for data, addr in batch:
                    tick += 1
                    if tick >= LATENCY_SAMPLE:
                        tick = 0
                        start = clock()
                    else:
                        start = 0.0
                    try:
                        # the common answer, counted by hit() itself; then the rest
                        response = hit(data, True, hits)
                        counted = response is not None
                        if not counted:
                            response = walk(data, True)
                        if response is None:
                            responses = protocol.handler.handle_full(data, addr, False)
                            if rrl is not None and responses and not data[2] & 0x78:  # QUERY
                                responses = _limited(rrl, addr[0], data, responses[0], now)
                            if store is not None and store.in_batch():
                                held.extend((r, addr) for r in responses)
                                if data[2] & 0x78 == _OPCODE_UPDATE:
                                    updates.append((data, addr))
                            else:
                                out.extend((r, addr) for r in responses)
                            if responses:
                                count(data, responses[0])
                            continue
                        if aggs is not None:
                            # RRL: while the client's prefix is within the lowest rate,
                            # take the answer from its bucket here (rrl.aggregate says
                            # why this is exactly check()); otherwise check() decides.
                            host = addr[0]
                            agg = aggs.get(host)
                            if agg is None:
                                agg = aggregate(host, now)
                            elif agg.last != now and agg is not UNLIMITED:
                                balance = agg.balance + agg_rate * (now - agg.last)
                                agg.balance = balance if balance < agg_rate else agg_rate
                                agg.last = now
                            if agg.balance >= 1.0:
                                agg.balance -= 1.0
                            else:
                                verdict = check(host, data, response, now)
                                if verdict:
                                    slipped = None if verdict == DROP else truncated(response)
                                    if slipped is None:
                                        if counted:
                                            protocol.metrics.uncount_hit(data, response)
                                        continue
                                    response = slipped
                        if held:
                            held.append((response, addr))
                        else:
                            out.append((response, addr))
                        if not counted:
                            count(data, response)
                        if start:
                            observe(clock() - start)
                    except Exception as e:  # noqa: BLE001 - never let one datagram stop the loop
                        # Counted and logged (rate-limited, no traceback); SERVFAIL,
                        # signed when the request was.
                        for r in protocol.handler.internal_error(data, addr, e):
                            if held:
                                held.append((r, addr))
                            else:
                                out.append((r, addr))
                if out:
                    # computed before any UPDATE of the pass was staged, or from a pass
                    # without one: nothing here reflects an unjournaled change
                    send(out)
                if len(batch) < SLOTS:
                    break  # nothing more waiting
        finally:
            protocol._tick = tick
            if store is not None:
                self._commit_batch(store, held, updates)

    def _commit_batch(
        self, store: Store, held: list[tuple[bytes, Any]], updates: list[Any]
    ) -> None:
        """Journal the pass's staged versions, then send what was held back
        (before the store's listeners run: they are not the client's wait)."""
        io = self._udp_io()

        def send_held() -> None:
            if held:
                io.send(held)

        try:
            store.end_batch(send_held)
        except Exception as e:  # noqa: BLE001 - nothing was journaled: confirm nothing
            journal_log.error("journal write failed (group commit): %s", describe(e))
            handler = self.protocol.handler
            # Signed when the UPDATE was (RFC 8945 §5.3), so nsupdate reports
            # SERVFAIL, not a TSIG error.
            failures = [(handler.failure_response(data), addr) for data, addr in updates]
            io.send(failures)
            return  # answers computed from the unjournaled state are dropped


def _limited(rrl: RateLimiter, host: str, query: bytes, response: bytes, now: float) -> list[bytes]:
    """A full-path answer after rate limiting: itself, truncated, or nothing."""
    verdict = rrl.check(host, query, response, now)
    if verdict == SEND:
        return [response]
    slipped = truncated(response) if verdict == SLIP else None
    return [slipped] if slipped is not None else []


def listen_udp(reactor: Any, port: int, protocol: DnsUdp, interface: str) -> DnsUdpPort:
    """Like reactor.listenUDP, with our read loop."""
    p = DnsUdpPort(port, protocol, interface=interface, reactor=reactor)
    p.startListening()
    return p


def _is_update(data: bytes) -> bool:
    """A request (QR clear) with opcode UPDATE."""
    return len(data) >= 12 and data[2] & 0xF8 == _OPCODE_UPDATE


class TcpGroupCommit:
    """UPDATEs read over TCP in one reactor pass, journaled in one transaction.

    As the UDP loop does for datagrams (DnsUdpPort): an UPDATE a connection
    delivers is queued, and so is everything that connection sends after it
    (answers stay in order); once the reactor has read every connection that
    was ready, the queue is handled in arrival order, the UPDATEs inside one
    Store batch whose replies are held until its commit. A message that is
    not an UPDATE (a query, a transfer) ends the batch before it is handled:
    it sees only journaled content. When the commit fails, every UPDATE of
    the batch is answered SERVFAIL, signed when it was (as over UDP). Several
    UPDATEs pipelined on one connection, or sent at once on several, cost
    one SQLite commit.
    """

    def __init__(self, reactor: Any, store: Store, handler: DnsHandler) -> None:
        self.reactor = reactor
        self.store = store
        self.handler = handler
        self.queue: list[tuple[DnsTcp, bytes]] = []
        self._call: Any = None

    def add(self, conn: DnsTcp, data: bytes) -> None:
        """Queue a message; handled once the reactor has read what is ready."""
        self.queue.append((conn, data))
        conn.queued += 1
        if self._call is None:
            self._call = self.reactor.callLater(0, self.flush)

    def flush(self) -> None:
        self._call = None
        queue, self.queue = self.queue, []
        for conn, _data in queue:
            conn.queued -= 1
        held: list[tuple[DnsTcp, bytes, list[bytes]]] = []
        try:
            for conn, data in queue:
                if _is_update(data):
                    if not held:
                        self.store.begin_batch()
                    held.append((conn, data, self.handler.handle(data, conn.source, True)))
                    continue
                if held:
                    self._commit(held)
                    held = []
                conn.answer(data, self.handler.handle(data, conn.source, True))
        finally:
            if held:
                self._commit(held)

    def _commit(self, held: list[tuple[DnsTcp, bytes, list[bytes]]]) -> None:
        """End the batch: the held replies after its commit, SERVFAIL if it failed."""

        def send_held() -> None:
            for conn, data, responses in held:
                conn.answer(data, responses)

        try:
            self.store.end_batch(send_held)
        except Exception as e:  # noqa: BLE001 - nothing was journaled: confirm nothing
            journal_log.error("journal write failed (group commit): %s", describe(e))
            for conn, data, responses in held:
                conn.answer(data, [self.handler.failure_response(data)] if responses else [])


class DnsTcp(Int16StringReceiver, TimeoutMixin):
    """One TCP connection: length-prefixed messages, answered in order."""

    def __init__(
        self, handler: DnsHandler, metrics: Metrics, group: TcpGroupCommit | None = None
    ) -> None:
        self.handler = handler
        self.metrics = metrics
        self.group = group  # group commit of UPDATEs (None: each commits alone)
        self.queued = 0  # messages of this connection waiting in the group's queue

    def connectionMade(self) -> None:  # noqa: N802
        self.setTimeout(TCP_IDLE_TIMEOUT)
        assert self.transport is not None
        peer = self.transport.getPeer()
        self.source = (str(getattr(peer, "host", "")), int(getattr(peer, "port", 0)))

    def stringReceived(self, data: bytes) -> None:  # noqa: N802
        self.resetTimeout()
        if self.group is not None and (self.queued or _is_update(data)):
            self.group.add(self, data)
            return
        self.answer(data, self.handler.handle(data, self.source, True))

    def answer(self, data: bytes, responses: list[bytes]) -> None:
        """Send the responses to `data` (nothing if the connection has gone)."""
        for response in responses:
            self.sendString(response)
        if responses:  # a transfer's many messages count as one query
            self.metrics.count_query(data, responses[0])

    def timeoutConnection(self) -> None:  # noqa: N802
        assert self.transport is not None
        self.transport.loseConnection()


class DnsTcpFactory(Factory):
    def __init__(
        self, handler: DnsHandler, metrics: Metrics, group: TcpGroupCommit | None = None
    ) -> None:
        self.handler = handler
        self.metrics = metrics
        self.group = group

    def buildProtocol(self, addr: object) -> DnsTcp:  # noqa: N802
        return DnsTcp(self.handler, self.metrics, self.group)
