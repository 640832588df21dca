"""Limits on what one HTTP client may make the server hold (issue 14 item 7).

Twisted's HTTPChannel has most of the knobs (maxHeaders, totalHeadersSize,
timeOut, LineReceiver.MAX_LENGTH); this subclass sets them from the config
and answers as RFC 9110 says instead of just closing the connection:

* a request line longer than `max_request_line`: 414 URI Too Long;
* headers beyond `max_header_bytes` in all, or more than `max_headers`:
  431 Request Header Fields Too Large (RFC 6585);
* a body (Content-Length, or chunks so far) beyond `max_body_bytes`: 413,
  and a chunk size no body could have (`FFFFFFFFFFFFFFFF`): 400 at once,
  where Twisted would wait for the data forever;
* a request whose line, headers and body have not all arrived within
  `header_timeout` seconds of its first byte: 408 and close (slowloris: the
  idle timeout is reset by every byte, this deadline is not);
* more than `max_connections_per_source` open connections from one address
  (trusted proxies excepted): further ones are closed at once.

The limits are read through a getter, so a reload (SIGHUP) applies them to
new requests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.server import Site

from ddns_server.edge.api_http import json_error_body
from ddns_server.model import HttpLimits

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


class _CappedChunkedDecoder(http._ChunkedTransferDecoder):
    """Chunked bodies up to a total size; a larger chunk size is malformed at once."""

    def __init__(
        self,
        data: Callable[[bytes], None],
        finish: Callable[[bytes], None],
        cap: int,
    ) -> None:
        super().__init__(data, finish)
        self.cap = cap
        self.total = 0

    def _dataReceived_CHUNK_LENGTH(self) -> bool:  # noqa: N802 - Twisted's name
        done = super()._dataReceived_CHUNK_LENGTH()
        if done:
            self.total += self.length
            if self.total > self.cap:
                raise http._MalformedChunkedDataError("chunk size beyond max_body_bytes")
        return done


class LimitedChannel(http.HTTPChannel):
    """HTTPChannel with the limits of HttpLimits and proper status codes."""

    limits: HttpLimits = HttpLimits()
    _deadline: IDelayedCall | None = None
    _replied = False

    def connectionMade(self) -> None:  # noqa: N802
        limits = self.limits
        self.timeOut = limits.idle_timeout  # type: ignore[assignment]  # fractions work
        self.maxHeaders = limits.max_headers
        self.totalHeadersSize = limits.max_header_bytes
        # LineReceiver closes silently beyond MAX_LENGTH: let lineReceived decide first.
        self.MAX_LENGTH = max(limits.max_request_line, limits.max_header_bytes) + 1
        super().connectionMade()
        self._start_deadline()

    # -- the request deadline (slowloris) -----------------------------------------

    def _start_deadline(self) -> None:
        if self._deadline is None or not self._deadline.active():
            self._deadline = self.callLater(self.limits.header_timeout, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self._reply(408)

    def allContentReceived(self) -> None:  # noqa: N802
        self._stop_deadline()
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:  # noqa: N802
        super().requestDone(request)
        if self.persistent and self.transport is not None and not self._replied:
            self._start_deadline()  # the next request on this connection

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self._stop_deadline()
        super().connectionLost(reason)

    # -- sizes --------------------------------------------------------------------

    def _on_first_line(self) -> bool:
        return bool(self._HTTPChannel__first_line)  # type: ignore[attr-defined]

    def lineReceived(self, line: bytes) -> None:  # noqa: N802
        if self._replied:
            return
        if self._on_first_line():
            if len(line) > self.limits.max_request_line:
                self._reply(414)
                return
        elif self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._reply(431)
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802
        self._reply(414 if self._on_first_line() else 431)

    def headerReceived(self, line: bytes) -> bool:  # noqa: N802
        if self._receivedHeaderCount >= self.maxHeaders:
            self._reply(431)
            return False
        return bool(super().headerReceived(line))

    def allHeadersReceived(self) -> None:  # noqa: N802
        cap = self.limits.max_body_bytes
        if self.length is not None and self.length > cap:
            self._reply(413)
            return
        decoder = self._transferDecoder
        if isinstance(decoder, http._ChunkedTransferDecoder) and not isinstance(
            decoder, _CappedChunkedDecoder
        ):
            self._transferDecoder = _CappedChunkedDecoder(
                decoder.dataCallback, decoder.finishCallback, cap
            )
        super().allHeadersReceived()

    def _respondToBadRequestAndDisconnect(self) -> None:  # noqa: N802
        self._reply(400)

    def _reply(self, status: int) -> None:
        """Answer `status` with a short body, once, and close the connection."""
        if self._replied or self.transport is None:
            return
        self._replied = True
        self._stop_deadline()
        reason = _REASONS.get(status, b"Error")
        body = reason + b"\n"
        ctype = b"text/plain"
        path = getattr(self, "_path", None)  # set once the request line is parsed
        api_body = json_error_body(path, status, reason.decode()) if path else None
        if api_body is not None:  # /api/v1, /client/v4: their JSON error shape
            body, ctype = api_body, b"application/json"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, reason, ctype, len(body), body)
        )
        self.dataReceived = lambda data: None  # type: ignore[method-assign]
        self.loseConnection()


class LimitedSite(Site):
    """A Site whose channels are LimitedChannels, at most N per source address."""

    protocol = LimitedChannel  # type: ignore[assignment]  # a plain HTTP/1.1 channel

    def __init__(
        self,
        resource: Any,
        limits: Callable[[], HttpLimits],
        trusted: Callable[[], tuple[str, ...]],
        **kwargs: Any,
    ) -> None:
        super().__init__(resource, **kwargs)
        self._limits = limits
        self._trusted = trusted
        self.open: dict[str, int] = {}  # source address -> open connections

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802
        limits = self._limits()
        host = str(getattr(addr, "host", ""))
        if self.open.get(host, 0) >= limits.max_connections_per_source and not self._is_trusted(
            host
        ):
            return None  # Twisted closes the connection at once
        channel = super().buildProtocol(addr)
        if channel is None:
            return None
        channel.limits = limits
        self.open[host] = self.open.get(host, 0) + 1
        lost = channel.connectionLost

        def connection_lost(reason: Any) -> None:
            count = self.open.get(host, 1) - 1
            if count > 0:
                self.open[host] = count
            else:
                self.open.pop(host, None)
            lost(reason)

        channel.connectionLost = connection_lost
        return channel

    def _is_trusted(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(net, strict=False) for net in self._trusted())
