"""UDP and TCP framing: bytes in, the handler's bytes out. Nothing else."""

from __future__ import annotations

import socket
import time
from typing import Any

from twisted.internet import udp
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.protocols.basic import Int16StringReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python import log as twisted_log

from ddns_server.dnsmsg import DnsHandler
from ddns_server.metrics import LATENCY_SAMPLE, Metrics

# BIND's tcp-idle-timeout default: 30 seconds.
TCP_IDLE_TIMEOUT = 30


class DnsUdp(DatagramProtocol):
    """One UDP socket's protocol; DnsUdpPort's read loop calls it directly."""

    def __init__(self, handler: DnsHandler, metrics: Metrics) -> None:
        self.handler = handler
        self.answer = handler.engine.answer
        self.metrics = metrics
        self.count = metrics.count_query
        self._tick = 0

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        response = self.answer(data, True)
        if response is None:
            self.answer_full(data, addr)
            return
        self._send(response, addr)
        self.count(data, response)

    def answer_full(self, data: bytes, addr: tuple[str, int]) -> None:
        """Everything the fast path does not cover (TSIG, UPDATE, errors...)."""
        responses = self.handler.handle_full(data, addr, False)
        for response in responses:
            self._send(response, addr)
        if responses:
            self.count(data, responses[0])

    def _send(self, response: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.write(response, addr)

    def log_failure(self) -> None:
        twisted_log.err()


class DnsUdpPort(udp.Port):
    """A UDP port whose read loop answers plain queries itself.

    Twisted's `Port.write` validates the address text on every datagram and
    `doRead` dispatches each one through the protocol; on the query path that
    costs more than answering. Here the loop reads, answers and sends with
    the socket's own methods, and hands anything else to the protocol.
    """

    maxPacketSize = 65535

    def doRead(self) -> None:  # noqa: N802
        protocol: DnsUdp = self.protocol
        sock = self.socket
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        answer = protocol.answer
        count = protocol.count
        v6 = self.addressFamily == socket.AF_INET6
        observe = protocol.metrics.latency.observe
        clock = time.perf_counter
        tick = protocol._tick
        for _ in range(256):  # bounded, so TCP and timers get their turn
            try:
                data, addr = recvfrom(65535)
            except BlockingIOError:
                break
            except OSError:
                break  # e.g. ECONNREFUSED from an earlier send: nothing to read
            tick += 1
            if tick >= LATENCY_SAMPLE:
                tick = 0
                start = clock()
            else:
                start = 0.0
            if v6:
                addr = addr[:2]
            try:
                response = answer(data, True)
                if response is None:
                    protocol.answer_full(data, addr)
                    continue
                sendto(response, addr)
                count(data, response)
                if start:
                    observe(clock() - start)
            except OSError:
                pass  # the client is gone; UDP has nobody to tell
            except Exception:  # noqa: BLE001 - never let one datagram stop the loop
                protocol.log_failure()
        protocol._tick = tick


def listen_udp(reactor: Any, port: int, protocol: DnsUdp, interface: str) -> DnsUdpPort:
    """Like reactor.listenUDP, with our read loop."""
    p = DnsUdpPort(port, protocol, interface=interface, reactor=reactor)
    p.startListening()
    return p


class DnsTcp(Int16StringReceiver, TimeoutMixin):
    """One TCP connection: length-prefixed messages, answered in order."""

    def __init__(self, handler: DnsHandler, metrics: Metrics) -> None:
        self.handler = handler
        self.metrics = metrics

    def connectionMade(self) -> None:  # noqa: N802
        self.setTimeout(TCP_IDLE_TIMEOUT)
        assert self.transport is not None
        peer = self.transport.getPeer()
        self.source = (str(getattr(peer, "host", "")), int(getattr(peer, "port", 0)))

    def stringReceived(self, data: bytes) -> None:  # noqa: N802
        self.resetTimeout()
        responses = self.handler.handle(data, self.source, True)
        for response in responses:
            self.sendString(response)
        if responses:  # a transfer's many messages count as one query
            self.metrics.count_query(data, responses[0])

    def timeoutConnection(self) -> None:  # noqa: N802
        assert self.transport is not None
        self.transport.loseConnection()


class DnsTcpFactory(Factory):
    def __init__(self, handler: DnsHandler, metrics: Metrics) -> None:
        self.handler = handler
        self.metrics = metrics

    def buildProtocol(self, addr: object) -> DnsTcp:  # noqa: N802
        return DnsTcp(self.handler, self.metrics)
