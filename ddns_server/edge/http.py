"""HTTP resources: /healthz and /metrics (DynDNS2 paths are added beside them)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.resource import Resource
from twisted.web.server import Request


class Healthz(Resource):
    """200 ok while we can answer and write the journal; 503 and the reason otherwise.

    `problem` returns None when healthy, else one line saying what is wrong.
    """

    isLeaf = True

    def __init__(self, problem: Callable[[], str | None]) -> None:
        super().__init__()
        self.problem = problem

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        problem = self.problem()
        if problem is None:
            return b"ok\n"
        request.setResponseCode(503)
        return f"unhealthy: {problem}\n".encode()


class MetricsPage(Resource):
    """Prometheus text exposition of the injected registry."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)


def make_root(problem: Callable[[], str | None], registry: CollectorRegistry) -> Resource:
    root = Resource()
    root.putChild(b"healthz", Healthz(problem))
    root.putChild(b"metrics", MetricsPage(registry))
    return root
