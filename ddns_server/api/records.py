"""Requests -> RRset changes -> one version through `Store.write` (pure, no HTTP).

Both front ends (/api/v1 and /client/v4) describe what they want as
`Change`s; `apply_changes` checks each against the token's scope before
anything is written (403 naming what was refused), then computes the
changeset against the zone's current content inside the store's writer
(which may call it again after another process journaled first). The rules
of RFC 2136 policy hold here too: the SOA is the server's, apex NS only for
admin tokens, and a CNAME shares its name with nothing else (RFC 1034 §3.6.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from ddns_server.api.tokens import Token
from ddns_server.errors import DdnsError
from ddns_server.journal import Version
from ddns_server.store import Store
from ddns_server.zonedata import Changeset, Record, ZoneData, name_to_wire, wire_to_name

CHANNEL = "api"
IN = dns.rdataclass.IN
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
CNAME = dns.rdatatype.CNAME
MAX_TTL = 2**31 - 1  # RFC 2181 §8
DEFAULT_TTL = 300  # an RRset created without a TTL (and Cloudflare's ttl 1, "automatic")
MAX_CHANGES = 1000  # RRset changes in one request (one version)
MAX_VALUES = 500  # records in one RRset of a request
# Types that only the server or DNSSEC signing keep, and query-only types.
_NOT_WRITABLE = {
    dns.rdatatype.SOA,
    dns.rdatatype.RRSIG,
    dns.rdatatype.NSEC,
    dns.rdatatype.NSEC3,
    dns.rdatatype.NSEC3PARAM,
}
# CNAME may share its owner with these only (RFC 4035 §2.5, RFC 2136 §3.4.2.2).
_CNAME_COMPANIONS = {CNAME, dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3}


class ApiError(DdnsError):
    """A refused request: HTTP status, a short code, a message, and what was refused."""

    def __init__(
        self, status: int, code: str, message: str, refused: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.refused = refused or {}


def bad_request(message: str, **refused: object) -> ApiError:
    return ApiError(400, "bad_request", message, dict(refused))


def forbidden(message: str, **refused: object) -> ApiError:
    return ApiError(403, "forbidden", message, dict(refused))


@dataclass
class Change:
    """One RRset change: replace (ttl + values; empty values = delete), delete,
    add (values into the RRset), remove (values out of it)."""

    owner: dns.name.Name
    rdtype: int
    op: str  # replace | delete | add | remove
    ttl: int | None = None
    rdatas: list[bytes] = field(default_factory=list)


def parse_type(text: object) -> int:
    if not isinstance(text, str) or not text.strip():
        raise bad_request("type: expected a record type such as A, AAAA, TXT", type=text)
    try:
        rdtype = int(dns.rdatatype.from_text(text.strip().upper()))
    except dns.exception.DNSException:
        raise bad_request(f"unknown record type {text!r}", type=text) from None
    meta = dns.rdatatype.is_metatype(rdtype)  # type: ignore[arg-type]
    if meta or rdtype in (dns.rdatatype.ANY, dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        raise bad_request(f"{text} is not a record type a zone holds", type=text)
    return rdtype


def type_text(rdtype: int) -> str:
    return dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]


def parse_owner(text: object, origin: dns.name.Name) -> dns.name.Name:
    """An owner name: `@`, relative to the zone, or absolute (trailing dot, or
    a name that ends with the zone's name, as Cloudflare's FQDNs without the dot)."""
    if not isinstance(text, str) or not text.strip():
        raise bad_request("name: expected a name in the zone", name=text)
    raw = text.strip()
    zone_text = origin.to_text(omit_final_dot=True).lower()
    try:
        if raw == "@":
            name = origin
        elif raw.endswith("."):
            name = dns.name.from_text(raw)
        elif raw.lower() == zone_text or raw.lower().endswith("." + zone_text):
            name = dns.name.from_text(raw + ".")
        else:
            name = dns.name.from_text(raw, origin=origin)
    except dns.exception.DNSException as e:
        raise bad_request(f"bad name {text!r}: {e}", name=text) from None
    if not name.is_subdomain(origin):
        raise bad_request(
            f"name {name.to_text()} is outside the zone {origin.to_text()}", name=text
        )
    return name


def parse_ttl(value: object, what: str = "ttl") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TTL:
        raise bad_request(f"{what}: expected a whole number of seconds 0..{MAX_TTL}", ttl=value)
    return value


def parse_rdata(rdtype: int, text: object, origin: dns.name.Name) -> bytes:
    """Master-file rdata text -> wire (relative names are relative to the zone)."""
    if not isinstance(text, str) or not text.strip():
        raise bad_request(
            f"a {type_text(rdtype)} value must be non-empty text", type=type_text(rdtype)
        )
    try:
        rdata = dns.rdata.from_text(IN, rdtype, text, origin=origin, relativize=False)  # type: ignore[arg-type]
        return bytes(rdata.to_wire() or b"")
    except (dns.exception.DNSException, ValueError, TypeError) as e:
        raise bad_request(
            f"bad {type_text(rdtype)} value {text!r}: {e}", type=type_text(rdtype), value=text
        ) from None


def rdata_text(rdtype: int, wire: bytes) -> str:
    rd = dns.rdata.from_wire(IN, rdtype, wire, 0, len(wire))  # type: ignore[arg-type]
    return rd.to_text()


def check_scope(token: Token, origin: dns.name.Name, owner: dns.name.Name, rdtype: int) -> None:
    """403 naming the name or type a token may not change (or that nobody may)."""
    shown = owner.to_text()
    if rdtype in _NOT_WRITABLE:
        raise forbidden(
            f"{type_text(rdtype)} records are kept by the server; they cannot be changed",
            type=type_text(rdtype),
        )
    if rdtype == NS and owner == origin and not token.at_least("admin"):
        raise forbidden(
            "the apex NS records can be changed by admin tokens only", name=shown, type="NS"
        )
    if not token.can_name(owner):
        raise forbidden(f"token {token.name} may not change {shown}", name=shown)
    if not token.can_type(rdtype):
        raise forbidden(
            f"token {token.name} may not change {type_text(rdtype)} records",
            type=type_text(rdtype),
        )


def check_zone(token: Token, origin: dns.name.Name) -> None:
    if token.zone != origin:
        raise forbidden(
            f"token {token.name} is not for zone {origin.to_text()}", zone=origin.to_text()
        )


def check_role(token: Token, role: str) -> None:
    if not token.at_least(role):
        raise forbidden(f"token {token.name} has role {token.role}; this needs {role}", role=role)


def apply_changes(
    store: Store,
    token: Token,
    origin: dns.name.Name,
    changes: Sequence[Change],
    source: str,
    if_serial: int | None = None,
) -> Version | None:
    """Make `changes` one version (channel api, who = the token's name).

    Scope first (403, nothing written), then inside the writer: the
    `if_serial` precondition (412), the RRsets' new content, the CNAME rule.
    None when nothing would change (no version is written).
    """
    check_zone(token, origin)
    check_role(token, "write")
    if len(changes) > MAX_CHANGES:
        raise ApiError(413, "too_many_changes", f"at most {MAX_CHANGES} changes in one request")
    for change in changes:
        check_scope(token, origin, change.owner, change.rdtype)
        if len(change.rdatas) > MAX_VALUES:
            raise ApiError(413, "too_many_values", f"at most {MAX_VALUES} values in one RRset")

    def compute(zone: ZoneData) -> Changeset | None:
        if if_serial is not None and zone.serial != if_serial:
            raise ApiError(
                412,
                "serial_mismatch",
                f"zone {origin.to_text()} is at serial {zone.serial}, not {if_serial}",
                {"serial": zone.serial, "if_serial": if_serial},
            )
        return changeset_for(zone, changes)

    try:
        return store.write(origin, compute, who=token.name, source=source, channel=CHANNEL)
    except ApiError:
        raise
    except DdnsError as e:  # a pre-commit check (zone limits) or a write conflict
        raise ApiError(409, "refused", str(e)) from None


def changeset_for(zone: ZoneData, changes: Iterable[Change]) -> Changeset:
    """The records removed and added by `changes` applied in order (pure)."""
    # (low owner, type) -> (owner wire as given, ttl, rdata wires in order)
    work: dict[tuple[bytes, int], tuple[bytes, int, list[bytes]]] = {}
    original: dict[tuple[bytes, int], list[Record]] = {}
    for change in changes:
        owner = name_to_wire(change.owner)
        key = (owner.lower(), change.rdtype)
        if key not in work:
            existing = zone.records_at(key[0], change.rdtype)
            original[key] = existing
            ttl = existing[0][2] if existing else DEFAULT_TTL
            work[key] = (owner, ttl, [rr[3] for rr in existing])
        _, ttl, rdatas = work[key]
        if change.op == "delete":
            rdatas = []
        elif change.op == "replace":
            rdatas = _unique(change.rdatas)
            ttl = change.ttl if change.ttl is not None else ttl
        elif change.op == "add":
            rdatas = _unique(rdatas + change.rdatas)
            ttl = change.ttl if change.ttl is not None else ttl
        elif change.op == "remove":
            gone = set(change.rdatas)
            rdatas = [r for r in rdatas if r not in gone]
        else:  # the front ends only build the four
            raise bad_request(f"unknown change {change.op!r}")
        if change.rdtype == CNAME and len(rdatas) > 1:
            raise ApiError(
                400,
                "cname_single",
                f"{change.owner.to_text()}: a CNAME RRset holds one record",
                {"name": change.owner.to_text(), "type": "CNAME"},
            )
        work[key] = (owner, ttl, rdatas)
    changeset = Changeset()
    for key, (owner, ttl, rdatas) in work.items():
        old = original[key]
        new = [(owner, key[1], ttl, r) for r in rdatas]
        old_keys = {(rr[2], rr[3]) for rr in old}
        new_keys = {(rr[2], rr[3]) for rr in new}
        if old_keys == new_keys:
            continue
        changeset.removed.extend(old)
        changeset.added.extend(new)
    _check_cname(zone, work)
    return changeset


def _check_cname(
    zone: ZoneData, work: dict[tuple[bytes, int], tuple[bytes, int, list[bytes]]]
) -> None:
    owners = {low for low, _ in work}
    for low in owners:
        types = set(zone.nodes.get(low, {}))
        for (o, rdtype), (_, _, rdatas) in work.items():
            if o != low:
                continue
            if rdatas:
                types.add(rdtype)
            else:
                types.discard(rdtype)
        if CNAME in types and types - _CNAME_COMPANIONS:
            name = wire_to_name(zone.owner_wire(low) if low in zone.nodes else low).to_text()
            others = ", ".join(sorted(type_text(t) for t in types - _CNAME_COMPANIONS))
            raise ApiError(
                400,
                "cname_conflict",
                f"{name}: a CNAME cannot share its name with other records ({others})",
                {"name": name, "type": "CNAME"},
            )


def _unique(rdatas: Iterable[bytes]) -> list[bytes]:
    return list(dict.fromkeys(rdatas))


@dataclass(frozen=True)
class RRset:
    owner: dns.name.Name
    rdtype: int
    ttl: int
    rdatas: tuple[bytes, ...]


def rrsets(
    zone: ZoneData,
    token: Token,
    owner: dns.name.Name | None = None,
    rdtype: int | None = None,
) -> Iterator[RRset]:
    """The zone's RRsets the token may see (its names and types), optionally one
    owner and/or one type; the apex SOA first."""
    grouped: dict[tuple[bytes, int], list[Record]] = {}
    if owner is not None:
        records: Iterable[Record] = zone.records_at(name_to_wire(owner).lower(), rdtype)
    else:
        records = zone.records()
    for rr in records:
        if rdtype is not None and rr[1] != rdtype:
            continue
        grouped.setdefault((rr[0].lower(), rr[1]), []).append(rr)
    for (_low, rt), rrs in grouped.items():
        name = wire_to_name(rrs[0][0])
        if not (token.can_name(name) and token.can_type(rt)) and rt != SOA:
            continue
        if rt == SOA and not token.can_name(name):
            continue
        yield RRset(name, rt, rrs[0][2], tuple(rr[3] for rr in rrs))
