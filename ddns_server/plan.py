"""Plans for whole-content changes: what replacing a zone's content would do.

`zone import`, `journal rollback` and `journal undo` (and the mirrors' resync)
compute a Plan from the current content and the wanted one before they
change anything, as octoDNS plans before it applies: the records to remove
and to add, their counts, and whether the apex SOA or NS change. The plan is
printed by `--dry-run`, and it is the safety rail: a plan that deletes more
than a share of the zone, or touches the apex NS, needs `--force`.

Pure: records in, a Plan out (no journal, no config, no I/O).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.name
import dns.rdatatype
import dns.serial

from ddns_server.errors import UserError
from ddns_server.zonedata import Changeset, Record, name_to_wire, soa_serial

SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS

# The share of a zone's records one plan may delete without --force.
DEFAULT_MAX_CHANGE_SHARE = 0.5


class PlanRefused(UserError):
    """The plan crosses a safety threshold; `--force` applies it anyway."""


def _key(record: Record) -> tuple[bytes, int, int, bytes]:
    owner, rdtype, ttl, rdata = record
    return (owner.lower(), rdtype, ttl, rdata)


@dataclass(frozen=True)
class Plan:
    """Turning `current` content into `wanted` (SOA apart: it is reported, not listed).

    `removed`/`added` are the non-SOA records that go and come (a TTL change
    is one of each); `deleted` counts those removed whose owner, type and
    data do not come back (a TTL change is not a deletion).
    """

    origin: dns.name.Name
    removed: tuple[Record, ...]
    added: tuple[Record, ...]
    records: int  # non-SOA records in the current content
    serial: int  # the current serial
    content_serial: int  # the wanted content's own serial
    apex_soa_changed: bool  # the SOA differs in more than its serial
    apex_ns_changed: bool

    @property
    def deleted(self) -> int:
        kept = {(o.lower(), t, r) for o, t, _ttl, r in self.added}
        return sum(1 for o, t, _ttl, r in self.removed if (o.lower(), t, r) not in kept)

    @property
    def delete_share(self) -> float:
        return self.deleted / self.records if self.records else 0.0

    @property
    def serial_newer(self) -> bool:
        """The content brings a newer serial of its own (kept as the new serial)."""
        return bool(dns.serial.Serial(self.content_serial) > dns.serial.Serial(self.serial))

    @property
    def empty(self) -> bool:
        """Nothing would change: no record, the same SOA fields, no newer serial."""
        return not (self.removed or self.added or self.apex_soa_changed or self.serial_newer)

    def refusal(self, max_share: float = DEFAULT_MAX_CHANGE_SHARE) -> str | None:
        """Why this plan needs --force (None: safe to apply)."""
        zone = self.origin.to_text()
        if self.apex_ns_changed:
            return f"zone {zone}: the plan changes the apex NS records; use --force to apply it"
        if self.delete_share > max_share:
            return (
                f"zone {zone}: the plan deletes {self.deleted} of {self.records} records"
                f" ({self.delete_share:.0%}, more than max_change_share {max_share:.0%});"
                " use --force to apply it"
            )
        return None

    def check(self, max_share: float = DEFAULT_MAX_CHANGE_SHARE, force: bool = False) -> None:
        """Raise PlanRefused unless the plan is safe or forced."""
        reason = None if force else self.refusal(max_share)
        if reason:
            raise PlanRefused(reason)

    def changeset(self, soa: Record) -> Changeset:
        """The changes for the writer: records, and the wanted SOA (the store
        keeps its serial when newer, else bumps the current one)."""
        return Changeset(removed=list(self.removed), added=[*self.added, soa])

    def to_dict(self, record_text: object = None) -> dict[str, object]:
        """The JSON form (`--dry-run --json`); record lists when `record_text` is given."""
        out: dict[str, object] = {
            "zone": self.origin.to_text(),
            "serial": self.serial,
            "content_serial": self.content_serial,
            "removed": len(self.removed),
            "added": len(self.added),
            "deleted": self.deleted,
            "records": self.records,
            "delete_share": round(self.delete_share, 4),
            "apex_soa_changed": self.apex_soa_changed,
            "apex_ns_changed": self.apex_ns_changed,
            "empty": self.empty,
        }
        if callable(record_text):
            out["removed_records"] = [record_text(rr) for rr in self.removed]
            out["added_records"] = [record_text(rr) for rr in self.added]
        return out


def plan_content(
    origin: dns.name.Name, current: Iterable[Record], wanted: Iterable[Record]
) -> Plan:
    """The plan that makes `current` equal `wanted` (owners compared case-insensitively)."""
    apex = name_to_wire(origin).lower()
    cur_soa: Record | None = None
    new_soa: Record | None = None
    cur: dict[tuple[bytes, int, int, bytes], Record] = {}
    new: dict[tuple[bytes, int, int, bytes], Record] = {}
    for rr in current:
        if rr[1] == SOA:
            cur_soa = rr
        else:
            cur[_key(rr)] = rr
    for rr in wanted:
        if rr[1] == SOA:
            if rr[0].lower() != apex:
                raise UserError(f"zone {origin.to_text()}: an SOA record below the apex")
            new_soa = rr
        else:
            new[_key(rr)] = rr
    if new_soa is None:
        raise UserError(f"zone {origin.to_text()}: the new content has no SOA")
    if cur_soa is None:
        raise UserError(f"zone {origin.to_text()}: the current content has no SOA")
    removed = tuple(rr for k, rr in cur.items() if k not in new)
    added = tuple(rr for k, rr in new.items() if k not in cur)
    ns_changed = any(rr[1] == NS and rr[0].lower() == apex for rr in (*removed, *added))
    return Plan(
        origin=origin,
        removed=removed,
        added=added,
        records=len(cur),
        serial=soa_serial(cur_soa[3]),
        content_serial=soa_serial(new_soa[3]),
        apex_soa_changed=_soa_fields(cur_soa) != _soa_fields(new_soa),
        apex_ns_changed=ns_changed,
    )


def wanted_soa(wanted: Iterable[Record]) -> Record:
    """The SOA record of a content (plan_content has checked there is one)."""
    soa = next((rr for rr in wanted if rr[1] == SOA), None)
    if soa is None:
        raise UserError("the new content has no SOA")
    return soa


def _soa_fields(record: Record) -> tuple[int, bytes]:
    """An SOA's TTL and rdata without the serial (MNAME, RNAME and the four timers)."""
    rdata = record[3]
    # The serial is the 4 octets before the last 16 (refresh, retry, expire, minimum).
    return (record[2], rdata[:-20] + rdata[-16:])
