"""/client/v4: the part of Cloudflare's API that DNS tools use, over our zones.

Cloudflare's envelope (`success`, `errors` [{code, message}], `messages`,
`result`, `result_info` for lists) and its record model: one record is one
rdata (create adds a record to the RRset, update replaces that one record),
names are FQDNs without the trailing dot, `ttl` 1 means automatic (our
DEFAULT_TTL), `proxied` is accepted and ignored (always false: we only serve
DNS). Ids are stable across restarts because they are derived, not stored:
a zone's id hashes its name; a record's hashes zone, owner, type and rdata
wire (so an update that changes the content returns the record's new id).
"""

from __future__ import annotations

import datetime
import hashlib
import math
from collections.abc import Iterator

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.txtbase

from ddns_server.api.records import (
    DEFAULT_TTL,
    IN,
    ApiError,
    Change,
    apply_changes,
    check_zone,
    parse_owner,
    parse_ttl,
    type_text,
)
from ddns_server.api.service import ApiContext, ApiRequest, ApiResponse, json_body
from ddns_server.api.tokens import Token
from ddns_server.zonedata import Record, ZoneData, name_to_wire, wire_to_name

# The DNS record types Cloudflare's API offers, which we serve too.
SUPPORTED = {
    "A", "AAAA", "CAA", "CERT", "CNAME", "DNSKEY", "DS", "HTTPS", "LOC", "MX", "NAPTR",
    "NS", "PTR", "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "TXT", "URI",
}  # fmt: skip
_NAME_CONTENT = {"CNAME", "NS", "PTR"}  # content is a domain name, shown without the dot
MAX_PER_PAGE = 5000
EPOCH = "1970-01-01T00:00:00Z"

# Cloudflare's error codes for what we refuse (developers.cloudflare.com, API errors).
AUTH_ERROR = 10000  # Authentication error (bad token, or outside the token's scope)
NO_ROUTE = 7000  # No route for that URI
BAD_METHOD = 7001  # Method not allowed for this route
BAD_ZONE = 7003  # Could not route to /zones/..., perhaps your object identifier is invalid?
VALIDATION = 1004  # DNS Validation Error
BAD_BODY = 9207  # Request body is invalid
BAD_HEADERS = 6003  # Invalid request headers
RATE_LIMITED = 971  # Please wait and consider throttling your request speed
RECORD_MISSING = 81044  # Record does not exist
RECORD_EXISTS = 81057  # The record already exists
CNAME_CONFLICT = 81053  # An A, AAAA, or CNAME record with that host already exists


class CfError(Exception):
    def __init__(self, status: int, code: int, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


def envelope(result: object, info: dict[str, int] | None = None, status: int = 200) -> ApiResponse:
    body: dict[str, object] = {"success": True, "errors": [], "messages": [], "result": result}
    if info is not None:
        body["result_info"] = info
    return ApiResponse(status, body)


def error_envelope(status: int, code: int, message: str, detail: str | None = None) -> ApiResponse:
    error: dict[str, object] = {"code": code, "message": message}
    if detail:
        error["error_chain"] = [{"code": code, "message": detail}]
    return ApiResponse(
        status, {"success": False, "errors": [error], "messages": [], "result": None}
    )


def _from_api_error(e: ApiError) -> CfError:
    if e.status == 401:
        return CfError(401, AUTH_ERROR, "Authentication error", e.message)
    if e.status == 403:
        return CfError(403, AUTH_ERROR, f"Authentication error: {e.message}", e.message)
    if e.status == 429:
        return CfError(429, RATE_LIMITED, "Please wait and consider throttling your request speed")
    if e.status == 413:
        return CfError(413, BAD_BODY, f"Request body is invalid: {e.message}", e.message)
    if e.status == 415:
        return CfError(415, BAD_HEADERS, f"Invalid request headers: {e.message}", e.message)
    if e.code == "bad_json":
        return CfError(400, BAD_BODY, "Request body is invalid.", e.message)
    if e.code == "cname_conflict":
        return CfError(400, CNAME_CONFLICT, e.message)
    if e.status == 404:
        return CfError(404, NO_ROUTE, e.message)
    return CfError(
        400 if e.status < 500 else e.status, VALIDATION, "DNS Validation Error", e.message
    )


def handle(ctx: ApiContext, request: ApiRequest) -> ApiResponse:
    """One /client/v4 request -> its response in Cloudflare's envelope."""
    try:
        return _route(ctx, request)
    except ApiError as e:
        error = _from_api_error(e)
    except CfError as e:
        error = e
    return error_envelope(error.status, error.code, error.message, error.detail)


def zone_id(origin: dns.name.Name) -> str:
    text = origin.to_text(omit_final_dot=True).lower()
    return hashlib.sha256(b"zone\0" + text.encode()).hexdigest()[:32]


def record_id(origin: dns.name.Name, record: Record) -> str:
    owner, rdtype, _ttl, rdata = record
    h = hashlib.sha256(name_to_wire(origin).lower() + b"\0" + owner.lower())
    h.update(rdtype.to_bytes(2, "big") + rdata)
    return h.hexdigest()[:32]


def _method(req: ApiRequest, *allowed: str) -> None:
    if req.method not in allowed:
        raise CfError(405, BAD_METHOD, f"Method {req.method} not available for that URI.")


def _route(ctx: ApiContext, req: ApiRequest) -> ApiResponse:
    path = req.path
    if path == ["user", "tokens", "verify"]:
        _method(req, "GET")
        token = ctx.authenticate(req)
        return envelope(_token_dict(token))
    if not path or path[0] != "zones" or len(path) > 4:
        raise CfError(404, NO_ROUTE, "No route for that URI")
    token = ctx.authenticate(req)
    if len(path) == 1:
        _method(req, "GET")
        return _zones(ctx, token, req)
    zone = _zone_by_id(ctx, token, path[1])
    if len(path) == 2:
        _method(req, "GET")
        return envelope(_zone_dict(zone))
    if path[2] != "dns_records":
        raise CfError(404, NO_ROUTE, "No route for that URI")
    if len(path) == 3:
        _method(req, "GET", "POST")
        if req.method == "POST":
            return _create(ctx, token, zone, req)
        return _list(token, zone, req)
    _method(req, "GET", "PUT", "PATCH", "DELETE")
    record = _find_record(token, zone, path[3])
    if req.method == "GET":
        return envelope(_record_dict(zone, record))
    if req.method == "DELETE":
        change = Change(wire_to_name(record[0]), record[1], "remove", None, [record[3]])
        apply_changes(ctx.store, token, zone.origin, [change], req.client)
        return envelope({"id": path[3]})
    return _update(ctx, token, zone, record, req)


def _token_dict(token: Token) -> dict[str, object]:
    expires = _iso(token.expires) if token.expires is not None else None
    out: dict[str, object] = {
        "id": hashlib.sha256(b"token\0" + token.name.encode()).hexdigest()[:32],
        "status": "active",
        "not_before": _iso(token.created),
    }
    if expires:
        out["expires_on"] = expires
    return out


def _iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _page(req: ApiRequest, default_per_page: int) -> tuple[int, int]:
    def number(name: str, default: int, high: int) -> int:
        text = req.arg(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise CfError(400, VALIDATION, f"{name} must be a number") from None
        if value < 1:
            raise CfError(400, VALIDATION, f"{name} must be at least 1")
        return min(value, high)

    return number("page", 1, 10**9), number("per_page", default_per_page, MAX_PER_PAGE)


def _paginate(
    items: list[dict[str, object]], req: ApiRequest, per_page_default: int
) -> ApiResponse:
    page, per_page = _page(req, per_page_default)
    start = (page - 1) * per_page
    chunk = items[start : start + per_page]
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(chunk),
        "total_count": len(items),
        "total_pages": max(1, math.ceil(len(items) / per_page)),
    }
    return envelope(chunk, info)


def _zone_dict(zone: ZoneData) -> dict[str, object]:
    ns = [rdata_name(rr[3]) for rr in zone.records_at(zone.apex, dns.rdatatype.NS)]
    return {
        "id": zone_id(zone.origin),
        "name": zone.origin.to_text(omit_final_dot=True),
        "status": "active",
        "paused": False,
        "type": "full",
        "development_mode": 0,
        "name_servers": ns,
        "original_name_servers": ns,
        "created_on": EPOCH,
        "modified_on": EPOCH,
        "activated_on": EPOCH,
        "meta": {"serial": zone.serial},
        "owner": {"id": None, "type": "user", "email": None},
        "account": {"id": "", "name": "ddns-server"},
        "permissions": ["#dns_records:read", "#dns_records:edit"],
        "plan": {"id": "", "name": "ddns-server", "price": 0, "currency": "USD",
                 "frequency": "", "is_subscribed": False, "can_subscribe": False,
                 "legacy_id": "free", "legacy_discount": False,
                 "externally_managed": False},
    }  # fmt: skip


def rdata_name(wire: bytes) -> str:
    rd = dns.rdata.from_wire(IN, dns.rdatatype.NS, wire, 0, len(wire))
    return str(rd.to_text()).rstrip(".")


def _zones(ctx: ApiContext, token: Token, req: ApiRequest) -> ApiResponse:
    name = req.arg("name")
    zones = [z for z in ctx.zones() if z.origin == token.zone]
    if name:
        wanted = name.rstrip(".").lower()
        zones = [z for z in zones if z.origin.to_text(omit_final_dot=True).lower() == wanted]
    return _paginate([_zone_dict(z) for z in zones], req, 20)


def _zone_by_id(ctx: ApiContext, token: Token, text: str) -> ZoneData:
    for zone in ctx.zones():
        if zone_id(zone.origin) == text.lower() or zone.origin.to_text(
            omit_final_dot=True
        ).lower() == text.lower().rstrip("."):
            check_zone(token, zone.origin)
            return zone
    raise CfError(
        404,
        BAD_ZONE,
        f"Could not route to /zones/{text}, perhaps your object identifier is invalid?",
    )


def _visible(token: Token, zone: ZoneData) -> Iterator[Record]:
    for rr in zone.records():
        if rr[1] == dns.rdatatype.SOA or type_text(rr[1]) not in SUPPORTED:
            continue
        if token.can_name(wire_to_name(rr[0])) and token.can_type(rr[1]):
            yield rr


def _find_record(token: Token, zone: ZoneData, rid: str) -> Record:
    for rr in _visible(token, zone):
        if record_id(zone.origin, rr) == rid.lower():
            return rr
    raise CfError(404, RECORD_MISSING, "Record does not exist.")


def _record_dict(zone: ZoneData, record: Record) -> dict[str, object]:
    owner, rdtype, ttl, rdata = record
    rtype = type_text(rdtype)
    rd = dns.rdata.from_wire(IN, rdtype, rdata, 0, len(rdata))  # type: ignore[arg-type]
    out: dict[str, object] = {
        "id": record_id(zone.origin, record),
        "zone_id": zone_id(zone.origin),
        "zone_name": zone.origin.to_text(omit_final_dot=True),
        "name": wire_to_name(owner).to_text(omit_final_dot=True).lower(),
        "type": rtype,
        "content": _content(rtype, rd),
        "proxiable": False,
        "proxied": False,
        "ttl": ttl,
        "locked": False,
        "settings": {},
        "meta": {"auto_added": False, "managed_by_apps": False, "source": "ddns-server"},
        "comment": None,
        "tags": [],
        "created_on": EPOCH,
        "modified_on": EPOCH,
    }
    if rtype == "MX":
        out["priority"] = rd.preference  # type: ignore[attr-defined]
    elif rtype == "SRV":
        out["priority"] = rd.priority  # type: ignore[attr-defined]
        out["data"] = {
            "priority": rd.priority,  # type: ignore[attr-defined]
            "weight": rd.weight,  # type: ignore[attr-defined]
            "port": rd.port,  # type: ignore[attr-defined]
            "target": rd.target.to_text().rstrip("."),  # type: ignore[attr-defined]
        }
    elif rtype == "CAA":
        out["data"] = {
            "flags": rd.flags,  # type: ignore[attr-defined]
            "tag": rd.tag.decode(),  # type: ignore[attr-defined]
            "value": rd.value.decode(),  # type: ignore[attr-defined]
        }
    return out


def _content(rtype: str, rd: dns.rdata.Rdata) -> str:
    if rtype == "TXT":
        return "".join(s.decode("utf-8", "replace") for s in rd.strings)  # type: ignore[attr-defined]
    if rtype in _NAME_CONTENT:
        return str(rd.to_text()).rstrip(".")
    if rtype == "MX":
        return str(rd.exchange.to_text()).rstrip(".")  # type: ignore[attr-defined]
    if rtype == "SRV":
        target = rd.target.to_text().rstrip(".")  # type: ignore[attr-defined]
        return f"{rd.weight} {rd.port} {target}"  # type: ignore[attr-defined]
    return str(rd.to_text())


def _matches(value: str, req: ApiRequest, field: str) -> bool | None:
    """The record's `field` against the request's filters (None: no filter given)."""
    checks: list[bool] = []
    v = value.lower()
    for key, test in (
        (field, lambda f: v == f),
        (f"{field}.exact", lambda f: v == f),
        (f"{field}.contains", lambda f: f in v),
        (f"{field}.startswith", lambda f: v.startswith(f)),
        (f"{field}.endswith", lambda f: v.endswith(f)),
    ):
        wanted = req.arg(key)
        if wanted is not None:
            checks.append(test(wanted.lower().rstrip(".") if field == "name" else wanted.lower()))
    if not checks:
        return None
    return all(checks)


def _list(token: Token, zone: ZoneData, req: ApiRequest) -> ApiResponse:
    rtype = (req.arg("type") or "").upper()
    match_any = (req.arg("match") or "all").lower() == "any"
    if (req.arg("proxied") or "").lower() == "true":
        return _paginate([], req, 100)  # nothing of ours is proxied
    items = []
    for rr in _visible(token, zone):
        record = _record_dict(zone, rr)
        results = [
            r
            for r in (
                (str(record["type"]) == rtype) if rtype else None,
                _matches(str(record["name"]), req, "name"),
                _matches(str(record["content"]), req, "content"),
            )
            if r is not None
        ]
        if results and not (any(results) if match_any else all(results)):
            continue
        items.append(record)
    return _paginate(items, req, 100)


def _rdata(rtype: str, body: dict[str, object], origin: dns.name.Name) -> bytes:
    """Cloudflare's record fields -> rdata wire; names in content are FQDNs."""
    if rtype not in SUPPORTED:
        raise CfError(
            400, VALIDATION, "DNS Validation Error", f"record type {rtype} is not supported"
        )
    rdtype = dns.rdatatype.from_text(rtype)
    content = body.get("content")
    data = body.get("data")
    priority = body.get("priority")
    try:
        if rtype == "TXT" and isinstance(content, str) and not content.startswith('"'):
            raw = content.encode("utf-8")
            if not raw:
                raise CfError(400, VALIDATION, "DNS Validation Error", "content must not be empty")
            chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)]
            txt = dns.rdtypes.txtbase.TXTBase(IN, rdtype, chunks)  # type: ignore[arg-type]
            return bytes(txt.to_wire() or b"")
        if rtype == "SRV" and isinstance(data, dict):
            fields = (data.get("priority", 0), data.get("weight", 0), data.get("port"))
            text = " ".join(str(f) for f in fields) + f" {data.get('target')}"
        elif rtype == "CAA" and isinstance(data, dict) and content is None:
            value = str(data.get("value", "")).replace('"', '\\"')
            text = f'{data.get("flags", 0)} {data.get("tag")} "{value}"'
        elif not isinstance(content, str) or not content.strip():
            raise CfError(
                400, VALIDATION, "DNS Validation Error", f"content is required for {rtype}"
            )
        elif rtype == "MX":
            text = f"{_priority(priority, 10)} {content}"
        elif rtype == "SRV" and len(content.split()) == 3:
            text = f"{_priority(priority, 0)} {content}"
        else:
            text = content
        rd = dns.rdata.from_text(IN, rdtype, text, origin=dns.name.root, relativize=False)
        return bytes(rd.to_wire() or b"")
    except CfError:
        raise
    except (dns.exception.DNSException, ValueError, TypeError, UnicodeError) as e:
        raise CfError(
            400, VALIDATION, "DNS Validation Error", f"content for {rtype} is invalid: {e}"
        ) from None


def _priority(value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise CfError(400, VALIDATION, "DNS Validation Error", "priority must be 0..65535")
    return value


def _ttl(value: object) -> int | None:
    """Cloudflare's ttl: 1 (or none) is automatic: None (keep or default)."""
    if value is None or value == 1:
        return None
    return parse_ttl(value)


def _fields(
    body: dict[str, object], origin: dns.name.Name
) -> tuple[dns.name.Name, str, bytes, int | None]:
    rtype = body.get("type")
    if not isinstance(rtype, str) or not rtype:
        raise CfError(400, VALIDATION, "DNS Validation Error", "type is required")
    rtype = rtype.upper()
    if rtype not in SUPPORTED:
        raise CfError(
            400, VALIDATION, "DNS Validation Error", f"record type {rtype} is not supported"
        )
    owner = parse_owner(body.get("name"), origin)
    proxied = body.get("proxied")
    if proxied is not None and not isinstance(proxied, bool):
        raise CfError(400, VALIDATION, "DNS Validation Error", "proxied must be true or false")
    return owner, rtype, _rdata(rtype, body, origin), _ttl(body.get("ttl"))


def _create(ctx: ApiContext, token: Token, zone: ZoneData, req: ApiRequest) -> ApiResponse:
    body = json_body(req)
    owner, rtype, rdata, ttl = _fields(body, zone.origin)
    rdtype = int(dns.rdatatype.from_text(rtype))
    if any(rr[3] == rdata for rr in zone.records_at(name_to_wire(owner).lower(), rdtype)):
        # Scope first, then say it exists (Cloudflare's 81057).
        apply_changes(
            ctx.store, token, zone.origin, [Change(owner, rdtype, "add", None, [])], req.client
        )
        raise CfError(400, RECORD_EXISTS, "The record already exists.")
    existing = zone.records_at(name_to_wire(owner).lower(), rdtype)
    if ttl is None and not existing:
        ttl = DEFAULT_TTL
    change = Change(owner, rdtype, "add", ttl, [rdata])
    apply_changes(ctx.store, token, zone.origin, [change], req.client)
    return envelope(_record_dict(zone, _written(zone, owner, rdtype, rdata)))


def _written(zone: ZoneData, owner: dns.name.Name, rdtype: int, rdata: bytes) -> Record:
    for rr in zone.records_at(name_to_wire(owner).lower(), rdtype):
        if rr[3] == rdata:
            return rr
    raise CfError(500, VALIDATION, "the record was not written")  # not reached: write raised


def _update(
    ctx: ApiContext, token: Token, zone: ZoneData, record: Record, req: ApiRequest
) -> ApiResponse:
    """PUT replaces the record (name, type, content, ttl); PATCH changes the given fields."""
    body = json_body(req)
    old = _record_dict(zone, record)
    if req.method == "PATCH":
        merged: dict[str, object] = {"name": old["name"], "type": old["type"], "ttl": old["ttl"]}
        if "priority" in old:
            merged["priority"] = old["priority"]
        if "content" not in body and "data" not in body:
            merged["content"] = old["content"]
            if "data" in old:
                merged["data"] = old["data"]
        merged.update(body)
        body = merged
    else:
        body = {"name": old["name"], "type": old["type"], **body}
    owner, rtype, rdata, ttl = _fields(body, zone.origin)
    rdtype = int(dns.rdatatype.from_text(rtype))
    old_owner = wire_to_name(record[0])
    same_rrset = old_owner == owner and rdtype == record[1]
    if ttl is None:
        ttl = record[2] if same_rrset else DEFAULT_TTL
    changes = [Change(old_owner, record[1], "remove", None, [record[3]])]
    changes.append(Change(owner, rdtype, "add", ttl, [rdata]))
    apply_changes(ctx.store, token, zone.origin, changes, req.client)
    return envelope(_record_dict(zone, _written(zone, owner, rdtype, rdata)))
