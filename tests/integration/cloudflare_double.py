"""A loopback double of the Cloudflare API v4 endpoints the `cloudflare` SDK calls
for DNS records, written from Cloudflare's API documentation:

- GET  /client/v4/zones?name=&page=&per_page=
- GET  /client/v4/zones/{zone_id}/dns_records?name=|name.exact=&type=&page=&per_page=
- POST /client/v4/zones/{zone_id}/dns_records
- GET|PUT|PATCH|DELETE /client/v4/zones/{zone_id}/dns_records/{id}
- GET  /client/v4/user/tokens/verify

Every answer is the documented envelope {success, errors, messages, result[,
result_info]}. A missing or unknown Bearer token gets 401 (code 10000
"Authentication error"), a read-only token 403 on writes; record names are FQDNs
without the trailing dot and CNAME/MX targets lose theirs, as Cloudflare stores
them; MX needs `priority`; an A/AAAA/CNAME clash and an identical record are
refused with Cloudflare's codes. `fail_next(...)` queues canned answers (a 429
with Retry-After, a 500) for the next requests. It is a double, not Cloudflare.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TYPES = {"A", "AAAA", "CNAME", "MX", "TXT", "NS", "PTR", "SRV", "CAA"}
PREFIX = "/client/v4"


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class CloudflareDouble:
    tokens: dict[str, str] = field(default_factory=dict)  # token -> "edit" | "read"
    zones: dict[str, str] = field(default_factory=dict)  # id -> name
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> record
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query)
    call_times: list[float] = field(default_factory=list)  # time.monotonic() of each call
    max_per_page: int = 100
    canned: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    # what a test fixture sets up with it
    base_url: str = ""
    token: str = ""
    zone_id: str = ""

    # -- control from tests

    def add_zone(self, name: str) -> str:
        zone_id = uuid.uuid4().hex
        self.zones[zone_id] = name.rstrip(".").lower()
        return zone_id

    def add_record(self, zone_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._create(zone_id, body)

    def zone_records(self, zone_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return sorted(
                (dict(r) for r in self.records.values() if r["zone_id"] == zone_id),
                key=lambda r: (r["name"], r["type"], r.get("content", "")),
            )

    def fail_next(self, status: int, headers: dict[str, str] | None = None, times: int = 1) -> None:
        body = {
            "success": False,
            "errors": [{"code": 10000 if status != 429 else 971, "message": "canned failure"}],
            "messages": [],
            "result": None,
        }
        for _ in range(times):
            self.canned.append((status, headers or {}, body))

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "GET"]

    def start(self) -> str:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                double.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}{PREFIX}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- the API

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        with self.lock:
            self.calls.append((request.command, request.path))
            self.call_times.append(time.monotonic())
            if self.canned:
                status, headers, body = self.canned.pop(0)
                return _send(request, status, body, headers)
            try:
                status, body = self._route(request, raw)
            except ApiError as exc:
                status = exc.status
                body = {
                    "success": False,
                    "errors": [{"code": exc.code, "message": exc.message}],
                    "messages": [],
                    "result": None,
                }
        _send(request, status, body, {})

    def _route(self, request: BaseHTTPRequestHandler, raw: bytes) -> tuple[int, dict[str, Any]]:
        url = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/")
        if not path.startswith(PREFIX):
            raise ApiError(404, 7000, "No route for that URI")
        path = path[len(PREFIX) :]
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        role = self.tokens.get(token)
        if role is None:
            raise ApiError(401, 10000, "Authentication error")
        method = request.command
        if method != "GET" and role != "edit":
            raise ApiError(403, 10000, "Authentication error")
        body = json.loads(raw) if raw else {}

        if path == "/user/tokens/verify":
            return 200, _ok({"id": "token", "status": "active"})
        if path == "/zones" and method == "GET":
            zones = [
                {"id": zid, "name": name, "status": "active"}
                for zid, name in sorted(self.zones.items(), key=lambda z: z[1])
                if "name" not in query or query["name"].lower() == name
            ]
            return 200, self._page(zones, query)
        match = re.fullmatch(r"/zones/([^/]+)/dns_records(?:/([^/]+))?", path)
        if not match:
            raise ApiError(404, 7000, "No route for that URI")
        zone_id, record_id = match.groups()
        if zone_id not in self.zones:
            raise ApiError(
                404,
                7003,
                "Could not route to /zones/..., perhaps your object identifier is invalid?",
            )
        if record_id is None:
            if method == "GET":
                return 200, self._page(self._filter(zone_id, query), query)
            if method == "POST":
                return 200, _ok(self._create(zone_id, body))
            raise ApiError(405, 10405, "Method not allowed")
        record = self.records.get(record_id)
        if record is None or record["zone_id"] != zone_id:
            raise ApiError(404, 81044, "Record does not exist.")
        if method == "GET":
            return 200, _ok(record)
        if method == "DELETE":
            del self.records[record_id]
            return 200, _ok({"id": record_id})
        if method in ("PUT", "PATCH"):
            merged = {**record, **body} if method == "PATCH" else body
            self._validate(zone_id, merged, replacing=record_id)
            record.update(_stored(self.zones[zone_id], merged))
            return 200, _ok(record)
        raise ApiError(405, 10405, "Method not allowed")

    def _filter(self, zone_id: str, query: dict[str, str]) -> list[dict[str, Any]]:
        name = (query.get("name.exact") or query.get("name") or "").lower().rstrip(".")
        rdtype = query.get("type")
        return sorted(
            (
                r
                for r in self.records.values()
                if r["zone_id"] == zone_id
                and (not name or r["name"] == name)
                and (not rdtype or r["type"] == rdtype)
            ),
            key=lambda r: (r["name"], r["type"], r["created_on"]),
        )

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        per_page = min(int(float(query.get("per_page", 100))), self.max_per_page)
        page = max(1, int(float(query.get("page", 1))))
        chunk = items[(page - 1) * per_page : page * per_page]
        total_pages = max(1, -(-len(items) // per_page))
        body = _ok(chunk)
        body["result_info"] = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": total_pages,
        }
        return body

    def _create(self, zone_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self._validate(zone_id, body)
        record = _stored(self.zones[zone_id], body)
        record_id = uuid.uuid4().hex
        stamp = f"2026-01-01T00:00:{len(self.records):02d}.000000Z"
        record.update(
            id=record_id,
            zone_id=zone_id,
            zone_name=self.zones[zone_id],
            created_on=stamp,
            modified_on=stamp,
            proxiable=record["type"] in ("A", "AAAA", "CNAME"),
            meta={},
            comment=None,
            tags=[],
        )
        self.records[record_id] = record
        return record

    def _validate(self, zone_id: str, body: dict[str, Any], replacing: str | None = None) -> None:
        rdtype = body.get("type")
        if rdtype not in TYPES:
            raise ApiError(400, 9000, f"DNS record type {rdtype!r} is invalid.")
        zone = self.zones[zone_id]
        stored = _stored(zone, body)
        name = stored["name"]
        if name != zone and not name.endswith("." + zone):
            raise ApiError(400, 9007, "Name is not in the zone.")
        ttl = int(body.get("ttl", 1))
        if ttl != 1 and not 30 <= ttl <= 86400:
            raise ApiError(
                400, 9003, "TTL must be between 30 and 86400 seconds, or 1 for Automatic."
            )
        content = stored.get("content")
        if rdtype in ("A", "AAAA"):
            version = 4 if rdtype == "A" else 6
            try:
                ok = ipaddress.ip_address(str(content)).version == version
            except ValueError:
                ok = False
            if not ok:
                raise ApiError(400, 9005, f"Content for {rdtype} record is invalid.")
        if rdtype == "MX" and body.get("priority") is None:
            raise ApiError(400, 9100, "MX records require a priority.")
        if rdtype in ("SRV", "CAA") and not isinstance(body.get("data"), dict):
            raise ApiError(400, 9101, f"{rdtype} records require data.")
        if rdtype not in ("SRV", "CAA") and not content:
            raise ApiError(400, 9005, "Content is required.")
        for other_id, other in self.records.items():
            if other_id == replacing or other["zone_id"] != zone_id or other["name"] != name:
                continue
            if (rdtype == "CNAME") != (other["type"] == "CNAME"):
                raise ApiError(
                    400, 81053, "An A, AAAA, or CNAME record with that host already exists."
                )
            same = all(
                other.get(k) == stored.get(k) for k in ("type", "content", "priority", "data")
            )
            if same:
                raise ApiError(400, 81058, "An identical record already exists.")


def _stored(zone: str, body: dict[str, Any]) -> dict[str, Any]:
    """A request body as Cloudflare stores it: FQDN names, targets without the dot."""
    name = str(body.get("name", "@")).lower().rstrip(".")
    if name in ("@", ""):
        name = zone
    elif name != zone and not name.endswith("." + zone):
        name = f"{name}.{zone}"
    rdtype = body.get("type")
    stored: dict[str, Any] = {
        "name": name,
        "type": rdtype,
        "ttl": int(body.get("ttl", 1)),
        "proxied": bool(body.get("proxied", False)) if rdtype in ("A", "AAAA", "CNAME") else False,
    }
    if "content" in body:
        content = str(body["content"])
        stored["content"] = (
            content.rstrip(".") if rdtype in ("CNAME", "MX", "NS", "PTR") else content
        )
    if "priority" in body:
        stored["priority"] = body["priority"]
    if "data" in body:
        stored["data"] = body["data"]
        data = body["data"]
        if rdtype == "SRV":
            stored["content"] = f"{data['weight']} {data['port']} {data['target']}"
            stored["priority"] = data["priority"]
        if rdtype == "CAA":
            stored["content"] = f'{data["flags"]} {data["tag"]} "{data["value"]}"'
    return stored


def _ok(result: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result}


def _send(request: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    for key, value in headers.items():
        request.send_header(key, value)
    request.end_headers()
    request.wfile.write(data)
