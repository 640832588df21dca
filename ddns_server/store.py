"""Zones in memory plus the journal: one writer, journal first, then publish.

Every change (RFC 2136, DynDNS2, import, rollback, undo; later the API and
the health checker) goes through `Store.write(origin, compute, who, source,
channel)`, as dnspython's `zone.writer()`: `compute` turns the current
content into a changeset; the writer reads other processes' versions, decides
the serial, runs the pre-commit checks, journals the version (SQLite commit),
publishes it in memory, and retries against the newer version when another
process journaled first. Listeners (NOTIFY, logs, metrics, later mirrors)
are called after that, each isolated: they cannot turn a durable change
into an error. Other processes (`journal rollback`, `zone import`) write
the journal through their own Store; a running server picks their versions
up in `Store.poll`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
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
from ddns_server.journal import Journal, NewVersion, StaleJournal, Version
from ddns_server.journal_health import JournalHealth
from ddns_server.plan import Plan, plan_content, wanted_soa
from ddns_server.zonedata import (
    SOA,
    Changeset,
    Record,
    ZoneData,
    name_to_wire,
    soa_rdata_with_serial,
    soa_serial,
)
from ddns_server.zonefile import read_zone_records

log = logging.getLogger("ddns_server.store")

Listener = Callable[[ZoneData, Version | None], None]
# compute(zone) -> the changes to make to the zone's current content (None: none).
Compute = Callable[[ZoneData], Changeset | None]
# check(zone, changeset, channel): raise (a DdnsError) to refuse a version.
PreCommitCheck = Callable[[ZoneData, Changeset, str], None]

# How often `write` computes a change again when another process journaled
# first; the last attempt holds the journal's write lock, so it cannot lose.
WRITE_ATTEMPTS = 4
# A failing after-commit hook is logged at most once per this many seconds.
HOOK_LOG_INTERVAL = 60.0


def _hook_name(listener: Listener) -> str:
    name = getattr(listener, "__qualname__", None) or type(listener).__qualname__
    return str(name)


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
        return read_zone_records(path, origin, shown)
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


def next_serial(current: int) -> int:
    """RFC 1982 increment, skipping 0 like BIND."""
    serial = (current + 1) & 0xFFFFFFFF
    return serial or 1


def soa_with_serial(record: Record, serial: int) -> Record:
    owner, rdtype, ttl, rdata = record
    return (owner, rdtype, ttl, soa_rdata_with_serial(rdata, serial))


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
        self._batch_locked = False
        self._lock_failed: Exception | None = None
        self._age_pruned: dict[bytes, float] = {}
        # Pre-commit checks: check(zone, changeset, channel) raises to refuse
        # (size and policy limits); the changeset includes the serial bump.
        self.checks: list[PreCommitCheck] = []
        # After-commit hook failures by hook name, and a callback (metrics).
        self.hook_errors: dict[str, int] = {}
        self.on_hook_error: Callable[[str], None] | None = None
        self._hook_logged: dict[str, tuple[float, int]] = {}
        self.health = JournalHealth(clock)  # what the journal's writes did (/healthz)
        self._keys: dict[bytes, str] = {}  # apex -> zone_key (Name.to_text per commit is dear)

    # -- opening --------------------------------------------------------------

    def open_zone(
        self,
        origin: dns.name.Name,
        seed: Iterable[Record] | None = None,
        limits: ZoneLimits | None = None,
    ) -> ZoneData:
        """Serve a zone: its latest journaled version, or seed it when new."""
        return self.open_zones([(origin, seed, limits)])[0]

    def open_zones(
        self,
        zones: Sequence[tuple[dns.name.Name, Iterable[Record] | None, ZoneLimits | None]],
    ) -> list[ZoneData]:
        """Serve zones: each one's latest journaled version, or seeded when new.

        The seeds are journaled in one transaction: a kill during a first
        start leaves all of them or none, never a journal with some zones
        only, which the next start would refuse (journal_file.check_history).
        """
        opened: list[tuple[bytes, ZoneData, ZoneLimits | None, int]] = []
        seeds: list[NewVersion] = []
        for origin, seed, limits in zones:
            key = zone_key(origin)
            apex = name_to_wire(origin).lower()
            if not self.journal.has_zone(key):
                if seed is None:
                    raise UserError(
                        f"zone {origin}: not in the journal and no file to seed it from"
                    )
                records = list(seed)
                zone = ZoneData.from_records(origin, records)
                seeds.append(
                    NewVersion(
                        key,
                        zone.serial,
                        Changeset(added=records),
                        "file",
                        "local",
                        "seed",
                        self.clock(),
                    )
                )
                last = -1  # the id the seed gets
            else:
                with self.journal.reading():  # content and its version id from one snapshot
                    zone = ZoneData.from_records(origin, self.journal.load(key))
                    last = self.journal.latest_id(key)
            opened.append((apex, zone, limits, last))
        ids = iter(self.journal.append(seeds) if seeds else ())
        for apex, zone, limits, last in opened:
            self.zones[apex] = zone
            self.limits[apex] = limits or ZoneLimits()
            self._last_id[apex] = next(ids) if last == -1 else last
        return [zone for _, zone, _, _ in opened]

    def key_of(self, zone: ZoneData) -> str:
        """zone_key(zone.origin), computed once per zone (listeners call it per version)."""
        key = self._keys.get(zone.apex)
        if key is None:
            key = self._keys[zone.apex] = zone_key(zone.origin)
        return key

    def zone_for(self, origin: dns.name.Name) -> ZoneData | None:
        return self.zones.get(name_to_wire(origin).lower())

    # -- the one writer -------------------------------------------------------

    def write(
        self,
        origin: dns.name.Name,
        compute: Compute,
        who: str,
        source: str,
        channel: str,
    ) -> Version | None:
        """Change a zone: the one way every channel writes (RFC 2136, DynDNS2,
        import, rollback, undo, and later the API and the health checker).

        `compute(zone)` returns the changes to make to the zone's current
        content (or None/an empty Changeset: nothing to do, no version). It
        may raise (a DnsError, a PlanRefused...) to refuse; nothing changes
        then. It must not change `zone`, and may be called more than once.
        The writer owns everything after it, in this order: versions other
        processes journaled are read first (poll), the SOA serial is decided
        (`prepare`), the pre-commit `checks` may refuse, the version is
        journaled (durable), the zone published, old versions pruned, and the
        `listeners` called (isolated: see `_publish`). When another process
        journaled first (StaleJournal), `compute` runs again on the newer
        content, at most WRITE_ATTEMPTS times; the last attempt holds the
        journal's write lock, so under any stream of other writers it
        completes, or raises WriteConflict (a UserError) if it still cannot.

        Inside begin_batch()/end_batch() (UDP group commit) the version is
        only staged (its id is 0) and journaled by end_batch(); the batch
        holds the write lock from its first write, so it is never stale.
        """
        if self._batch is not None:
            return self._write_staged(origin, compute, who, source, channel)
        for _attempt in range(WRITE_ATTEMPTS - 1):
            self.poll()
            zone = self._zone(origin)
            changeset = compute(zone)
            if not changeset:
                return None
            try:
                return self.commit(zone, changeset, who, source, channel)
            except StaleJournal:
                continue  # another process wrote first: compute again on its version
        # The last attempt: a batch of one, under the write lock.
        self.begin_batch()
        try:
            staged = self._write_staged(origin, compute, who, source, channel)
        except BaseException:
            self.end_batch()  # nothing staged: releases the lock
            raise
        versions = self.end_batch()
        return versions[0] if staged is not None else None

    def _write_staged(
        self, origin: dns.name.Name, compute: Compute, who: str, source: str, channel: str
    ) -> Version | None:
        if not self._batch_locked:
            if self._lock_failed is not None:
                # Once per batch: a pass of many UPDATEs must not wait the
                # busy timeout for each of them.
                raise self._lock_failed
            # The batch's first write: hold the write lock until end_batch(),
            # and take other processes' versions now (nobody can add one after).
            try:
                self.journal.begin_locked()
            except Exception as e:
                self._lock_failed = e
                raise
            self._batch_locked = True
            self._poll_versions()
        zone = self._zone(origin)
        changeset = compute(zone)
        if not changeset:
            return None
        return self.commit(zone, changeset, who, source, channel)

    def replace_content(
        self,
        origin: dns.name.Name,
        records: Iterable[Record],
        who: str,
        source: str,
        channel: str,
        max_share: float | None = None,
    ) -> tuple[Plan, Version | None]:
        """Make the zone's content equal `records` as one new version (import,
        rollback, undo, a mirror's resync), through `write`.

        The Plan is made against the newest content on every attempt; with
        `max_share` its safety rail applies (PlanRefused, nothing written).
        The new serial is the content's own when newer, else current + 1.
        An empty plan writes no version: (plan, None).
        """
        wanted = list(records)
        soa = wanted_soa(wanted)
        plans: list[Plan] = []

        def compute(zone: ZoneData) -> Changeset | None:
            plan = plan_content(origin, zone.record_set(), wanted)
            plans.append(plan)
            if plan.empty:
                return None
            if max_share is not None:
                plan.check(max_share)
            return plan.changeset(soa)

        version = self.write(origin, compute, who, source, channel)
        return plans[-1], version

    def _zone(self, origin: dns.name.Name) -> ZoneData:
        zone = self.zone_for(origin)
        if zone is None:
            raise UserError(f"zone {origin.to_text()}: not served")
        return zone

    def prepare(self, zone: ZoneData, changeset: Changeset) -> tuple[Changeset, int]:
        """The serial decision, in one place: add the SOA change to a changeset.

        A changeset that adds an SOA with a newer serial (an RFC 2136 UPDATE
        may raise it, §3.4.2.2; imported content brings its own) keeps that
        serial; otherwise the serial is current + 1 (RFC 1982, skipping 0 as
        BIND does), with the added SOA's other fields when there is one.
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
            if not dns.serial.Serial(serial) > dns.serial.Serial(zone.serial):
                serial = next_serial(zone.serial)
            soa: Record = (apex_soa[0], SOA, new_soa[2], soa_rdata_with_serial(new_soa[3], serial))
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
        """One step of `write`: journal a changeset computed against `zone`
        as this store holds it, then publish it. No poll, no retry: if
        another process journaled a version meanwhile, StaleJournal and
        nothing changes. Channels call `write`; this is for it (and tests).

        The in-memory zone changes here too, but no query sees it before the
        journal commit: that happens in this same synchronous call, or,
        inside begin_batch()/end_batch(), before any response is sent (the
        version is only staged then, and its id is 0 until end_batch()).
        """
        full, serial = self.prepare(zone, changeset)
        for check in self.checks:
            check(zone, full, channel)  # may refuse (raise): nothing is changed yet
        new = NewVersion(self.key_of(zone), serial, full, who, source, channel, self.clock())
        entry = _Staged(zone, new)
        zone.apply(full)  # later updates of a batch are prepared against it
        if self._batch is not None:
            self._batch.append(entry)
            return entry.version(0)
        versions = self._journal([entry])
        self._prune([entry])
        self._publish([entry], versions)
        return versions[0]

    def begin_batch(self) -> None:
        """Stage writes until end_batch() (group commit: one transaction)."""
        self._batch = []
        self._batch_locked = False
        self._lock_failed = None

    def in_batch(self) -> bool:
        """True while versions are staged but not yet journaled."""
        return bool(self._batch)

    def end_batch(self, committed: Callable[[], None] | None = None) -> list[Version]:
        """Journal every staged version in one transaction, then publish.

        On failure nothing was journaled: the zones are put back as the
        journal has them and the exception propagates (the caller must not
        confirm any staged change). Listeners run after the commit, isolated.
        `committed` is called right after the commit, before pruning and the
        listeners: the edge sends its held replies there, so the audit line,
        NOTIFY and metrics are not part of a client's wait (as BIND answers
        an UPDATE before it sends the NOTIFY).
        """
        staged, self._batch = self._batch or [], None
        locked, self._batch_locked = self._batch_locked, False
        try:
            versions = self._journal(staged, locked) if staged else []
            if locked:
                try:
                    self.journal.commit_locked()
                except Exception as e:
                    self.health.record_failure(f"{type(e).__name__}: {e}")
                    raise
                if staged:
                    self.health.record_success()
        except BaseException:
            if locked:
                self.journal.rollback_locked()
            for zone in {id(entry.zone): entry.zone for entry in staged}.values():
                self._reload(zone)
            raise
        if committed is not None:
            try:
                committed()
            except Exception:  # noqa: BLE001 - the versions are journaled: publish them anyway
                self._hook_failed("committed")
        self._prune(staged)
        self._publish(staged, versions)
        return versions

    def _journal(self, staged: list[_Staged], locked: bool = False) -> list[Version]:
        """Append the staged versions (one transaction); nothing is published yet.

        `locked`: a batch that took the write lock before its first change
        was computed, and read other processes' versions then (poll): none
        can be newer, so the journal is not asked for its latest version.
        """
        zones = {id(entry.zone): entry.zone for entry in staged}.values()
        expect = None
        if not locked:
            expect = {self.key_of(z): self._last_id.get(z.apex, 0) for z in zones}
        try:
            ids = self.journal.append([entry.new for entry in staged], expect)
        except Exception as e:
            if not isinstance(e, StaleJournal):  # a race, not a failing journal
                self.health.record_failure(f"{type(e).__name__}: {e}")
            # Nothing was committed: put the zones back as the journal has them.
            if not self.journal.conn.in_transaction:
                for zone in zones:
                    self._reload(zone)
            raise
        if not self.journal.conn.in_transaction:  # committed (else end_batch commits)
            self.health.record_success()
        versions = []
        for entry, version_id in zip(staged, ids, strict=True):
            versions.append(entry.version(version_id))
            self._last_id[entry.zone.apex] = version_id
        return versions

    def _prune(self, staged: list[_Staged]) -> None:
        """Prune after a commit; a failure here never turns a durable commit into an error."""
        if self.journal.conn.in_transaction:
            return  # inside write()'s lock: the next commit prunes
        for zone in {id(entry.zone): entry.zone for entry in staged}.values():
            try:
                self._maybe_prune(zone)
            except Exception:  # noqa: BLE001 - the version is journaled; pruning can wait
                self._hook_failed("prune")

    def _publish(self, staged: list[_Staged], versions: list[Version]) -> None:
        for entry, version in zip(staged, versions, strict=True):
            self._notify(entry.zone, version)

    # -- hooks after the commit ------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(zone, version)` after every new version is durable and
        published (ours, or another process's found by poll; version None
        when the zone was reloaded). Listeners cannot change the result."""
        self.listeners.append(listener)

    def _notify(self, zone: ZoneData, version: Version | None) -> None:
        """Call every listener, each isolated: an exception in one is logged and
        counted, and changes neither the writer's result nor the other calls."""
        for listener in self.listeners:
            try:
                listener(zone, version)
            except Exception:  # noqa: BLE001 - a listener never fails a durable commit
                self._hook_failed(_hook_name(listener))

    def _hook_failed(self, name: str) -> None:
        """Count a failed hook; log it with its traceback the first time, then at
        most one line per HOOK_LOG_INTERVAL (a failing mirror must not flood the log)."""
        self.hook_errors[name] = self.hook_errors.get(name, 0) + 1
        if self.on_hook_error is not None:
            try:
                self.on_hook_error(name)
            except Exception:  # noqa: BLE001, S110 - metrics must not fail a commit either
                pass
        now = time.monotonic()
        last = self._hook_logged.get(name)
        if last is None:
            log.exception("after-commit hook %s failed (the change is journaled)", name)
        elif now - last[0] >= HOOK_LOG_INTERVAL:
            total = self.hook_errors[name]
            log.error(
                "after-commit hook %s failed again (%d failures since the last report): %s",
                name,
                total - last[1],
                sys.exc_info()[1],
            )
        else:
            return
        self._hook_logged[name] = (now, self.hook_errors[name])

    def _reload(self, zone: ZoneData) -> None:
        with self.journal.reading():
            records = list(self.journal.load(zone_key(zone.origin)))
            last = self.journal.latest_id(zone_key(zone.origin))
        fresh = ZoneData.from_records(zone.origin, records)
        zone.__dict__.update(fresh.__dict__)
        self._last_id[zone.apex] = last

    def _maybe_prune(self, zone: ZoneData) -> None:
        """Keep the journal within the zone's limits, without a query per commit.

        Versions beyond `max_versions` are dropped once the excess reaches a
        tenth of the limit (so a 1000-version journal is pruned every 100
        commits, not on each one); the age limit is applied once a minute.
        """
        limits = self.limits.get(zone.apex, ZoneLimits())
        key = self.key_of(zone)
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
        return self._poll_versions()

    def _poll_versions(self) -> list[ZoneData]:
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
                self._notify(zone, version)
            if pending:
                changed.append(zone)
        return changed


def _soa_serial(record: Record) -> int:
    return soa_serial(record[3])
