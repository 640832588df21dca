"""HTTP resources: /healthz and /metrics (DynDNS2 paths are added beside them)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.resource import Resource
from twisted.web.server import Request


class Healthz(Resource):
    """200 ok while we can answer and write the journal; 503 otherwise."""

    isLeaf = True

    def __init__(self, healthy: Callable[[], bool]) -> None:
        super().__init__()
        self.healthy = healthy

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if self.healthy():
            return b"ok\n"
        request.setResponseCode(503)
        return b"unhealthy\n"


class MetricsPage(Resource):
    """Prometheus text exposition of the injected registry."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)


def make_root(healthy: Callable[[], bool], registry: CollectorRegistry) -> Resource:
    root = Resource()
    root.putChild(b"healthz", Healthz(healthy))
    root.putChild(b"metrics", MetricsPage(registry))
    return root
