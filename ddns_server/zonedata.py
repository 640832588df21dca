"""The compact in-memory form of one zone's current content.

Built for the query path: owner names are kept as lower-cased uncompressed wire
(`bytes.lower()` only touches A-Z, never a label length, so it is DNS
case-folding), and every RRset is kept ready to go on the wire, each record as
`C0 0C` (a pointer to the question name) + type, class, TTL, length and rdata.
A positive answer for the question name is then a single dict lookup and a
copy. A dnspython zone of 100,000 records takes seconds and ~110 MB to load;
this form takes a fraction of both (see docs/performance.md).

The zone is changed in place, inside one synchronous call on the reactor
thread, so a query never sees half a change.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.SOA

QNAME_POINTER = b"\xc0\x0c"
IN = dns.rdataclass.IN
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
CNAME = dns.rdatatype.CNAME
DNAME = dns.rdatatype.DNAME

_RR_HEADER = struct.Struct("!HHIH")

# One record: (owner wire, rdtype, ttl, rdata wire). Owner in its stored case.
Record = tuple[bytes, int, int, bytes]
# One RRset on the wire: (number of records, records each as C00C + tail).
RRsetWire = tuple[int, bytes]


@dataclass
class Changeset:
    """Records removed and added by one version (SOA change included)."""

    removed: list[Record] = field(default_factory=list)
    added: list[Record] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.removed or self.added)


_U32 = struct.Struct("!I")


def soa_serial(rdata: bytes) -> int:
    """The serial of SOA rdata in (uncompressed) wire form.

    RFC 1035 §3.3.13: MNAME, RNAME, then SERIAL, REFRESH, RETRY, EXPIRE,
    MINIMUM as 32-bit numbers; the serial is the fifth-last one. Read and
    patched in place because the serial changes on every version.
    """
    return int(_U32.unpack_from(rdata, len(rdata) - 20)[0])


def soa_rdata_with_serial(rdata: bytes, serial: int) -> bytes:
    """SOA rdata (uncompressed wire) with another serial."""
    return rdata[:-20] + _U32.pack(serial) + rdata[-16:]


def rr_tail(rdtype: int, ttl: int, rdata: bytes) -> bytes:
    """Type, class, TTL, length and rdata: a record without its owner."""
    return _RR_HEADER.pack(rdtype, IN, ttl, len(rdata)) + rdata


def split_rrset(wire: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Yield (rdtype, ttl, rdata) for each record of an RRsetWire's bytes."""
    pos = 0
    end = len(wire)
    while pos < end:
        rdtype, _rdclass, ttl, rdlen = _RR_HEADER.unpack_from(wire, pos + 2)
        start = pos + 12
        yield rdtype, ttl, wire[start : start + rdlen]
        pos = start + rdlen


def tails(wire: bytes) -> Iterator[bytes]:
    """Yield each record of an RRsetWire without its owner pointer."""
    pos = 0
    end = len(wire)
    while pos < end:
        rdlen = (wire[pos + 10] << 8) | wire[pos + 11]
        yield wire[pos + 2 : pos + 12 + rdlen]
        pos += 12 + rdlen


def _records(wire: bytes) -> Iterator[bytes]:
    """Yield each record of an RRsetWire, its owner pointer included."""
    pos = 0
    end = len(wire)
    while pos < end:
        stop = pos + 12 + ((wire[pos + 10] << 8) | wire[pos + 11])
        yield wire[pos:stop]
        pos = stop


def skip_name(wire: bytes, pos: int) -> int:
    """Where the (possibly compressed) name at `pos` of a parsed message ends.

    Only for messages dnspython has already parsed, so the name is valid.
    """
    while True:
        length = wire[pos]
        if length == 0:
            return pos + 1
        if length >= 0xC0:
            return pos + 2
        pos += length + 1


def parent(name: bytes) -> bytes:
    """The wire form of a wire name's parent."""
    return name[name[0] + 1 :]


def find_zone(zones: Mapping[bytes, ZoneData], name: bytes) -> ZoneData | None:
    """The zone with the longest apex that lower-cased wire `name` is at or below."""
    pos = 0
    n = len(name)
    while pos < n:
        zone = zones.get(name[pos:])
        if zone is not None:
            return zone
        pos += name[pos] + 1
    return zones.get(b"\x00")


def name_to_wire(name: dns.name.Name) -> bytes:
    wire = name.to_wire()
    assert wire is not None  # None only when writing into a file
    return wire


def wire_to_name(wire: bytes) -> dns.name.Name:
    return dns.name.from_wire(wire, 0)[0]


def is_subdomain(name: bytes, origin: bytes) -> bool:
    """True when lower-cased wire `name` is `origin` or below it."""
    if not name.endswith(origin):
        return False
    cut = len(name) - len(origin)
    pos = 0
    while pos < cut:
        pos += name[pos] + 1
    return pos == cut


class ZoneData:
    """One zone's current version: nodes, delegations, wildcards, SOA."""

    def __init__(self, origin: dns.name.Name) -> None:
        self.origin = origin
        self.apex = name_to_wire(origin).lower()
        # owner (lower-cased wire) -> rdtype -> RRsetWire
        self.nodes: dict[bytes, dict[int, RRsetWire]] = {}
        # lower-cased owner -> stored owner, only where they differ
        self.case: dict[bytes, bytes] = {}
        # name -> number of nodes strictly below it (empty non-terminals exist)
        self.below: dict[bytes, int] = {}
        # delegation points: non-apex owners holding NS
        self.cuts: set[bytes] = set()
        # owners of DNAME records (RFC 6672: the names below them are redirected)
        self.dnames: set[bytes] = set()
        # owners at or below a delegation point (answered with a referral) or
        # below a DNAME (answered by synthesis); lets the query fast path
        # skip the search for a cut with one lookup
        self.occluded: set[bytes] = set()
        self.wildcards = 0
        self.serial = 0
        self.record_count = 0
        # SOA for negative answers: C00C-form tail with TTL min(SOA TTL, minimum)
        self.negative_soa = b""
        # query.py's remembered answers (query minus ID -> response minus ID)
        self.answers: dict[bytes, bytes] = {}

    # -- building and changing -------------------------------------------------

    @classmethod
    def from_records(cls, origin: dns.name.Name, records: Iterable[Record]) -> ZoneData:
        """Build from records in one tight pass, then the bookkeeping in another."""
        zone = cls(origin)
        nodes = zone.nodes
        case = zone.case
        pack = _RR_HEADER.pack
        count = 0
        for owner, rdtype, ttl, rdata in records:
            low = owner.lower()
            rr = QNAME_POINTER + pack(rdtype, IN, ttl, len(rdata)) + rdata
            node = nodes.get(low)
            if node is None:  # a new owner (most records of a large zone): made whole
                nodes[low] = {rdtype: (1, rr)}
                if owner != low:
                    case[low] = owner
            else:
                current = node.get(rdtype)
                node[rdtype] = (1, rr) if current is None else (current[0] + 1, current[1] + rr)
            count += 1
        zone.record_count = count
        apex = zone.apex
        below = zone.below
        for low, node in nodes.items():
            if DNAME in node:
                zone.dnames.add(low)
            if low == apex:
                continue
            if NS in node:
                zone.cuts.add(low)
            if low.startswith(b"\x01*"):
                zone.wildcards += 1
            name = low[low[0] + 1 :]  # parent(low), inline: once per node
            below[name] = below.get(name, 0) + 1
            while name != apex and name:
                name = parent(name)
                below[name] = below.get(name, 0) + 1
        zone._mark_occluded()
        zone._refresh_soa()
        return zone

    def _add_node(
        self, low: bytes, owner: bytes, node: dict[int, RRsetWire], bulk: bool = False
    ) -> None:
        self.nodes[low] = node
        if owner != low:
            self.case[low] = owner
        for count, _ in node.values():
            self.record_count += count
        if DNAME in node and low not in self.dnames:
            self.dnames.add(low)
            if not bulk:
                self._mark_occluded()
        if NS in node and low != self.apex and low not in self.cuts:
            self.cuts.add(low)
            if not bulk:
                self._mark_occluded()
        elif (self.cuts or self.dnames) and not bulk and self._occluded(low):
            self.occluded.add(low)
        if low.startswith(b"\x01*"):
            self.wildcards += 1
        name = low
        below = self.below
        while name != self.apex and name:
            name = parent(name)
            below[name] = below.get(name, 0) + 1

    def _remove_node(self, low: bytes) -> None:
        node = self.nodes.pop(low)
        self.case.pop(low, None)
        self.record_count -= sum(count for count, _ in node.values())
        self.occluded.discard(low)
        if low in self.cuts:
            self.cuts.discard(low)
            self._mark_occluded()
        if low in self.dnames:
            self.dnames.discard(low)
            self._mark_occluded()
        if low.startswith(b"\x01*"):
            self.wildcards -= 1
        name = low
        below = self.below
        while name != self.apex and name:
            name = parent(name)
            left = below[name] - 1
            if left:
                below[name] = left
            else:
                del below[name]

    def delegation(self, low: bytes) -> bytes | None:
        """The highest delegation point at or above `low` (below the apex), or None:
        the data at and below it is the child's, not ours to serve (RFC 1034 §4.2.1)."""
        cuts = self.cuts
        if not cuts:
            return None
        found = None
        apex_len = len(self.apex)
        pos = 0
        while len(low) - pos > apex_len:
            suffix = low[pos:]
            if suffix in cuts:
                found = suffix
            pos += low[pos] + 1
        return found

    def _occluded(self, low: bytes) -> bool:
        """At or below a delegation point, or strictly below a DNAME owner
        (RFC 6672 §2.3: the names below a DNAME are not served)."""
        if self.delegation(low) is not None:
            return True
        if not self.dnames:
            return False
        apex_len = len(self.apex)
        name = low
        while len(name) > apex_len:
            name = parent(name)
            if name in self.dnames:
                return True
        return False

    def _mark_occluded(self) -> None:
        """Recompute `occluded` after a delegation point or DNAME came or went (rare)."""
        if not self.cuts and not self.dnames:
            self.occluded = set()
            return
        self.occluded = {low for low in self.nodes if self._occluded(low)}

    def apply(self, changeset: Changeset) -> None:
        """Apply a changeset in place (one synchronous call: atomic for queries).

        Linear in the change and the RRsets it touches (issue 14, item 9):
        records are compared as whole wire records in insertion-ordered
        sets, and each touched node is replaced once, whatever number of
        its types changed.
        """
        self.answers.clear()
        pack = _RR_HEADER.pack
        # lower-cased owner -> (owner as given, rdtype -> (removed, added records))
        touched: dict[bytes, tuple[bytes, dict[int, tuple[list[bytes], list[bytes]]]]] = {}
        for records, which in ((changeset.removed, 0), (changeset.added, 1)):
            for owner, rdtype, ttl, rdata in records:
                low = owner.lower()
                entry = touched.get(low)
                if entry is None:
                    entry = touched[low] = (owner, {})
                change = entry[1].get(rdtype)
                if change is None:
                    change = entry[1][rdtype] = ([], [])
                change[which].append(QNAME_POINTER + pack(rdtype, IN, ttl, len(rdata)) + rdata)
        nodes = self.nodes
        for low, (owner, types) in touched.items():
            node = nodes.get(low)
            if node is None:
                # A new name (most of a large UPDATE's): nothing to remove.
                new_node = {}
                for rdtype, (_removed, added) in types.items():
                    kept = dict.fromkeys(added)
                    new_node[rdtype] = (len(kept), b"".join(kept))
                self._add_node(low, owner, new_node)
                continue
            new_node = dict(node)
            for rdtype, (removed, added) in types.items():
                current = new_node.get(rdtype)
                if current is None and not removed:
                    # A new RRset (the common case of a large UPDATE).
                    kept = dict.fromkeys(added)
                else:
                    drop = set(removed)
                    # An insertion-ordered set: linear in the RRset and the change
                    # (a list's membership test made large updates quadratic).
                    kept = dict.fromkeys(
                        r for r in _records(current[1] if current else b"") if r not in drop
                    )
                    kept.update(dict.fromkeys(added))
                if kept:
                    new_node[rdtype] = (len(kept), b"".join(kept))
                else:
                    new_node.pop(rdtype, None)
            stored_owner = self.case.get(low, low) if node else owner
            self._remove_node(low)
            if new_node:
                self._add_node(low, stored_owner, new_node)
        self._refresh_soa()

    def _refresh_soa(self) -> None:
        apex = self.nodes.get(self.apex)
        if not apex or SOA not in apex:
            self.serial = 0
            self.negative_soa = b""
            return
        (rdtype, ttl, rdata) = next(split_rrset(apex[SOA][1]))
        self.serial = soa_serial(rdata)
        minimum = _U32.unpack_from(rdata, len(rdata) - 4)[0]
        self.negative_soa = rr_tail(SOA, min(ttl, minimum), rdata)

    @staticmethod
    def _soa_from_wire(rdata: bytes) -> dns.rdtypes.ANY.SOA.SOA:
        return dns.rdata.from_wire(IN, SOA, rdata, 0, len(rdata))  # type: ignore[return-value]

    # -- reading, for updates, transfers and export ------------------------------

    def owner_wire(self, low: bytes) -> bytes:
        """The stored (original-case) owner for a lower-cased owner."""
        return self.case.get(low, low)

    def soa(self) -> dns.rdtypes.ANY.SOA.SOA:
        _, _, rdata = next(split_rrset(self.nodes[self.apex][SOA][1]))
        return self._soa_from_wire(rdata)

    def soa_record(self) -> Record:
        _, ttl, rdata = next(split_rrset(self.nodes[self.apex][SOA][1]))
        return (self.owner_wire(self.apex), SOA, ttl, rdata)

    def records_at(self, low: bytes, rdtype: int | None = None) -> list[Record]:
        """Records at a lower-cased owner (one type, or all)."""
        node = self.nodes.get(low)
        if not node:
            return []
        owner = self.owner_wire(low)
        out: list[Record] = []
        for rt, (_, wire) in node.items():
            if rdtype is None or rt == rdtype:
                out.extend((owner, t, ttl, rdata) for t, ttl, rdata in split_rrset(wire))
        return out

    def rdataset(self, name: dns.name.Name, rdtype: int) -> dns.rdataset.Rdataset | None:
        """The RRset at `name` of `rdtype` as a dnspython Rdataset, or None."""
        node = self.nodes.get(name_to_wire(name).lower())
        if not node or rdtype not in node:
            return None
        rdataset: dns.rdataset.Rdataset | None = None
        for rt, ttl, rdata in split_rrset(node[rdtype][1]):
            rd = dns.rdata.from_wire(IN, rt, rdata, 0, len(rdata))  # type: ignore[arg-type]
            if rdataset is None:
                rdataset = dns.rdataset.Rdataset(IN, rt)  # type: ignore[arg-type]
            rdataset.add(rd, ttl)
        return rdataset

    def rdtypes(self, name: dns.name.Name) -> list[int]:
        node = self.nodes.get(name_to_wire(name).lower())
        return list(node) if node else []

    def records(self) -> Iterator[Record]:
        """Every record, the apex SOA first (the order a transfer wants)."""
        yield self.soa_record()
        for low, node in self.nodes.items():
            owner = self.case.get(low, low)
            for rdtype, (_, wire) in node.items():
                if rdtype == SOA and low == self.apex:
                    continue
                for rt, ttl, rdata in split_rrset(wire):
                    yield owner, rt, ttl, rdata

    def record_set(self) -> set[Record]:
        """Every record, for comparing versions (owner in its stored case)."""
        return set(self.records())
