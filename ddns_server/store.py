"""Zones in memory plus the journal: commit = journal first, then publish.

Every change (RFC 2136, DynDNS2, import, rollback) ends in `Store.commit`:
the SOA serial is bumped once, the version is written to SQLite and committed,
and only then is the in-memory zone changed, in one synchronous step. Other
processes (`journal rollback`, `zone import`) write the journal directly; a
running server picks their versions up in `Store.poll`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.serial
import dns.zone

from ddns_server.errors import ConfigError, UserError
from ddns_server.journal import Journal, NewVersion, Version
from ddns_server.zonedata import (
    SOA,
    Changeset,
    Record,
    ZoneData,
    name_to_wire,
    soa_rdata_with_serial,
    soa_serial,
)
from ddns_server.zonefile import read_zone_file

Listener = Callable[[ZoneData, Version | None], None]


@dataclass
class ZoneLimits:
    max_versions: int = 1000
    max_age_days: int = 0


def zone_key(origin: dns.name.Name) -> str:
    """The journal's name for a zone: lower-case absolute text."""
    return origin.to_text().lower()


def records_from_file(path: Path, origin: dns.name.Name) -> list[Record]:
    """Records of an RFC 1035 master file (dnspython parses it).

    Any problem with the file is a ConfigError of one line naming it.
    """
    shown = str(path)
    try:
        zone = read_zone_file(path, origin, shown)
    except dns.exception.SyntaxError as e:
        raise ConfigError([str(e)]) from None  # the text starts "FILE:LINE: "
    except dns.zone.NoSOA:
        raise ConfigError([f"{shown}: no SOA record at the zone apex {origin}"]) from None
    except dns.zone.NoNS:
        raise ConfigError([f"{shown}: no NS records at the zone apex {origin}"]) from None
    except dns.exception.DNSException as e:
        raise ConfigError([f"{shown}: {e}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{shown}: not UTF-8 text"]) from None
    except OSError as e:
        raise ConfigError([f"{shown}: cannot read: {e.strerror or e}"]) from None
    return records_from_zone(zone)


def records_from_text(text: str, origin: dns.name.Name, filename: str) -> list[Record]:
    zone = dns.zone.from_text(text, origin, relativize=False, check_origin=True, filename=filename)
    return records_from_zone(zone)


def records_from_zone(zone: dns.zone.Zone) -> list[Record]:
    out: list[Record] = []
    for name, rdataset in zone.iterate_rdatasets():
        owner = name_to_wire(name)
        for rdata in rdataset:
            out.append((owner, rdataset.rdtype, rdataset.ttl, rdata.to_wire()))
    return out


def next_serial(current: int) -> int:
    """RFC 1982 increment, skipping 0 like BIND."""
    serial = (current + 1) & 0xFFFFFFFF
    return serial or 1


def soa_with_serial(record: Record, serial: int) -> Record:
    owner, rdtype, ttl, rdata = record
    return (owner, rdtype, ttl, soa_rdata_with_serial(rdata, serial))


def diff(old: set[Record], new: set[Record]) -> Changeset:
    """The changeset that turns `old` into `new` (owners compared case-insensitively)."""
    old_keys = {(o.lower(), t, ttl, r): (o, t, ttl, r) for o, t, ttl, r in old}
    new_keys = {(o.lower(), t, ttl, r): (o, t, ttl, r) for o, t, ttl, r in new}
    return Changeset(
        removed=[rr for key, rr in old_keys.items() if key not in new_keys],
        added=[rr for key, rr in new_keys.items() if key not in old_keys],
    )


@dataclass
class _Staged:
    """A version prepared and applied in memory, not yet journaled."""

    zone: ZoneData
    new: NewVersion

    def version(self, version_id: int) -> Version:
        new = self.new
        return Version(
            version_id,
            new.serial,
            new.time,
            new.who,
            new.source,
            new.channel,
            len(new.changeset.removed),
            len(new.changeset.added),
        )


class Store:
    """The served zones and their journal."""

    def __init__(self, journal: Journal, clock: Callable[[], float] = time.time) -> None:
        self.journal = journal
        self.clock = clock
        # apex (lower-cased wire) -> ZoneData; shared with the QueryEngine.
        self.zones: dict[bytes, ZoneData] = {}
        self.limits: dict[bytes, ZoneLimits] = {}
        self._last_id: dict[bytes, int] = {}
        self._data_version = journal.data_version()
        self.listeners: list[Listener] = []
        self._version_count: dict[bytes, int] = {}
        self._batch: list[_Staged] | None = None
        self._age_pruned: dict[bytes, float] = {}

    # -- opening --------------------------------------------------------------

    def open_zone(
        self,
        origin: dns.name.Name,
        seed: Iterable[Record] | None = None,
        limits: ZoneLimits | None = None,
    ) -> ZoneData:
        """Serve a zone: its latest journaled version, or seed it when new."""
        key = zone_key(origin)
        apex = name_to_wire(origin).lower()
        if not self.journal.has_zone(key):
            if seed is None:
                raise UserError(f"zone {origin}: not in the journal and no file to seed it from")
            records = list(seed)
            zone = ZoneData.from_records(origin, records)
            self.journal.append(
                [
                    NewVersion(
                        key,
                        zone.serial,
                        Changeset(added=records),
                        "file",
                        "local",
                        "seed",
                        self.clock(),
                    )
                ]
            )
        else:
            zone = ZoneData.from_records(origin, self.journal.load(key))
        self.zones[apex] = zone
        self.limits[apex] = limits or ZoneLimits()
        self._last_id[apex] = self.journal.latest_id(key)
        return zone

    def zone_for(self, origin: dns.name.Name) -> ZoneData | None:
        return self.zones.get(name_to_wire(origin).lower())

    # -- committing -----------------------------------------------------------

    def prepare(self, zone: ZoneData, changeset: Changeset) -> tuple[Changeset, int]:
        """Add the SOA serial bump to a changeset (once per accepted message).

        An update that itself adds a newer SOA keeps that serial (RFC 2136
        §3.4.2.2 lets an UPDATE raise the serial); otherwise serial + 1.
        Every owner takes one spelling, as ZoneData keeps it: the stored case
        of an existing name, else the first spelling added. The journal's
        records table matches owners exactly, so it must see the same bytes.
        """
        apex_soa = zone.soa_record()
        new_soa = next((rr for rr in changeset.added if rr[1] == SOA), None)
        nodes = zone.nodes
        spelling: dict[bytes, bytes] = {}
        for o, _t, _ttl, _r in changeset.added:
            low = o.lower()
            spelling.setdefault(low, zone.owner_wire(low) if low in nodes else o)
        removed = [
            (spelling.get(o.lower()) or zone.owner_wire(o.lower()), t, ttl, r)
            for o, t, ttl, r in changeset.removed
            if t != SOA
        ]
        added = [(spelling[o.lower()], t, ttl, r) for o, t, ttl, r in changeset.added if t != SOA]
        if new_soa is not None:
            serial = _soa_serial(new_soa)
            soa: Record = (apex_soa[0], SOA, new_soa[2], new_soa[3])
        else:
            serial = next_serial(zone.serial)
            soa = soa_with_serial(apex_soa, serial)
        return Changeset(removed=removed + [apex_soa], added=added + [soa]), serial

    def commit(
        self,
        zone: ZoneData,
        changeset: Changeset,
        who: str,
        source: str,
        channel: str,
    ) -> Version:
        """One new version: journal it, then publish it. The changeset must
        change something.

        The in-memory zone changes here too, but no query sees it before the
        journal commit: that happens in this same synchronous call, or,
        inside begin_batch()/end_batch(), before any response is sent (the
        version is only staged then, and its id is 0 until end_batch()).
        """
        full, serial = self.prepare(zone, changeset)
        new = NewVersion(zone_key(zone.origin), serial, full, who, source, channel, self.clock())
        entry = _Staged(zone, new)
        zone.apply(full)  # later updates of a batch are prepared against it
        if self._batch is not None:
            self._batch.append(entry)
            return entry.version(0)
        return self._journal([entry])[0]

    def begin_batch(self) -> None:
        """Stage commits until end_batch() (group commit: one transaction)."""
        self._batch = []

    def in_batch(self) -> bool:
        """True while versions are staged but not yet journaled."""
        return bool(self._batch)

    def end_batch(self) -> list[Version]:
        """Journal every staged version in one transaction, then notify.

        On failure nothing was journaled: the zones are put back as the
        journal has them and the exception propagates (the caller must not
        confirm any staged change).
        """
        staged, self._batch = self._batch or [], None
        if not staged:
            return []
        return self._journal(staged)

    def _journal(self, staged: list[_Staged]) -> list[Version]:
        zones = {id(entry.zone): entry.zone for entry in staged}.values()
        expect = {zone_key(z.origin): self._last_id.get(z.apex, 0) for z in zones}
        try:
            ids = self.journal.append([entry.new for entry in staged], expect)
        except Exception:
            # Nothing was committed: put the zones back as the journal has them.
            for zone in zones:
                self._reload(zone)
            raise
        versions = []
        for entry, version_id in zip(staged, ids, strict=True):
            versions.append(entry.version(version_id))
            self._last_id[entry.zone.apex] = version_id
        for zone in zones:
            self._maybe_prune(zone)
        for entry, version in zip(staged, versions, strict=True):
            for listener in self.listeners:
                listener(entry.zone, version)
        return versions

    def _reload(self, zone: ZoneData) -> None:
        fresh = ZoneData.from_records(zone.origin, self.journal.load(zone_key(zone.origin)))
        zone.__dict__.update(fresh.__dict__)

    def replace_content(
        self, zone: ZoneData, records: set[Record], who: str, source: str, channel: str
    ) -> Version | None:
        """Make the zone's content equal `records` as one new version (import, rollback).

        The new serial is the content's own when that is newer, else current + 1.
        None when nothing would change: the same records, and an SOA that
        differs at most by an older serial (importing the same file twice).
        """
        current = zone.record_set()
        soa_rr = next((rr for rr in records if rr[1] == SOA), None)
        if soa_rr is None:
            raise UserError(f"zone {zone.origin}: the new content has no SOA")
        wanted = {rr for rr in records if rr[1] != SOA}
        changes = diff({rr for rr in current if rr[1] != SOA}, wanted)
        serial = _soa_serial(soa_rr)
        newer = dns.serial.Serial(serial) > dns.serial.Serial(zone.serial)
        same_soa = soa_with_serial(soa_rr, zone.serial)[2:] == zone.soa_record()[2:]
        if not changes and same_soa and not newer:
            return None
        if not newer:
            serial = next_serial(zone.serial)
        changes.added.append(soa_with_serial(soa_rr, serial))
        return self.commit(zone, changes, who, source, channel)

    def _maybe_prune(self, zone: ZoneData) -> None:
        """Keep the journal within the zone's limits, without a query per commit.

        Versions beyond `max_versions` are dropped once the excess reaches a
        tenth of the limit (so a 1000-version journal is pruned every 100
        commits, not on each one); the age limit is applied once a minute.
        """
        limits = self.limits.get(zone.apex, ZoneLimits())
        key = zone_key(zone.origin)
        now = self.clock()
        count = self._version_count.get(zone.apex)
        if count is None:
            count = self.journal.count_versions(key)
        else:
            count += 1
        age_due = limits.max_age_days > 0 and now - self._age_pruned.get(zone.apex, 0.0) >= 60
        if count > limits.max_versions + limits.max_versions // 10 or age_due:
            self.journal.prune(key, limits.max_versions, limits.max_age_days * 86400.0, now)
            count = self.journal.count_versions(key)
            if age_due:
                self._age_pruned[zone.apex] = now
        self._version_count[zone.apex] = count

    # -- other writers --------------------------------------------------------

    def poll(self) -> list[ZoneData]:
        """Apply versions another process journaled (rollback, import).

        Not while a batch is staged: its journal write will find the other
        process's version and fail as a whole (StaleJournal) instead.
        """
        if self._batch:
            return []
        data_version = self.journal.data_version()
        if data_version == self._data_version:
            return []
        self._data_version = data_version
        changed = []
        for apex, zone in self.zones.items():
            last = self._last_id.get(apex, 0)
            pending = self.journal.changesets_after(zone_key(zone.origin), last)
            for version, changeset in pending:
                zone.apply(changeset)
                self._last_id[apex] = version.id
                for listener in self.listeners:
                    listener(zone, version)
            if pending:
                changed.append(zone)
        return changed


def _soa_serial(record: Record) -> int:
    return soa_serial(record[3])
