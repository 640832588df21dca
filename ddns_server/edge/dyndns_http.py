"""HTTP(S) resources of the DynDNS2 endpoint: /nic/update (and its aliases
/v3/update and /update), /nic/checkip; and HSTS on every HTTPS reply.

Only bytes in and out: the protocol is ddns_server.dyndns2. The slow scrypt
password check runs in the reactor's thread pool (at most a couple at a time,
so a burst of logins cannot take all memory or stall DNS answers); every
other step, the journal commit included, runs on the reactor thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from ddns_server import model
from ddns_server.dyndns2 import (
    Dyndns2,
    UpdateRequest,
    UpdateResponse,
    Verify,
    client_address,
    networks,
)
from ddns_server.edge.tls import peer_common_name
from ddns_server.passwords import verify_password

log = logging.getLogger("ddns_server.http")

REALM = "ddns-server"
HSTS = b"max-age=31536000"
# Password checks at once: scrypt takes ~32 MiB and ~0.1 s of a core each.
# Beyond dyndns.max_pending_logins running or queued, a login gets `911` (busy).
VERIFY_AT_ONCE = 2


class DdnsRequest(Request):
    """Every reply of ours is plain and uncached; HTTPS replies carry HSTS (RFC 6797)."""

    def process(self) -> None:
        if self.isSecure():
            self.setHeader(b"strict-transport-security", HSTS)
        super().process()


class _Proxies:
    """config.trusted_proxies as networks, parsed again only when the config changes."""

    def __init__(self, config: Callable[[], model.Config]) -> None:
        self._config = config
        self._seen: tuple[str, ...] | None = None
        self._networks: tuple[Any, ...] = ()

    def client(self, request: Request) -> str:
        texts = self._config().trusted_proxies
        if texts != self._seen:
            self._seen, self._networks = texts, networks(texts)
        peer = request.getClientAddress()
        host = str(getattr(peer, "host", ""))
        headers = request.requestHeaders.getRawHeaders(b"x-forwarded-for") or []
        return client_address(host, (h.decode("latin-1") for h in headers), self._networks)


def _text_reply(request: Request, body: bytes, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return body


class NicUpdate(Resource):
    """GET/POST /nic/update: the DynDNS2 update."""

    isLeaf = True

    def __init__(
        self,
        service: Dyndns2,
        proxies: _Proxies,
        reactor: Any,
        clock: Callable[[], float],
        config: Callable[[], model.Config],
    ) -> None:
        super().__init__()
        self.service = service
        self.proxies = proxies
        self.reactor = reactor
        self.clock = clock
        self.config = config
        self.slots = defer.DeferredSemaphore(VERIFY_AT_ONCE)
        self.waiting = 0

    def render_GET(self, request: Request) -> bytes | int:  # noqa: N802
        return self.render_update(request)

    def render_POST(self, request: Request) -> bytes | int:  # noqa: N802
        return self.render_update(request)

    def render_update(self, request: Request) -> bytes | int:
        args = {
            key.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in values]
            for key, values in (request.args or {}).items()
        }
        authorization = request.getHeader(b"authorization")
        user_agent = request.getHeader(b"user-agent")
        cert_cn = None
        if request.isSecure() and self.config().tls.client_ca_file is not None:
            cert_cn = peer_common_name(request.channel.transport)
        update = UpdateRequest(
            args=args,
            authorization=authorization.decode("latin-1") if authorization else None,
            user_agent=user_agent.decode("latin-1") if user_agent else None,
            client=self.proxies.client(request),
            cert_cn=cert_cn,
        )
        step = self.service.start(update, self.clock())
        if isinstance(step, UpdateResponse):
            return self.reply(request, step)
        if self.waiting >= self.config().dyndns.max_pending_logins:
            log.warning("%d password checks waiting; answering 911", self.waiting)
            return self.reply(request, self.service.server_error())
        self.check_password(request, step)
        return NOT_DONE_YET

    def check_password(self, request: Request, step: Verify) -> None:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        self.waiting += 1

        def verify() -> defer.Deferred[bool]:
            pool = self.reactor.getThreadPool()
            return threads.deferToThreadPool(
                self.reactor, pool, verify_password, step.password, step.password_hash
            )

        def checked(ok: bool) -> UpdateResponse:
            return self.service.finish(step, ok, self.clock())

        def failed(failure: Failure) -> UpdateResponse:
            log.error("password check failed: %s", failure.getErrorMessage())
            return self.service.server_error()

        def done(answer: UpdateResponse) -> None:
            self.waiting -= 1
            if not gone:  # the client may have hung up meanwhile
                body = self.reply(request, answer)
                # A length, not chunks: ddclient reads the body as raw lines.
                request.setHeader(b"content-length", b"%d" % len(body))
                request.write(body)
                request.finish()

        self.slots.run(verify).addCallbacks(checked, failed).addCallback(done)

    @staticmethod
    def reply(request: Request, answer: UpdateResponse) -> bytes:
        if answer.challenge:
            request.setHeader(b"www-authenticate", f'Basic realm="{REALM}"'.encode())
        return _text_reply(request, answer.body(), answer.status)


class CheckIp(Resource):
    """GET /nic/checkip: the client's address as checkip services print it
    (`Current IP Address: A.B.C.D`, what ddclient's `use=web` parses)."""

    isLeaf = True

    def __init__(self, proxies: _Proxies) -> None:
        super().__init__()
        self.proxies = proxies

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        address = self.proxies.client(request)
        return _text_reply(request, f"Current IP Address: {address}\n".encode())


def add_resources(
    root: Resource,
    service: Dyndns2,
    config: Callable[[], model.Config],
    reactor: Any,
    clock: Callable[[], float],
) -> None:
    """Put /nic/update, /v3/update, /update and /nic/checkip beside /healthz and /metrics."""
    proxies = _Proxies(config)
    update = NicUpdate(service, proxies, reactor, clock, config)
    nic = Resource()
    _put(nic, b"update", update)
    _put(nic, b"checkip", CheckIp(proxies))
    v3 = Resource()
    _put(v3, b"update", update)
    _put(root, b"nic", nic)
    _put(root, b"v3", v3)
    _put(root, b"update", update)


def _put(parent: Resource, path: bytes, child: Resource) -> None:
    # Resource implements IResource through zope.interface, which mypy cannot see.
    parent.putChild(path, cast(IResource, child))
