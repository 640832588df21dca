"""HTTP and HTTPS health probes (Twisted's Agent), imported by probes.py only
when a failover RRset checks over HTTP(S): twisted.web and TLS stay out of a
server that has none.

A GET with `Connection: close`; the status line is all we read. Like Route 53
health checks, HTTPS checks do not verify the target's certificate (a target
is often addressed by IP, or has an internal certificate); the `host` is sent
as the Host header and as TLS SNI.
"""

from __future__ import annotations

import time
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS, IResponse
from zope.interface import implementer

from ddns_server import model
from ddns_server.health import Target

USER_AGENT = b"ddns-server-health-check"


@implementer(IOpenSSLClientConnectionCreator)
class _NoVerifyConnection:
    """TLS without certificate verification (as Route 53's HTTPS checks), SNI = host."""

    def __init__(self, server_name: str | None) -> None:
        self.server_name = server_name
        self.context = CertificateOptions(verify=False).getContext()

    def clientConnectionForTLS(self, tls_protocol: Any) -> SSL.Connection:  # noqa: N802
        connection = SSL.Connection(self.context, None)
        if self.server_name:
            connection.set_tlsext_host_name(self.server_name.encode("idna"))
        connection.set_connect_state()
        connection.set_app_data(tls_protocol)
        return connection


@implementer(IPolicyForHTTPS)
class _NoVerifyPolicy:
    def creatorForNetloc(self, _hostname: bytes, _port: int) -> _NoVerifyConnection:  # noqa: N802
        return _NoVerifyConnection(None)


@implementer(IPolicyForHTTPS)
class _SniPolicy:
    def __init__(self, host: str) -> None:
        self.host = host

    def creatorForNetloc(self, _hostname: bytes, _port: int) -> _NoVerifyConnection:  # noqa: N802
        return _NoVerifyConnection(self.host)


class _Discard(Protocol):
    """Drop the body: the status line decided the check."""

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's interface
        self.transport.stopProducing()  # type: ignore[union-attr]


class HttpProbes:
    """One connection pool (not persistent) and an Agent per (host, https)."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self._pool = HTTPConnectionPool(reactor, persistent=False)
        self._agents: dict[tuple[str | None, bool], Agent] = {}

    def probe(self, target: Target, check: model.FailoverCheck, done: Any) -> defer.Deferred[Any]:
        """GET the check's URL; `done(ok, latency, error)` gets the outcome."""
        https = check.protocol == "https"
        key = (check.host, https)
        agent = self._agents.get(key)
        if agent is None:
            policy = _SniPolicy(check.host) if check.host else _NoVerifyPolicy()
            agent = self._agents[key] = Agent(self.reactor, policy, pool=self._pool)
        host = f"[{target.address}]" if ":" in target.address else target.address
        url = f"{check.protocol}://{host}:{check.port}{check.path}".encode("ascii")
        headers = Headers({b"User-Agent": [USER_AGENT], b"Connection": [b"close"]})
        if check.host:
            headers.setRawHeaders(b"Host", [check.host.encode("idna")])
        started = time.monotonic()
        d: defer.Deferred[Any] = agent.request(b"GET", url, headers)

        def got(response: IResponse) -> None:
            latency = time.monotonic() - started
            response.deliverBody(_Discard())
            code = int(response.code)
            wanted = check.expect_status
            ok = code in wanted if wanted else 200 <= code < 400
            done(ok, latency, "" if ok else f"HTTP status {code}")

        def failed(failure: Failure) -> None:
            if failure.check(defer.CancelledError):
                return
            error = failure.getErrorMessage()
            reasons = getattr(failure.value, "reasons", None)
            if reasons:
                error = reasons[0].getErrorMessage()
            done(False, time.monotonic() - started, error[:200])

        d.addCallbacks(got, failed)
        return d
