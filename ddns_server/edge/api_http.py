"""HTTP resources of the management API: /api/v1/... and /client/v4/...

Only bytes in and out: an `ApiRequest` is handed to the pure front ends
(ddns_server.api.v1, ddns_server.api.cloudflare) on the reactor thread, and
their `ApiResponse` is written back as JSON. A request body over MAX_BODY is
not parsed (413); anything unexpected is a JSON 500 with one log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import cast
from urllib.parse import unquote

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from ddns_server import model
from ddns_server.api import cloudflare, v1
from ddns_server.api.records import ApiError
from ddns_server.api.service import MAX_BODY, ApiContext, ApiRequest, ApiResponse
from ddns_server.edge.dyndns_http import _Proxies

log = logging.getLogger("ddns_server.api")

Handler = Callable[[ApiContext, ApiRequest], ApiResponse]
# Requests that may change a zone: counted in ddns_updates_total{channel="api"}.
CHANGES = (b"POST", b"PUT", b"PATCH", b"DELETE")


class ApiResource(Resource):
    """Everything below /api/v1 or /client/v4 (a leaf: the front end routes)."""

    isLeaf = True

    def __init__(
        self,
        ctx: ApiContext,
        version: bytes,
        handler: Handler,
        proxies: _Proxies,
        internal: Callable[[str], ApiResponse],
        count: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.version = version
        self.handler = handler
        self.proxies = proxies
        self.internal = internal
        self.count = count

    def render(self, request: Request) -> bytes:
        try:
            response = self._handle(request)
        except Exception as e:  # noqa: BLE001 - a JSON 500, never a traceback page
            log.error("API request %s failed: %s: %s", request.uri[:200], type(e).__name__, e)
            response = self.internal("internal error; the change, if any, was not confirmed")
        if self.count is not None and request.method in CHANGES:
            self.count(str(response.status))
        body = json.dumps(response.body, indent=None, separators=(",", ":")).encode()
        request.setResponseCode(response.status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        for name, value in response.headers.items():
            request.setHeader(name.encode(), value.encode())
        request.setHeader(b"content-length", b"%d" % len(body))
        if request.method == b"HEAD":
            return b""
        return body

    def _handle(self, request: Request) -> ApiResponse:
        postpath = [unquote(p.decode("utf-8", "replace")) for p in request.postpath or []]
        if not postpath or postpath[0] != self.version.decode():
            postpath = ["\0"]  # no such version: the front end's 404
        else:
            postpath = postpath[1:]
        while postpath and postpath[-1] == "":
            postpath.pop()  # a trailing slash (ddclient asks for /zones/?name=...)
        content = request.content
        body = b""
        too_large = False
        if content is not None:
            content.seek(0)
            body = content.read(MAX_BODY + 1)
            too_large = len(body) > MAX_BODY
        query = {
            k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
            for k, vs in (request.args or {}).items()
        }
        header = request.getHeader(b"authorization")
        ctype = request.getHeader(b"content-type")
        api_request = ApiRequest(
            method=request.method.decode("ascii", "replace").upper(),
            path=postpath,
            query=query,
            authorization=header.decode("latin-1") if header else None,
            content_type=ctype.decode("latin-1") if ctype else None,
            body=b"" if too_large else body,
            client=self.proxies.client(request),
            too_large=too_large,
        )
        return self.handler(self.ctx, api_request)


def add_api_resources(
    root: Resource,
    ctx: ApiContext,
    config: Callable[[], model.Config],
    count: Callable[[str], None] | None = None,
) -> None:
    """Mount /api/v1 and /client/v4 beside /nic/update, /healthz and /metrics;
    `count(status)` is called for each request that may change a zone."""
    proxies = _Proxies(config)
    api = ApiResource(ctx, b"v1", v1.handle, proxies, _v1_internal, count)
    client = ApiResource(ctx, b"v4", cloudflare.handle, proxies, _cf_internal, count)
    root.putChild(b"api", cast(IResource, api))
    root.putChild(b"client", cast(IResource, client))


def _v1_internal(message: str) -> ApiResponse:
    return ApiResponse(
        500, {"error": {"status": 500, "code": "internal", "message": message, "refused": {}}}
    )


def _cf_internal(message: str) -> ApiResponse:
    return cloudflare.error_envelope(500, 10001, message)


def json_error_body(path: bytes, status: int, message: str) -> bytes | None:
    """The body of an error the HTTP layer answers itself (413 from the
    site's limits) for an API path, in that API's JSON shape; None elsewhere."""
    if path.startswith(b"/api/"):
        response = v1.error_response(ApiError(status, "too_large", message))
    elif path.startswith(b"/client/"):
        response = cloudflare.error_envelope(status, cloudflare.BAD_BODY, message)
    else:
        return None
    return json.dumps(response.body, separators=(",", ":")).encode()
