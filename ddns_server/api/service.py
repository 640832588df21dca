"""What both API front ends share: requests and responses as plain values,
Bearer-token authentication with per-source lockout, JSON bodies, zones.

The edge (edge/api_http.py) turns a Twisted request into an `ApiRequest`
and writes the `ApiResponse` back; everything between is here and testable
without a reactor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dns.name

from ddns_server import model
from ddns_server.api.records import ApiError
from ddns_server.api.tokens import Token, TokenStore
from ddns_server.dyndns2 import FailedLogins, source_key
from ddns_server.store import Store
from ddns_server.zonedata import ZoneData

log = logging.getLogger("ddns_server.api")

# Request bodies beyond this are refused with 413 before they are parsed
# (a batch of MAX_CHANGES small changes fits well inside it).
MAX_BODY = 1024 * 1024


@dataclass
class ApiRequest:
    method: str
    path: list[str]  # the segments after /api/v1 or /client/v4, decoded
    query: dict[str, list[str]] = field(default_factory=dict)
    authorization: str | None = None
    content_type: str | None = None
    body: bytes = b""
    client: str = "127.0.0.1"
    too_large: bool = False

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class ApiResponse:
    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)


class ApiContext:
    """The store, the tokens and the lockout of failed token attempts."""

    def __init__(
        self,
        store: Store,
        tokens: TokenStore,
        config: Callable[[], model.Config],
        clock: Callable[[], float],
        failover_status: Callable[[], list[dict[str, Any]]] = list,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.config = config
        self.clock = clock
        self.failures = FailedLogins()
        # Every failover RRset's status (health.HealthChecker.status); none by default.
        self.failover_status = failover_status

    def authenticate(self, request: ApiRequest) -> Token:
        """The request's live token; 401 (unknown, revoked, expired, missing) or
        429 (too many failed attempts from this source, as DynDNS2 logins)."""
        now = self.clock()
        limits = self.config().dyndns
        key = "api-source:" + source_key(request.client)
        if self.failures.blocked(key, now, limits.max_failed_logins, limits.failed_login_window):
            log.warning("API token refused from %s: too many failures", request.client)
            raise ApiError(429, "too_many_failures", "too many failed token attempts; wait")
        header = (request.authorization or "").strip()
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(
                401, "unauthorized", "an API token is needed: Authorization: Bearer TOKEN"
            )
        token = self.tokens.find(secret.strip(), now)
        if token is None:
            self.failures.record(key, now, limits.max_failed_logins, limits.failed_login_window)
            log.warning("unknown, revoked or expired API token from %s", request.client)
            raise ApiError(401, "unauthorized", "unknown, revoked or expired token")
        return token

    def zones(self) -> list[ZoneData]:
        """The served zones, in name order (another process's versions read first)."""
        self.store.poll()
        return sorted(self.store.zones.values(), key=lambda z: z.origin.to_text().lower())

    def zone(self, origin: dns.name.Name) -> ZoneData:
        self.store.poll()
        zone = self.store.zone_for(origin)
        if zone is None:
            raise ApiError(
                404,
                "not_found",
                f"zone {origin.to_text()} is not served",
                {"zone": origin.to_text()},
            )
        return zone

    def zone_config(self, origin: dns.name.Name) -> model.Zone | None:
        return next((z for z in self.config().zones if z.name == origin), None)


def json_body(request: ApiRequest) -> dict[str, object]:
    """The request's JSON object; 413, 415 or 400 otherwise (nothing is changed)."""
    if request.too_large:
        raise ApiError(413, "too_large", f"request body over {MAX_BODY} bytes")
    media = (request.content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected Content-Type: application/json, not {request.content_type or 'none'}",
        )
    try:
        value = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, "bad_json", f"the body is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return value
