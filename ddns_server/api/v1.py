"""/api/v1: zones, RRsets, batches with `if_serial`, versions, rollback (JSON).

Errors are `{"error": {"status", "code", "message", "refused"}}` with a 4xx
status; the OpenAPI document (openapi.py) describes every path.
"""

from __future__ import annotations

import dns.exception
import dns.name

from ddns_server.api.openapi import document
from ddns_server.api.records import (
    CHANNEL,
    SOA,
    ApiError,
    Change,
    RRset,
    apply_changes,
    bad_request,
    check_role,
    check_zone,
    parse_owner,
    parse_rdata,
    parse_ttl,
    parse_type,
    rdata_text,
    rrsets,
    type_text,
)
from ddns_server.api.service import ApiContext, ApiRequest, ApiResponse, json_body
from ddns_server.api.tokens import Token
from ddns_server.errors import UserError
from ddns_server.journal import Version
from ddns_server.mirrors.engine import status
from ddns_server.plan import DEFAULT_MAX_CHANGE_SHARE, PlanRefused, plan_content
from ddns_server.store import zone_key
from ddns_server.zonedata import Record, ZoneData, wire_to_name

OPS = ("replace", "delete", "add", "remove")


def error_response(error: ApiError) -> ApiResponse:
    return ApiResponse(
        error.status,
        {
            "error": {
                "status": error.status,
                "code": error.code,
                "message": error.message,
                "refused": error.refused,
            }
        },
    )


def handle(ctx: ApiContext, request: ApiRequest) -> ApiResponse:
    """One /api/v1 request -> its response; never raises for anything a client sends."""
    try:
        return _route(ctx, request)
    except ApiError as e:
        return error_response(e)


def _route(ctx: ApiContext, req: ApiRequest) -> ApiResponse:
    path = req.path
    if path == ["openapi.json"]:
        _method(req, "GET")
        return ApiResponse(200, document())
    if not path or path[0] != "zones" or len(path) > 5:
        raise ApiError(404, "not_found", "no such path under /api/v1 (see /api/v1/openapi.json)")
    token = ctx.authenticate(req)
    if len(path) == 1:
        _method(req, "GET")
        zones = [z for z in ctx.zones() if z.origin == token.zone]
        return ApiResponse(200, {"zones": [_zone(z) for z in zones]})
    origin = _origin(path[1])
    check_zone(token, origin)
    zone = ctx.zone(origin)
    rest = path[2:]
    if not rest:
        if req.method == "PATCH":
            return _batch(ctx, token, zone, req)
        _method(req, "GET")
        return ApiResponse(200, _zone(zone))
    if rest[0] == "records":
        if len(rest) == 1:
            if req.method == "POST":
                return _batch(ctx, token, zone, req)
            _method(req, "GET", "POST")
            return _list(token, zone, req)
        if len(rest) == 3:
            return _rrset(ctx, token, zone, req, rest[1], rest[2])
    elif rest == ["changes"]:  # an alias of POST .../records (a batch)
        _method(req, "POST")
        return _batch(ctx, token, zone, req)
    elif rest[0] == "versions" and len(rest) == 3 and rest[2] == "rollback":
        # POST .../versions/{serial}/rollback: the same as .../rollback {"serial"}
        _method(req, "POST")
        check_role(token, "admin")
        return _rollback(ctx, token, zone, req, _number(rest[1], "serial", 0, 2**32 - 1))
    elif rest[0] == "versions" and len(rest) <= 2:
        _method(req, "GET")
        check_role(token, "admin")
        return _versions(ctx, zone, req, rest[1] if len(rest) == 2 else None)
    elif rest == ["rollback"]:
        _method(req, "POST")
        check_role(token, "admin")
        return _rollback(ctx, token, zone, req)
    elif rest == ["mirrors"]:
        _method(req, "GET")
        check_role(token, "admin")
        return _mirrors(ctx, zone.origin)
    elif rest == ["failover"]:
        _method(req, "GET")
        check_role(token, "admin")
        return _failover(ctx, zone.origin)
    raise ApiError(404, "not_found", "no such path under /api/v1 (see /api/v1/openapi.json)")


def _failover(ctx: ApiContext, origin: dns.name.Name) -> ApiResponse:
    """The zone's failover RRsets, the same dicts `health status --json` prints."""
    name = origin.to_text(omit_final_dot=True)
    rows = [row for row in ctx.failover_status() if row.get("zone") == name]
    return ApiResponse(200, {"failover": rows})


def _mirrors(ctx: ApiContext, origin: dns.name.Name) -> ApiResponse:
    """The zone's mirrors, the same dicts `mirror status --json` prints."""
    key = zone_key(origin)
    now = ctx.clock()
    rows = [status(ctx.store.journal, s, now) for s in ctx.config().mirrors if s.zone == key]
    return ApiResponse(200, {"mirrors": rows})


def _method(req: ApiRequest, *allowed: str) -> None:
    if req.method not in allowed:
        raise ApiError(
            405, "method_not_allowed", f"{req.method} is not allowed here; use {', '.join(allowed)}"
        )


def _origin(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text if text.endswith(".") else text + ".")
    except dns.exception.DNSException as e:
        raise bad_request(f"bad zone name {text!r}: {e}", zone=text) from None


def _zone(zone: ZoneData) -> dict[str, object]:
    return {"name": zone.origin.to_text(), "serial": zone.serial, "records": zone.record_count}


def rrset_dict(rrset: RRset) -> dict[str, object]:
    return {
        "name": rrset.owner.to_text(),
        "type": type_text(rrset.rdtype),
        "ttl": rrset.ttl,
        "values": [rdata_text(rrset.rdtype, r) for r in rrset.rdatas],
    }


def _list(token: Token, zone: ZoneData, req: ApiRequest) -> ApiResponse:
    name = req.arg("name")
    rtype = req.arg("type")
    owner = parse_owner(name, zone.origin) if name else None
    rdtype = parse_type(rtype) if rtype else None
    _can_read(token, owner, rdtype)
    found = [rrset_dict(r) for r in rrsets(zone, token, owner, rdtype)]
    return ApiResponse(200, {"zone": zone.origin.to_text(), "serial": zone.serial, "rrsets": found})


def _rrset(
    ctx: ApiContext, token: Token, zone: ZoneData, req: ApiRequest, name: str, rtype: str
) -> ApiResponse:
    origin = zone.origin
    owner = parse_owner(name, origin)
    rdtype = parse_type(rtype)
    if req.method == "GET":
        _can_read(token, owner, rdtype)
        found = list(rrsets(zone, token, owner, rdtype))
        if not found:
            raise ApiError(
                404,
                "not_found",
                f"no {type_text(rdtype)} RRset at {owner.to_text()}",
                {"name": owner.to_text(), "type": type_text(rdtype)},
            )
        return ApiResponse(200, rrset_dict(found[0]))
    if req.method == "PUT":
        body = json_body(req)
        _only(body, {"ttl", "values"})
        values = body.get("values")
        if not isinstance(values, list) or not values:
            raise bad_request(
                "values: expected a non-empty list of record data (DELETE removes an RRset)"
            )
        ttl = parse_ttl(body["ttl"]) if "ttl" in body else None
        change = Change(
            owner, rdtype, "replace", ttl, [parse_rdata(rdtype, v, origin) for v in values]
        )
        version = apply_changes(ctx.store, token, origin, [change], req.client)
        current = list(rrsets(ctx.zone(origin), token, owner, rdtype))
        out: dict[str, object] = _result(ctx, origin, version)
        out["rrset"] = rrset_dict(current[0]) if current else None
        return ApiResponse(200, out)
    if req.method == "DELETE":
        if not list(rrsets(zone, token, owner, rdtype)):
            # Scope first: a token must not learn what lies outside it.
            apply_changes(ctx.store, token, origin, [Change(owner, rdtype, "delete")], req.client)
            raise ApiError(
                404,
                "not_found",
                f"no {type_text(rdtype)} RRset at {owner.to_text()}",
                {"name": owner.to_text(), "type": type_text(rdtype)},
            )
        version = apply_changes(
            ctx.store, token, origin, [Change(owner, rdtype, "delete")], req.client
        )
        return ApiResponse(200, _result(ctx, origin, version))
    raise ApiError(
        405, "method_not_allowed", f"{req.method} is not allowed here; use GET, PUT, DELETE"
    )


def _can_read(token: Token, owner: dns.name.Name | None, rdtype: int | None) -> None:
    """A read of a name or type outside the token's scope is refused (403), not empty."""
    if owner is not None and not token.can_name(owner):
        raise ApiError(
            403, "forbidden", f"token {token.name} may not see {owner.to_text()}",
            {"name": owner.to_text()},
        )  # fmt: skip
    if rdtype is not None and rdtype != SOA and not token.can_type(rdtype):
        raise ApiError(
            403, "forbidden", f"token {token.name} may not see {type_text(rdtype)} records",
            {"type": type_text(rdtype)},
        )  # fmt: skip


def _result(ctx: ApiContext, origin: dns.name.Name, version: Version | None) -> dict[str, object]:
    zone = ctx.zone(origin)
    return {"serial": zone.serial, "changed": version is not None}


def _only(body: dict[str, object], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"unknown field(s): {', '.join(unknown)}", fields=unknown)


def _batch(ctx: ApiContext, token: Token, zone: ZoneData, req: ApiRequest) -> ApiResponse:
    body = json_body(req)
    _only(body, {"changes", "if_serial"})
    if_serial = body.get("if_serial")
    if if_serial is not None and (
        isinstance(if_serial, bool) or not isinstance(if_serial, int) or not 0 <= if_serial < 2**32
    ):
        raise bad_request("if_serial: expected a serial number", if_serial=if_serial)
    raw = body.get("changes")
    if not isinstance(raw, list) or not raw:
        raise bad_request("changes: expected a non-empty list")
    changes = [_change(item, i, zone.origin) for i, item in enumerate(raw)]
    version = apply_changes(ctx.store, token, zone.origin, changes, req.client, if_serial)
    return ApiResponse(200, _result(ctx, zone.origin, version))


def _change(item: object, index: int, origin: dns.name.Name) -> Change:
    where = f"changes[{index}]"
    if not isinstance(item, dict):
        raise bad_request(f"{where}: expected an object")
    unknown = sorted(set(item) - {"op", "name", "type", "ttl", "values"})
    if unknown:
        raise bad_request(f"{where}: unknown field(s): {', '.join(unknown)}", fields=unknown)
    op = item.get("op")
    if op not in OPS:
        raise bad_request(f"{where}.op: expected one of {', '.join(OPS)}", op=op)
    owner = parse_owner(item.get("name"), origin)
    rdtype = parse_type(item.get("type"))
    ttl = parse_ttl(item["ttl"], f"{where}.ttl") if "ttl" in item else None
    values = item.get("values", [])
    if op != "delete" and (not isinstance(values, list) or not values):
        raise bad_request(f"{where}.values: expected a non-empty list")
    if not isinstance(values, list):
        raise bad_request(f"{where}.values: expected a list")
    return Change(owner, rdtype, str(op), ttl, [parse_rdata(rdtype, v, origin) for v in values])


def version_dict(v: Version) -> dict[str, object]:
    return v.as_dict()


def record_line(record: Record) -> str:
    owner, rdtype, ttl, rdata = record
    return (
        f"{wire_to_name(owner).to_text()} {ttl} IN {type_text(rdtype)} {rdata_text(rdtype, rdata)}"
    )


def _versions(ctx: ApiContext, zone: ZoneData, req: ApiRequest, serial: str | None) -> ApiResponse:
    journal = ctx.store.journal
    key = zone_key(zone.origin)
    if serial is None:
        limit_text = req.arg("limit")
        limit = _number(limit_text, "limit", 1, 10000) if limit_text else 100
        return ApiResponse(
            200, {"versions": [version_dict(v) for v in journal.versions(key, limit)]}
        )
    version = _find(ctx, zone, _number(serial, "serial", 0, 2**32 - 1))
    changeset = journal.changeset(version.id)
    out = version_dict(version)
    out["diff"] = {
        "removed": [record_line(r) for r in changeset.removed],
        "added": [record_line(r) for r in changeset.added],
    }
    return ApiResponse(200, out)


def _find(ctx: ApiContext, zone: ZoneData, serial: int) -> Version:
    version = ctx.store.journal.find_version(zone_key(zone.origin), serial)
    if version is None:
        raise ApiError(
            404,
            "not_found",
            f"serial {serial} is not in the journal of {zone.origin.to_text()}",
            {"serial": serial},
        )
    return version


def _number(text: object, what: str, low: int, high: int) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise bad_request(f"{what}: expected a number, not {text!r}") from None
    if not low <= value <= high:
        raise bad_request(f"{what}: expected {low}..{high}")
    return value


def _rollback(
    ctx: ApiContext, token: Token, zone: ZoneData, req: ApiRequest, in_path: int | None = None
) -> ApiResponse:
    """Rollback as `journal rollback` does it (the plan and its safety rail),
    written by the API: channel api, who the token."""
    body = json_body(req) if in_path is None or req.body.strip() else {}
    _only(body, {"serial", "force", "dry_run"})
    serial = body.get("serial", in_path)
    if isinstance(serial, bool) or not isinstance(serial, int):
        raise bad_request("serial: expected the serial of a journaled version")
    force = body.get("force", False)
    dry_run = body.get("dry_run", False)
    if not isinstance(force, bool) or not isinstance(dry_run, bool):
        raise bad_request("force and dry_run: expected true or false")
    version = _find(ctx, zone, _number(serial, "serial", 0, 2**32 - 1))
    content = ctx.store.journal.content_at(zone_key(zone.origin), version)
    zc = ctx.zone_config(zone.origin)
    max_share = zc.max_change_share if zc is not None else DEFAULT_MAX_CHANGE_SHARE
    if dry_run:
        plan = plan_content(zone.origin, zone.records(), content)
        out = plan.to_dict(record_line)
        out["refused"] = None if force else plan.refusal(max_share)
        return ApiResponse(200, out)
    try:
        plan, new = ctx.store.replace_content(
            zone.origin, content, token.name, req.client, CHANNEL, None if force else max_share
        )
    except PlanRefused as e:
        raise ApiError(409, "plan_refused", f'{e} (send "force": true to apply it)') from None
    except UserError as e:
        raise ApiError(409, "refused", str(e)) from None
    out = plan.to_dict(record_line)
    out["new_serial"] = new.serial if new is not None else None
    return ApiResponse(200, out)
