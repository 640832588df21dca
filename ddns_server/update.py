"""RFC 2136 UPDATE on one zone: zone section, prerequisites, prescan, apply.

Pure: takes the zone's current content (ZoneData), a TSIG-checked UPDATE in
its light form (ParsedUpdate: read from the wire by wireupdate.py, or
turned from dnspython's UpdateMessage by `from_message`, so these rules are
written once for both), the zone's policy rules and the signing key, and
returns the net Changeset, or raises the DnsError that answers the message.
Nothing is changed here: the caller commits the changeset (Store.commit bumps
the SOA serial once), so a message applies whole or not at all.

The update RRs are applied one after the other to a working view, so a
message's later RRs see its earlier ones (RFC 2136 §3.4.2). Where the RFC
leaves room, this does what BIND 9 does (bin/named/update.c), and says so.

dnspython parses UPDATE messages one RRset per RR, so their order is kept.
It keeps no TTL for RRs without rdata, and RFC 2136 wants those to be zero:
the TTLs are read again from the message's wire (`Message.wire`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import NamedTuple, cast

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
import dns.serial
import dns.update

from ddns_server import policy
from ddns_server.errors import FormErr, NotAuth, NotZone, PrerequisiteFailed, Refused
from ddns_server.model import PolicyRule
from ddns_server.zonedata import (
    Changeset,
    ZoneData,
    is_subdomain,
    name_to_wire,
    skip_name,
    soa_serial,
    split_rrset,
    wire_to_name,
)

_RR_FIXED = struct.Struct("!HHIH")

IN = dns.rdataclass.IN
ANY_CLASS = dns.rdataclass.ANY
NONE_CLASS = dns.rdataclass.NONE
ANY = dns.rdatatype.ANY
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
CNAME = dns.rdatatype.CNAME
DNAME = dns.rdatatype.DNAME

# Types whose rdata wire is already canonical (no names inside): compared as is.
_PLAIN = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.TXT})
# BIND (dns_rdatatype_atcname): the types that may live beside a CNAME.
_AT_CNAME = frozenset(
    {
        dns.rdatatype.RRSIG,
        dns.rdatatype.NSEC,
        dns.rdatatype.SIG,
        dns.rdatatype.NXT,
        dns.rdatatype.KEY,
    }
)
# BIND ignores adds of MD and MF (RFC 1123 §6.1.3.2: not in master files).
_IGNORED_ADDS = frozenset({dns.rdatatype.MD, dns.rdatatype.MF})

# (ttl, rdata wire): one record of an RRset.
RR = tuple[int, bytes]
# (lower-cased owner wire, rdtype)
Key = tuple[bytes, int]


class Operation(NamedTuple):
    """One update RR after the prescan: what to do, in message order.

    A NamedTuple, not a dataclass: a 64 KB UPDATE makes thousands of them.
    """

    kind: str  # "add" | "delete_rrset" | "delete_name" | "delete_rr"
    owner: bytes  # the owner's uncompressed wire as sent (its case kept)
    rdtype: int
    ttl: int = 0
    rdata: bytes = b""
    low: bytes = b""  # the owner's lower-cased wire (computed once per RR)
    canon: bytes = b""  # the rdata's canonical form (for comparing records)


class UpdateRR(NamedTuple):
    """One prerequisite or update RR as sent: what the RFC 2136 rules read.

    `owner` is the owner's uncompressed wire as sent (its case kept; a Name
    is made from it only for a message's text, see `name`), `rdclass` the
    class on the wire (ANY and NONE mean what RFC 2136 §2.4 and §2.5 say),
    `ttl` the TTL as sent, `rdata` the uncompressed rdata wire (None: the
    RR had none). dnsmsg.py's dnspython path and wireupdate.py's reader
    both produce these, so the rules below are written once.
    """

    owner: bytes
    low: bytes  # the owner's lower-cased wire (ZoneData's key)
    rdclass: int
    rdtype: int
    ttl: int
    rdata: bytes | None

    @property
    def name(self) -> dns.name.Name:
        """The owner as a dnspython Name (for error texts: built only then)."""
        return wire_to_name(self.owner)


class ParsedUpdate(NamedTuple):
    """An UPDATE's zone, prerequisite and update sections (RFC 2136 §2)."""

    zone: list[tuple[dns.name.Name, int, int]]  # (name, type, class) of each zone RR
    prerequisites: list[UpdateRR]
    updates: list[UpdateRR]


def from_message(msg: dns.update.UpdateMessage, wire: bytes | None = None) -> ParsedUpdate:
    """The light form of a message dnspython parsed (one RRset per RR)."""
    prereq_ttls, update_ttls = section_ttls(msg, wire if wire is not None else msg.wire)

    def rrs(rrsets: Sequence[dns.rrset.RRset], ttls: Sequence[int]) -> list[UpdateRR]:
        out = []
        for rrset, ttl in zip(rrsets, ttls, strict=True):
            owner = name_to_wire(rrset.name)  # as sent: Names compare without case
            low = owner.lower()
            rdclass = rrset.deleting if rrset.deleting is not None else rrset.rdclass
            if not rrset:
                out.append(UpdateRR(owner, low, rdclass, rrset.rdtype, ttl, None))
            for rd in rrset:  # one, as dnspython parses UPDATEs
                out.append(UpdateRR(owner, low, rdclass, rrset.rdtype, ttl, rd.to_wire()))
        return out

    return ParsedUpdate(
        [(rrset.name, rrset.rdtype, rrset.rdclass) for rrset in msg.zone],
        rrs(msg.prerequisite, prereq_ttls),
        rrs(msg.update, update_ttls),
    )


def canonical(rdtype: int, rdata: bytes) -> bytes:
    """The rdata in canonical form (RFC 4034 §6.2), for comparing records.

    Canonical form only lower-cases the names in it (the wire is already
    uncompressed): rdata without an upper-case ASCII octet is canonical as is.
    """
    if rdtype in _PLAIN or rdata == rdata.lower():
        return rdata
    try:
        rd = dns.rdata.from_wire(IN, cast(dns.rdatatype.RdataType, rdtype), rdata, 0, len(rdata))
    except dns.exception.DNSException:
        return rdata
    return rd.to_digestable()  # type: ignore[no-any-return]


def type_text(rdtype: int) -> str:
    return dns.rdatatype.to_text(cast(dns.rdatatype.RdataType, rdtype))


def low_wire(name: dns.name.Name) -> bytes:
    """Lower-cased wire form: ZoneData's key for a name."""
    return name_to_wire(name).lower()


# ---------------------------------------------------------------------------
# The working view: the zone as the update RRs so far left it.


class RRsetView:
    """One RRset in the working view: its records keyed by canonical rdata.

    Every operation on it is O(1) per record (issue 14, item 9: a list and
    re-canonicalizing every record on each add made one large UPDATE
    quadratic). TTLs: after an add the whole RRset has the added TTL (as
    BIND does), so one number holds it; `ttls` keeps per-record TTLs only
    for an RRset read from the zone and not yet added to.

    `base`: while the view only gained new records at the RRset's own TTL,
    how many records the zone had (they come first, unchanged); -1 once
    anything else happened. The changeset of such a view is its tail,
    without comparing the whole RRset (one large UPDATE adding to a large
    RRset, issue 14 item 9).
    """

    __slots__ = ("base", "records", "ttl", "ttls")

    def __init__(
        self,
        records: dict[bytes, bytes],
        ttl: int,
        ttls: dict[bytes, int] | None,
        base: int = -1,
    ):
        self.records = records  # canonical rdata -> rdata as sent/stored
        self.ttl = ttl
        self.ttls = ttls
        self.base = base

    @classmethod
    def from_records(cls, rdtype: int, rrs: Sequence[RR]) -> RRsetView:
        records: dict[bytes, bytes] = {}
        ttls: dict[bytes, int] = {}
        for ttl, rdata in rrs:
            key = canonical(rdtype, rdata)
            records[key] = rdata
            ttls[key] = ttl
        uniform = len(set(ttls.values())) <= 1
        ttl = next(iter(ttls.values()), 0)
        # Records equal but for case collapse into one: no longer the zone's list.
        base = len(records) if uniform and len(records) == len(rrs) else -1
        return cls(records, ttl, None if uniform else ttls, base)

    def __len__(self) -> int:
        return len(self.records)

    def ttl_of(self, key: bytes) -> int:
        return self.ttls[key] if self.ttls is not None else self.ttl

    def rrs(self) -> list[RR]:
        return [(self.ttl_of(key), rdata) for key, rdata in self.records.items()]

    def add(self, key: bytes, ttl: int, rdata: bytes) -> bool:
        """Add a record (the whole RRset takes its TTL); False: a duplicate."""
        if key in self.records:
            if self.ttl_of(key) == ttl:
                return False
            self.base = -1
        elif ttl != self.ttl and self.records:
            self.base = -1  # every record takes the new TTL
        self.records.pop(key, None)  # an equal record is replaced, at the end
        self.records[key] = rdata
        self.ttl = ttl
        self.ttls = None
        return True

    def remove(self, key: bytes) -> bool:
        if self.records.pop(key, None) is None:
            return False
        self.base = -1
        if self.ttls is not None:
            del self.ttls[key]
        return True

    def clear(self) -> None:
        self.records = {}
        self.ttls = None
        self.base = -1


class WorkingView:
    """The zone's content with this message's changes so far (copy on touch)."""

    def __init__(self, zone: ZoneData) -> None:
        self.zone = zone
        self.original: dict[Key, list[RR]] = {}
        self.current: dict[Key, RRsetView] = {}
        self.touched_types: dict[bytes, set[int]] = {}
        # owner case of names the message creates: the first spelling seen
        self.new_owners: dict[bytes, bytes] = {}

    def rrset(self, low: bytes, rdtype: int) -> RRsetView:
        """The RRset in the view (changes to it must be followed by touch())."""
        key = (low, rdtype)
        view = self.current.get(key)
        if view is None:
            node = self.zone.nodes.get(low)
            if node is None or rdtype not in node:
                # nothing there yet (a large UPDATE's many new names)
                self.original[key] = []
                view = self.current[key] = RRsetView({}, 0, None, 0)
                return view
            original = [(ttl, rdata) for _, ttl, rdata in split_rrset(node[rdtype][1])]
            self.original[key] = original
            view = self.current[key] = RRsetView.from_records(rdtype, original)
        return view

    def touch(self, low: bytes, rdtype: int) -> None:
        types = self.touched_types.get(low)
        if types is None:
            self.touched_types[low] = {rdtype}
        else:
            types.add(rdtype)

    def has(self, low: bytes, rdtype: int) -> bool:
        """Are there records of `rdtype` at a name (`types` without the set)?"""
        view = self.current.get((low, rdtype))
        if view is not None:
            return bool(view)
        node = self.zone.nodes.get(low)
        return node is not None and rdtype in node

    def types(self, low: bytes) -> set[int]:
        """The types that have records at a name."""
        node = self.zone.nodes.get(low)
        types = set(node) if node else set()
        for rdtype in self.touched_types.get(low, ()):
            if self.current[(low, rdtype)]:
                types.add(rdtype)
            else:
                types.discard(rdtype)
        return types

    def owner(self, owner: bytes, low: bytes) -> bytes:
        """The owner wire for records added at `owner` (as sent): the zone's stored case."""
        if low in self.zone.nodes:
            return self.zone.owner_wire(low)
        return self.new_owners.setdefault(low, owner)

    def changeset(self) -> Changeset:
        """The net change from the zone to the view."""
        changes = Changeset()
        removed = changes.removed
        added = changes.added
        nodes = self.zone.nodes
        original = self.original
        for key, view in self.current.items():
            low, rdtype = key
            before = original[key]
            base = view.base
            if base >= 0:
                # Only new records added (a large UPDATE's new names, or
                # records added to an RRset): they are the change.
                if len(view.records) > base:
                    owner = self.zone.owner_wire(low) if low in nodes else self.new_owners[low]
                    ttl = view.ttl
                    added.extend(
                        (owner, rdtype, ttl, rdata)
                        for rdata in islice(view.records.values(), base, None)
                    )
                continue
            rrs = view.rrs()
            if rrs == before:
                continue
            old = set(before)
            new = set(rrs)
            owner = self.zone.owner_wire(low) if low in nodes else self.new_owners[low]
            removed.extend(
                (owner, rdtype, ttl, rdata) for ttl, rdata in before if (ttl, rdata) not in new
            )
            added.extend(
                (owner, rdtype, ttl, rdata) for ttl, rdata in rrs if (ttl, rdata) not in old
            )
        return changes


# ---------------------------------------------------------------------------
# RFC 2136 §3.1: the zone section


def zone_section(update: ParsedUpdate) -> dns.name.Name:
    """§3.1.1: exactly one zone RR, type SOA, class IN; the one place this is checked."""
    if len(update.zone) != 1:
        raise FormErr(f"{len(update.zone)} RRs in the zone section (need exactly 1)")
    name, rdtype, rdclass = update.zone[0]
    if rdtype != SOA:
        raise FormErr("zone section type is not SOA")
    if rdclass != IN:
        # BIND looks the zone up by name and class: no such zone here.
        raise NotAuth(f"not authoritative for {name}")
    return name


def check_zone_section(zone: ZoneData, update: ParsedUpdate) -> None:
    """§3.1.1: the zone section is well formed and names this zone."""
    name = zone_section(update)
    if name != zone.origin:
        raise NotAuth(f"not authoritative for {name}")


# ---------------------------------------------------------------------------
# RFC 2136 §3.2: prerequisites


def check_prerequisites(zone: ZoneData, prerequisites: Sequence[UpdateRR]) -> None:
    """§3.2: each prerequisite in order, then the value-dependent RRsets (§3.2.3)."""
    wanted: dict[Key, set[bytes]] = {}
    for rr in prerequisites:
        name = rr.name
        ttl = rr.ttl
        if ttl != 0:
            raise FormErr(f"prerequisite {name} has TTL {ttl} (must be 0)")
        low = rr.low
        if not is_subdomain(low, zone.apex):
            raise NotZone(f"prerequisite {name} is outside the zone")
        rdtype = rr.rdtype
        if rr.rdclass == ANY_CLASS:  # §2.4.1 / §2.4.4: must exist
            if rdtype == ANY:
                if low not in zone.nodes:
                    raise PrerequisiteFailed(dns.rcode.NXDOMAIN, f"{name} does not exist")
            elif not zone.records_at(low, rdtype):
                raise PrerequisiteFailed(
                    dns.rcode.NXRRSET, f"{name}/{type_text(rdtype)} does not exist"
                )
        elif rr.rdclass == NONE_CLASS:  # §2.4.3 / §2.4.5: must not exist
            if rdtype == ANY:
                if low in zone.nodes:
                    raise PrerequisiteFailed(dns.rcode.YXDOMAIN, f"{name} exists")
            elif zone.records_at(low, rdtype):
                raise PrerequisiteFailed(dns.rcode.YXRRSET, f"{name}/{type_text(rdtype)} exists")
        elif rr.rdclass == IN:  # §2.4.2: value-dependent
            values = wanted.setdefault((low, rdtype), set())
            if rr.rdata is not None:
                values.add(canonical(rdtype, rr.rdata))
        else:
            raise FormErr(f"prerequisite {name} has class {rr.rdclass}")
    for (low, wanted_type), values in wanted.items():
        records = zone.records_at(low, wanted_type)
        if {canonical(wanted_type, rdata) for _, _, _, rdata in records} != values:
            name = dns.name.from_wire(low, 0)[0]
            raise PrerequisiteFailed(
                dns.rcode.NXRRSET,
                f"{name}/{type_text(wanted_type)} differs from the prerequisite",
            )


# ---------------------------------------------------------------------------
# RFC 2136 §3.3 and §3.4.1: permissions and prescan


def prescan(
    zone: ZoneData,
    updates: Sequence[UpdateRR],
    rules: Sequence[PolicyRule],
    key_name: dns.name.Name | None,
) -> list[Operation]:
    """Check every update RR and turn it into an Operation.

    Like BIND, one pass over the RRs in order: NOTZONE (§3.4.1.2), then the
    class/type/TTL rules (§3.4.1.3, FORMERR), then the policy (§3.3, REFUSED).
    """
    operations: list[Operation] = []
    apex = zone.apex
    allows = policy.KeyPolicy(rules, zone.origin, key_name).allows
    granted: set[tuple[bytes, int]] = set()
    for rr in updates:
        rdtype = rr.rdtype
        ttl = rr.ttl
        rdclass = rr.rdclass
        low = rr.low
        if not is_subdomain(low, apex):
            raise NotZone(f"update RR {rr.name} is outside the zone")
        # Meta types (OPT, TSIG, TKEY, IXFR, AXFR, MAILB, MAILA, ANY: 41 and
        # 128-255) and the reserved TYPE0 are never data: FORMERR, like BIND.
        meta = dns.rdatatype.is_metatype(cast(dns.rdatatype.RdataType, rdtype)) or rdtype == 0
        new: Operation | None
        if rdclass not in (ANY_CLASS, NONE_CLASS):
            if rdclass != IN:
                raise FormErr(f"update RR {rr.name} has class {rdclass}")
            if meta:
                raise FormErr(f"update RR {rr.name} adds meta type {rdtype}")
            new = _with_rdata("add", rr, ttl, low)
        elif rdclass == ANY_CLASS:
            if ttl != 0 or (meta and rdtype != ANY):
                raise FormErr(f"bad delete RR {rr.name}: TTL must be 0 and type not meta")
            kind = "delete_name" if rdtype == ANY else "delete_rrset"
            new = Operation(kind, rr.owner, rdtype, low=low)
        else:  # NONE_CLASS
            if ttl != 0 or meta:
                raise FormErr(f"bad delete RR {rr.name}: TTL must be 0 and type not meta")
            new = _with_rdata("delete_rr", rr, 0, low)
        for rdtype_checked in (rdtype,) if rdtype != ANY else _policy_types(zone, low, rdtype):
            checked = (low, rdtype_checked)
            if checked in granted:
                continue
            if not allows(low, rdtype_checked):
                who = key_name.to_text(omit_final_dot=True) if key_name else "unsigned"
                raise Refused(f"{who} may not update {rr.name}/{type_text(rdtype_checked)}")
            granted.add(checked)
        if new is not None:
            operations.append(new)
    return operations


def _with_rdata(kind: str, rr: UpdateRR, ttl: int, low: bytes) -> Operation | None:
    rdata = rr.rdata
    if rdata is None:
        return None
    rdtype = rr.rdtype
    return Operation(kind, rr.owner, rdtype, ttl, rdata, low, canonical(rdtype, rdata))


def _policy_types(zone: ZoneData, low: bytes, rdtype: int) -> Iterable[int]:
    """The types the policy must allow for an update RR (at lower-cased wire `low`).

    A delete of every RRset of a name (type ANY) needs each type there
    (BIND's ssu_checkall), except the apex SOA and NS it never deletes.
    """
    if rdtype != ANY:
        return (rdtype,)
    node = zone.nodes.get(low)
    if not node:
        return ()
    if low == zone.apex:
        return [t for t in node if t not in (SOA, NS)]
    return list(node)


# ---------------------------------------------------------------------------
# RFC 2136 §3.4.2: apply, in order, to the working view


def apply_operation(view: WorkingView, op: Operation) -> None:
    if op.kind == "add":
        add_rr(view, op)
    elif op.kind == "delete_rrset":
        delete_rrset(view, op)
    elif op.kind == "delete_name":
        delete_name(view, op)
    else:
        delete_rr(view, op)


def add_rr(view: WorkingView, op: Operation) -> None:
    """§3.4.2.2: add one RR, with the special cases BIND applies."""
    zone = view.zone
    _kind, owner, rdtype, ttl, rdata, low, canon = op
    if rdtype in _IGNORED_ADDS:
        return
    if low not in zone.nodes:
        view.new_owners.setdefault(low, owner)  # the first spelling (view.owner)
    if rdtype == SOA:
        # Only at the apex, and only with a newer serial (RFC 1982); it replaces.
        if low != zone.apex:
            return
        current = view.rrset(low, SOA)
        old = next(iter(current.records.values()), None)
        if old is not None and not _serial_newer(rdata, old):
            return
        _replace(view, low, SOA, op)
        return
    if rdtype == CNAME:
        # CNAME exclusivity (RFC 1034 §3.6.2): BIND ignores the add that conflicts.
        if any(t != CNAME and t not in _AT_CNAME for t in view.types(low)):
            return
    elif rdtype not in _AT_CNAME and view.has(low, CNAME):
        return
    rrset = view.rrset(low, rdtype)
    if rdtype in (CNAME, DNAME):
        # Singletons: the new RR replaces the old one (RFC 2136 §3.4.2.2).
        if rrset.rrs() != [(ttl, rdata)]:
            _replace(view, low, rdtype, op)
        return
    # Like BIND: the whole RRset takes the added RR's TTL; an equal RR is
    # replaced; an identical one is ignored.
    if rrset.add(canon, ttl, rdata):
        view.touch(low, rdtype)


def _replace(view: WorkingView, low: bytes, rdtype: int, op: Operation) -> None:
    rrset = view.rrset(low, rdtype)
    rrset.clear()
    rrset.add(op.canon, op.ttl, op.rdata)
    view.touch(low, rdtype)


def delete_rrset(view: WorkingView, op: Operation) -> None:
    """§3.4.2.3: delete an RRset; never the apex SOA or NS."""
    low = op.low
    if low == view.zone.apex and op.rdtype in (SOA, NS):
        return
    rrset = view.rrset(low, op.rdtype)
    if rrset:
        rrset.clear()
        view.touch(low, op.rdtype)


def delete_name(view: WorkingView, op: Operation) -> None:
    """§3.4.2.3: delete every RRset of a name; at the apex SOA and NS stay."""
    low = op.low
    apex = low == view.zone.apex
    for rdtype in view.types(low):
        if apex and rdtype in (SOA, NS):
            continue
        view.rrset(low, rdtype).clear()
        view.touch(low, rdtype)


def delete_rr(view: WorkingView, op: Operation) -> None:
    """§3.4.2.4: delete one RR; never an SOA, never the last apex NS."""
    low = op.low
    rdtype = op.rdtype
    if rdtype == SOA:
        return
    rrset = view.rrset(low, rdtype)
    if not rrset:
        return
    target = op.canon
    if target not in rrset.records:
        return
    if len(rrset) == 1 and rdtype == NS and low == view.zone.apex:
        return  # BIND: "attempt to delete last NS ignored"
    rrset.remove(target)
    view.touch(low, rdtype)


def _serial_newer(new_soa: bytes, old_soa: bytes) -> bool:
    new = soa_serial(new_soa)
    old = soa_serial(old_soa)
    return dns.serial.Serial(new) > dns.serial.Serial(old)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# The whole message


def section_ttls(msg: dns.update.UpdateMessage, wire: bytes | None) -> tuple[list[int], list[int]]:
    """The TTLs of the prerequisite and update RRs as sent.

    dnspython keeps no TTL for RRs without rdata, so they are read from the
    wire (when the sections hold one RR per RRset, as dnspython parses
    UPDATE messages); otherwise the RRsets' TTLs.
    """
    prereq = [rrset.ttl for rrset in msg.prerequisite]
    update = [rrset.ttl for rrset in msg.update]
    if wire is None or len(wire) < 12:
        return prereq, update
    qdcount, ancount, nscount, _ = struct.unpack_from("!HHHH", wire, 4)
    if ancount != len(prereq) or nscount != len(update):
        return prereq, update
    pos = 12
    for _ in range(qdcount):
        pos = skip_name(wire, pos) + 4
    ttls: list[int] = []
    for _ in range(ancount + nscount):
        pos = skip_name(wire, pos)
        _rdtype, _rdclass, ttl, rdlen = _RR_FIXED.unpack_from(wire, pos)
        pos += 10 + rdlen
        ttls.append(ttl)
    return ttls[:ancount], ttls[ancount:]


def process(
    zone: ZoneData,
    update: ParsedUpdate | dns.update.UpdateMessage,
    rules: Sequence[PolicyRule],
    key_name: dns.name.Name | None,
    wire: bytes | None = None,
) -> Changeset:
    """The net changes of an UPDATE message (empty: it changes nothing).

    `update` is the light form (wireupdate.py reads it from the wire) or a
    dnspython UpdateMessage, turned into it here. Raises the DnsError that
    answers the message (FORMERR, NOTAUTH, NOTZONE, REFUSED, or the
    prerequisite's rcode). The SOA serial is not bumped here
    (Store.prepare does that once per version); an explicit newer SOA in the
    message is passed through.
    """
    if not isinstance(update, ParsedUpdate):
        update = from_message(update, wire)
    check_zone_section(zone, update)
    check_prerequisites(zone, update.prerequisites)
    operations = prescan(zone, update.updates, rules, key_name)
    view = WorkingView(zone)
    for op in operations:
        apply_operation(view, op)
    return view.changeset()


__all__ = [
    "Operation",
    "ParsedUpdate",
    "UpdateRR",
    "WorkingView",
    "canonical",
    "from_message",
    "process",
]
