"""What one change may make a zone hold: records per RRset, types per name, sizes.

A pure check of a zone and the changeset about to be committed (issue 14,
items 9 and 10): one low-privilege key must not be able to grow an RRset
until answering it costs seconds, or until it no longer fits a DNS message
(a TCP answer or a transfer message: 65,535 octets). Over a cap the whole
change is refused (REFUSED), nothing is applied.

The caps follow BIND's `max-records-per-type` and `max-types-per-name`
(BIND 9.18.28+/9.20 default both to 100; 0 = unlimited, as in BIND). BIND
has no rdata or RRset size option (it fails the answer instead); ours keep
every RRset far below 65,535 octets, with room for the question, an OPT and
a TSIG record.

It runs as one of the store's pre-commit checks for RFC 2136 UPDATEs
(update_handler registers it), on the final changeset, so a retry against a
newer version is checked again.

Only RRsets and names the change adds to are checked: deleting from a zone
that is already over a cap (loaded from a zone file) is always possible.
"""

from __future__ import annotations

from ddns_server.errors import Refused
from ddns_server.model import UpdateLimits
from ddns_server.zonedata import Changeset, ZoneData, wire_to_name

_RR_OVERHEAD = 12  # owner pointer (2) + type, class, TTL, rdlength (10)

DEFAULT_LIMITS = UpdateLimits()


def check_limits(zone: ZoneData, changes: Changeset, limits: UpdateLimits = DEFAULT_LIMITS) -> None:
    """Raise Refused when `changes` would take `zone` over a cap.

    Linear in the size of the change (the zone's RRsets keep their count and
    wire size at hand).
    """
    if not changes.added:
        return
    # (owner, type) -> [records, wire octets] after the change
    sizes: dict[tuple[bytes, int], list[int]] = {}
    nodes = zone.nodes
    max_rdata = limits.max_rdata_size

    def entry(low: bytes, rdtype: int) -> list[int]:
        node = nodes.get(low)
        rrset = node.get(rdtype) if node else None
        return [rrset[0], len(rrset[1])] if rrset else [0, 0]

    for owner, rdtype, _ttl, rdata in changes.removed:
        key = (owner.lower(), rdtype)
        size = sizes.get(key)
        if size is None:
            size = sizes[key] = entry(*key)
        size[0] -= 1
        size[1] -= _RR_OVERHEAD + len(rdata)
    # the RRsets the change adds to (a subset of `sizes`); one pass, no call
    # per record: a 64 KB UPDATE adds thousands (issue 14, item 9)
    grown: dict[tuple[bytes, int], list[int]] = {}
    for owner, rdtype, _ttl, rdata in changes.added:
        key = (owner.lower(), rdtype)
        size = grown.get(key)
        if size is None:
            size = sizes.get(key)
            if size is None:
                size = sizes[key] = entry(*key)
            grown[key] = size
        octets = len(rdata)
        if max_rdata and octets > max_rdata:
            raise Refused(
                f"{_text(owner)}: a record of {octets} octets (max_rdata_size is {max_rdata})"
            )
        size[0] += 1
        size[1] += _RR_OVERHEAD + octets
    per_name: dict[bytes, int] = {}  # name -> how many of its RRsets grow
    for (low, rdtype), (count, octets) in grown.items():
        if limits.max_records_per_type and count > limits.max_records_per_type:
            raise Refused(
                f"{_text(low)}: {count} records of type {rdtype}"
                f" (max_records_per_type is {limits.max_records_per_type})"
            )
        if limits.max_rrset_size and octets > limits.max_rrset_size:
            raise Refused(
                f"{_text(low)}: an RRset of {octets} octets"
                f" (max_rrset_size is {limits.max_rrset_size})"
            )
        per_name[low] = per_name.get(low, 0) + 1
    cap = limits.max_types_per_name
    if not cap:
        return
    # Only a name whose types before plus those that grow exceed the cap can
    # be over it (most of a large UPDATE's names are new, with one type).
    suspects = {low for low, grows in per_name.items() if len(nodes.get(low) or ()) + grows > cap}
    if not suspects:
        return
    touched: dict[bytes, dict[int, int]] = {}  # name -> type -> records after
    for (low, rdtype), size in sizes.items():
        if low in suspects:
            touched.setdefault(low, {})[rdtype] = size[0]
    for low, counts in touched.items():
        types = {t for t in nodes.get(low) or () if t not in counts}
        types.update(t for t, count in counts.items() if count > 0)
        if len(types) > cap:
            raise Refused(f"{_text(low)}: {len(types)} types (max_types_per_name is {cap})")


def _text(owner: bytes) -> str:
    try:
        return str(wire_to_name(owner.lower()))
    except Exception:  # noqa: BLE001 - only for the message
        return repr(owner)


__all__ = ["UpdateLimits", "DEFAULT_LIMITS", "check_limits"]
