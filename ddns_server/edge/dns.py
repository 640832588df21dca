"""UDP and TCP framing: bytes in, the handler's bytes out. Nothing else."""

from __future__ import annotations

import time

from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.protocols.basic import Int16StringReceiver
from twisted.protocols.policies import TimeoutMixin

from ddns_server.dnsmsg import DnsHandler
from ddns_server.metrics import LATENCY_SAMPLE, Metrics

# BIND's tcp-idle-timeout default: 30 seconds.
TCP_IDLE_TIMEOUT = 30


class DnsUdp(DatagramProtocol):
    """One UDP socket. The plain-query fast path is inlined here on purpose."""

    def __init__(self, handler: DnsHandler, metrics: Metrics) -> None:
        self.handler = handler
        self.answer = handler.engine.answer
        self.metrics = metrics
        self.count = metrics.count_query
        self._tick = 0

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        self._tick += 1
        if self._tick >= LATENCY_SAMPLE:
            self._tick = 0
            start = time.perf_counter()
            self._answer(data, addr)
            self.metrics.latency.observe(time.perf_counter() - start)
        else:
            self._answer(data, addr)

    def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        response = self.answer(data, True)
        if response is not None:
            self.transport.write(response, addr)
            self.count(data, response)
            return
        for response in self.handler.handle_full(data, addr, False):
            self.transport.write(response, addr)
            self.count(data, response)


class DnsTcp(Int16StringReceiver, TimeoutMixin):
    """One TCP connection: length-prefixed messages, answered in order."""

    def __init__(self, handler: DnsHandler, metrics: Metrics) -> None:
        self.handler = handler
        self.metrics = metrics

    def connectionMade(self) -> None:  # noqa: N802
        self.setTimeout(TCP_IDLE_TIMEOUT)
        peer = self.transport.getPeer()
        self.source = (peer.host, peer.port)

    def stringReceived(self, data: bytes) -> None:  # noqa: N802
        self.resetTimeout()
        for response in self.handler.handle(data, self.source, True):
            self.sendString(response)
            self.metrics.count_query(data, response)

    def timeoutConnection(self) -> None:  # noqa: N802
        self.transport.loseConnection()


class DnsTcpFactory(Factory):
    def __init__(self, handler: DnsHandler, metrics: Metrics) -> None:
        self.handler = handler
        self.metrics = metrics

    def buildProtocol(self, addr: object) -> DnsTcp:  # noqa: N802
        return DnsTcp(self.handler, self.metrics)
