"""Failover RRsets: target states with hysteresis -> the RRset to serve -> versions.

Pure (no Twisted): edge/probes.py runs the probes on the reactor and hands
each result to `HealthChecker.record`; the checker decides the targets'
states (rise/fall), what each failover RRset should hold, and commits it
through the store's one writer (channel `health`, who `failover:NAME TYPE`,
the reason as the version's source, so `journal log` shows why it switched).
No version is written while the wanted RRset equals the zone's.

Targets are literal addresses and/or names of the zone: the current A/AAAA
records of those names are the candidates, re-read after every version (a
store listener), so routers that keep `wan1`/`wan2` current through
/nic/update steer the RRset. A new candidate is probed at once; nothing is
written for an RRset while one of its candidates has no probe result yet
(at start-up the first result decides a target's state, as HAProxy does; after
that it takes `rise` successes or `fall` failures in a row).

The checker owns its RRsets: `check_owned` is a store pre-commit check that
refuses any other channel's change to them (RFC 2136: REFUSED); DynDNS2 asks
`owns` first and answers `nohost`. Imports and rollbacks may change them; the
checker then writes its RRset again.
"""

from __future__ import annotations

import ipaddress
import logging
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rdatatype
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ddns_server import model
from ddns_server.errors import Refused
from ddns_server.health_report import address_text, present, rrset_status, type_text
from ddns_server.journal import Version
from ddns_server.store import Store
from ddns_server.zonedata import CNAME, Changeset, Record, RRsetWire, ZoneData, name_to_wire

log = logging.getLogger("ddns_server.health")

CHANNEL = "health"
# Channels that may change an owned RRset: the checker, and whole-content
# replacements an operator asked for (the checker writes its RRset again after).
_EXEMPT = frozenset({CHANNEL, "seed", "import", "rollback"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

RRsetKey = tuple[bytes, int]  # (owner, lower-cased wire; rdtype)


class OwnedByChecker(Refused):
    """The RRset belongs to the health checker (zones[].failover)."""


# ---------------------------------------------------------------------------
# the state machine of one target


@dataclass
class Target:
    """One candidate address of one failover RRset, and its probe history."""

    address: str
    source: str  # the configured target it came from: the address or a name
    rrset: FailoverSet | None = None
    up: bool | None = None  # None: no probe result yet
    successes: int = 0  # in a row
    failures: int = 0  # in a row
    since: float | None = None  # when `up` last changed
    last_time: float | None = None
    last_ok: bool | None = None
    last_latency: float | None = None
    last_error: str = ""
    active: bool = True  # False once it is no longer a candidate (the edge drops it)
    inflight: object | None = None  # the probe in flight (edge bookkeeping)
    due: float = 0.0  # when the next probe is due (edge bookkeeping)

    def observe(self, ok: bool, rise: int, fall: int, now: float) -> bool:
        """Take one probe result; True when the state changed (hysteresis:
        `rise` successes in a row to come up, `fall` failures to go down;
        the very first result decides at once)."""
        if ok:
            self.successes += 1
            self.failures = 0
        else:
            self.failures += 1
            self.successes = 0
        if self.up is None:
            new: bool | None = ok
        elif self.up:
            new = False if self.failures >= fall else True
        else:
            new = True if self.successes >= rise else False
        if new == self.up:
            return False
        self.up = new
        self.since = now
        return True

    def state(self) -> str:
        return "unknown" if self.up is None else ("up" if self.up else "down")


def select(candidates: list[Target], policy: str, on_all_down: str) -> tuple[list[Target], bool]:
    """The targets to serve, and whether every candidate is down (pure).

    `first`: the first healthy in the listed order; `all`: every healthy one.
    With none healthy: all candidates (fail open, as Route 53 does) or, with
    on_all_down `none`, nothing (the RRset is removed).
    """
    healthy = [t for t in candidates if t.up]
    if healthy:
        return (healthy[:1] if policy == "first" else healthy), False
    if not candidates:
        return [], False
    return (list(candidates) if on_all_down == "all" else []), True


# ---------------------------------------------------------------------------
# one failover RRset


class FailoverSet:
    """A configured failover RRset of one zone and its current candidates."""

    def __init__(self, zone: dns.name.Name, spec: model.Failover) -> None:
        self.zone = zone
        self.spec = spec
        self.owner = name_to_wire(spec.name)
        self.low = self.owner.lower()
        self.key: RRsetKey = (self.low, spec.rdtype)
        self.label = f"{spec.name.relativize(zone).to_text()} {type_text(spec.rdtype)}"
        self.who = f"failover:{self.label}"
        # candidates in order: (configured target text, address or None when a
        # name has no record of the type), and the Target of each address
        self.order: list[tuple[str, str | None]] = []
        self.targets: dict[str, Target] = {}
        self.dirty = True
        self.all_down = False
        self.served: list[str] = []
        self.events: list[str] = []  # reasons since the last decision
        self.events_written: list[str] = []  # ... and those of the last decision
        self.blocked = False  # a CNAME or a delegation is in the way (logged once)
        self.switches = 0
        # what the candidates were read from: (owner, rdtype) -> the zone's RRsetWire
        self._seen: dict[RRsetKey, RRsetWire | None] = {}

    def changed_in(self, zone: ZoneData) -> bool:
        """Did the zone's records this set depends on change (identity of the wire)?"""
        nodes = zone.nodes
        for (low, rdtype), seen in self._seen.items():
            node = nodes.get(low)
            if (node.get(rdtype) if node else None) is not seen:
                return True
        return False

    def candidates_in(self, zone: ZoneData) -> list[tuple[str, str | None]]:
        """(target text, address) in the listed order, from the zone's content."""
        out: list[tuple[str, str | None]] = []
        rdtype = self.spec.rdtype
        seen: dict[RRsetKey, RRsetWire | None] = {}
        for target in self.spec.targets:
            if isinstance(target, str):
                out.append((target, target))
                continue
            low = name_to_wire(target).lower()
            node = zone.nodes.get(low)
            seen[(low, rdtype)] = node.get(rdtype) if node else None
            text = target.relativize(self.zone).to_text()
            addresses = [address_text(rr[3]) for rr in zone.records_at(low, rdtype)]
            if not addresses:
                out.append((text, None))
            out.extend((text, a) for a in addresses)
        node = zone.nodes.get(self.low)
        seen[self.key] = node.get(self.spec.rdtype) if node else None
        self._seen = seen
        return out

    def candidates(self) -> list[Target]:
        """The Targets of the current candidates, first occurrence of an address only."""
        out: list[Target] = []
        taken: set[str] = set()
        for _text, address in self.order:
            if address is not None and address not in taken:
                taken.add(address)
                out.append(self.targets[address])
        return out


def _rdata(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


# ---------------------------------------------------------------------------
# the checker


@dataclass
class Hooks:
    """What the edge plugs in: probe scheduling and a soon-call of `evaluate`."""

    schedule: Callable[[Target, float], None] = lambda target, delay: None
    wake: Callable[[], None] = lambda: None
    on_switch: Callable[[FailoverSet], None] = lambda rrset: None


@dataclass
class HealthChecker:
    """Every failover RRset of the served zones; see the module docstring."""

    store: Store
    clock: Callable[[], float]
    hooks: Hooks = field(default_factory=Hooks)
    sets: dict[RRsetKey, FailoverSet] = field(default_factory=dict)
    changed: bool = True  # something the status shows changed since status() last ran

    # -- configuration ------------------------------------------------------------

    def configure(self, zones: Iterable[model.Zone], start: bool = False) -> None:
        """Take the config's failover RRsets (at start and on SIGHUP). Sets whose
        probe is unchanged keep their targets' states; others start afresh."""
        wanted: dict[RRsetKey, tuple[dns.name.Name, model.Failover]] = {}
        for zone in zones:
            for spec in zone.failover:
                wanted[(name_to_wire(spec.name).lower(), spec.rdtype)] = (zone.name, spec)
        for key in list(self.sets):
            if key not in wanted:
                self._drop(self.sets.pop(key))
        for key, (origin, spec) in wanted.items():
            old = self.sets.get(key)
            if old is not None and old.spec == spec:
                continue
            new = FailoverSet(origin, spec)
            if old is not None:
                if old.spec.check == spec.check and old.zone == origin:
                    new.targets = old.targets  # same probe: the states stand
                    new.order = old.order
                    for target in new.targets.values():
                        target.rrset = new
                    new.served, new.all_down = old.served, old.all_down
                    new.switches = old.switches
                    if old.spec.interval != spec.interval:
                        for target in new.targets.values():
                            self.hooks.schedule(target, 0.0)
                else:
                    self._drop(old)
                log.info("failover %s: configuration changed", new.label)
            self.sets[key] = new
            self._sync(new, start=start or old is None)
        self.changed = True
        self.hooks.wake()

    def _drop(self, rrset: FailoverSet) -> None:
        for target in rrset.targets.values():
            target.active = False
        rrset.targets = {}

    def _sync(self, rrset: FailoverSet, start: bool = False) -> None:
        """Read the candidates from the zone; probe new ones (spread over an
        interval at start, at once later), forget those that are gone."""
        zone = self.store.zone_for(rrset.zone)
        if zone is None:
            return
        order = rrset.candidates_in(zone)
        spec = rrset.spec
        present = {a for _t, a in order if a is not None}
        for gone in list(rrset.targets):
            if gone not in present:
                rrset.targets.pop(gone).active = False
                rrset.events.append(f"{gone} no longer a target")
        for text, address in order:
            if address is None or address in rrset.targets:
                continue
            target = Target(address, text, rrset)
            rrset.targets[address] = target
            if not start:
                rrset.events.append(f"{address} new target ({text})")
            # Spread the first probes of a start over the interval (no burst).
            delay = _spread(rrset, address) * spec.interval if start else 0.0
            self.hooks.schedule(target, delay)
        if order != rrset.order:
            rrset.order = order
            rrset.dirty = True
            self.changed = True

    # -- inputs ---------------------------------------------------------------------

    def record(
        self, target: Target, ok: bool, latency: float | None, error: str, now: float
    ) -> bool:
        """One probe result; True when the target's state changed."""
        target.last_time = now
        target.last_ok = ok
        target.last_latency = latency
        target.last_error = error
        rrset = target.rrset
        if not target.active or rrset is None:
            return False
        was = target.state()
        if not target.observe(ok, rrset.spec.rise, rrset.spec.fall, now):
            return False
        why = f"{target.address} {target.state()}"
        if not ok and error:
            why += f" ({error})"
        if was != "unknown":
            via = f" (target {target.source})" if target.source != target.address else ""
            log.info("failover %s: %s%s", rrset.label, why, via)
        rrset.events.append(why)
        rrset.dirty = True
        self.changed = True
        self.hooks.wake()
        return True

    def on_version(self, zone: ZoneData, version: Version | None) -> None:
        """Store listener: re-read the candidates of the zone's sets whose
        target names (or own RRset) changed; evaluate soon."""
        woke = False
        for rrset in self.sets.values():
            if rrset.zone != zone.origin:
                continue
            if version is None or rrset.changed_in(zone):
                self._sync(rrset)
                rrset.dirty = True
                woke = True
        if woke:
            self.hooks.wake()

    # -- decisions ------------------------------------------------------------------

    def evaluate(self) -> int:
        """Write the RRsets that must change: one version per zone for all of
        them (a line going down moves many RRsets at once); the versions written."""
        by_zone: dict[dns.name.Name, list[FailoverSet]] = {}
        for rrset in self.sets.values():
            if rrset.dirty:
                rrset.dirty = False
                by_zone.setdefault(rrset.zone, []).append(rrset)
        written = 0
        for origin, rrsets in by_zone.items():
            try:
                if self._write(origin, rrsets):
                    written += 1
            except Exception:
                for rrset in rrsets:
                    rrset.dirty = True  # e.g. the journal is locked: try again later
                log.exception("failover: writing zone %s failed", origin)
        return written

    def _decide(
        self, zone: ZoneData, rrset: FailoverSet
    ) -> tuple[list[Target], bool, Changeset] | None:
        """What `rrset` should serve in `zone` and the change to get there;
        None while a candidate has no result yet (or a CNAME is in the way)."""
        spec = rrset.spec
        self._sync(rrset)
        candidates = rrset.candidates()
        if any(t.up is None for t in candidates):
            return None  # wait for every candidate's first result
        serve, all_down = select(candidates, spec.policy, spec.on_all_down)
        node = zone.nodes.get(rrset.low)
        if serve and node and (CNAME in node or zone.delegation(rrset.low) is not None):
            if not rrset.blocked:
                log.error("failover %s: a CNAME or a delegation is in the way", rrset.label)
            rrset.blocked = True
            return None
        rrset.blocked = False
        current = zone.records_at(rrset.low, spec.rdtype)
        wanted: list[Record] = [
            (rrset.owner, spec.rdtype, spec.ttl, _rdata(t.address)) for t in serve
        ]
        if sorted((r[2], r[3]) for r in current) == sorted((r[2], r[3]) for r in wanted):
            return serve, all_down, Changeset()
        return serve, all_down, Changeset(removed=current, added=wanted)

    def _write(self, origin: dns.name.Name, rrsets: list[FailoverSet]) -> bool:
        decided: dict[RRsetKey, tuple[list[Target], bool]] = {}
        changed: list[FailoverSet] = []

        def compute(zone: ZoneData) -> Changeset | None:
            decided.clear()
            changed.clear()
            changeset = Changeset()
            for rrset in rrsets:
                decision = self._decide(zone, rrset)
                if decision is None:
                    continue
                serve, all_down, part = decision
                decided[rrset.key] = (serve, all_down)
                if part:
                    changeset.removed.extend(part.removed)
                    changeset.added.extend(part.added)
                    changed.append(rrset)
            return changeset or None

        zone = self.store.zone_for(origin)
        if zone is None:
            return False
        version = None
        if compute(zone) is not None:  # a first look: who and why, for the journal
            first = changed[0]
            if len(changed) == 1:
                who = first.who
                reason = "; ".join(dict.fromkeys(first.events)) or "configuration"
            else:
                who = f"{first.who} +{len(changed) - 1}"
                reason = "; ".join(
                    f"{r.label}: {'; '.join(dict.fromkeys(r.events)) or 'configuration'}"
                    for r in changed
                )
            version = self.store.write(origin, compute, who, reason[:200], CHANNEL)
        for rrset in rrsets:
            if rrset.key in decided:
                self._decided(rrset, *decided[rrset.key])
        if version is None:
            return False
        for rrset in changed:
            rrset.switches += 1
            log.info(
                "failover %s: now serving %s (zone %s serial %d): %s",
                rrset.label,
                ", ".join(rrset.served) or "nothing",
                origin.to_text(omit_final_dot=True),
                version.serial,
                "; ".join(dict.fromkeys(rrset.events_written)) or "configuration",
            )
            self.hooks.on_switch(rrset)
        self.changed = True
        return True

    def _decided(self, rrset: FailoverSet, serve: list[Target], all_down: bool) -> None:
        spec = rrset.spec
        before = (rrset.served, rrset.all_down)
        rrset.served = [t.address for t in serve]
        if all_down and not rrset.all_down:
            what = (
                "serving all of them (fail open)"
                if spec.on_all_down == "all"
                else "removing the RRset (on_all_down: none)"
            )
            log.warning("failover %s: every target is down; %s", rrset.label, what)
        rrset.all_down = all_down
        if (rrset.served, rrset.all_down) != before:
            self.changed = True
        rrset.events_written = rrset.events
        rrset.events = []

    # -- ownership --------------------------------------------------------------------

    def owns(self, low: bytes, rdtype: int) -> bool:
        """Is (owner, type) a failover RRset? (DynDNS2 answers `nohost` for it.)"""
        return (low, rdtype) in self.sets

    def check_owned(self, zone: ZoneData, changeset: Changeset, channel: str) -> None:
        """Store pre-commit check: only the checker (and import/rollback) may
        change a failover RRset; anything else is refused as a whole."""
        if channel in _EXEMPT or not self.sets:
            return
        sets = self.sets
        for records in (changeset.removed, changeset.added):
            for owner, rdtype, _ttl, _rdata in records:
                rrset = sets.get((owner.lower(), rdtype))
                if rrset is not None:
                    raise OwnedByChecker(
                        f"{rrset.spec.name.to_text(omit_final_dot=True)} "
                        f"{type_text(rdtype)} is a failover RRset, owned by the health checker"
                    )

    # -- status ----------------------------------------------------------------------

    def status(self, raw: bool = False) -> list[dict[str, Any]]:
        """Every failover RRset as a dict: what `health status --json` prints
        (and the API may return): `served` read from the zone, times in ISO 8601.

        `raw` (the status file, every few seconds with 10,000 targets): times
        as epoch seconds and `served` as last decided, which is cheaper;
        `present` turns such a row into the other form."""
        self.changed = False
        out = []
        for rrset in self.sets.values():
            if raw:
                served = rrset.served
            else:
                zone = self.store.zone_for(rrset.zone)
                served = (
                    [address_text(rr[3]) for rr in zone.records_at(rrset.low, rrset.spec.rdtype)]
                    if zone is not None
                    else []
                )
            row = rrset_status(rrset.zone, rrset.spec, served, rrset)
            out.append(row if raw else present(row))
        return out


def _spread(rrset: FailoverSet, address: str) -> float:
    """A stable fraction in [0, 1) per target: where in the interval it is probed."""
    return (zlib.crc32(f"{rrset.label}|{address}".encode()) & 0xFFFF) / 65536.0


# ---------------------------------------------------------------------------
# metrics


class HealthMetrics:
    """Failover metrics around an injected registry: target up/down and
    all-down gauges read from the checker when scraped; probe latency
    histogram and switches counter bumped as things happen."""

    def __init__(self, registry: CollectorRegistry, checker: Callable[[], HealthChecker | None]):
        self.probe_latency = Histogram(
            "ddns_failover_probe_latency_seconds",
            "Health probe duration (connect, or HTTP status line), by protocol and result",
            ["protocol", "result"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.switches = Counter(
            "ddns_failover_switches",
            "Versions written by the health checker (the served RRset changed)",
            ["zone", "name", "type"],
            registry=registry,
        )
        registry.register(_HealthCollector(checker))

    def switched(self, rrset: FailoverSet) -> None:
        self.switches.labels(
            rrset.zone.to_text(omit_final_dot=True),
            rrset.spec.name.to_text(omit_final_dot=True),
            type_text(rrset.spec.rdtype),
        ).inc()


class _HealthCollector(Collector):
    def __init__(self, checker: Callable[[], HealthChecker | None]) -> None:
        self.checker = checker

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "ddns_failover_target_up",
            "1 when the target is healthy, 0 when down (absent until its first probe)",
            labels=["zone", "name", "type", "target", "address"],
        )
        all_down = GaugeMetricFamily(
            "ddns_failover_all_down",
            "1 when every target of the failover RRset is down (fail open or removed)",
            labels=["zone", "name", "type"],
        )
        checker = self.checker()
        for rrset in checker.sets.values() if checker is not None else ():
            labels = [
                rrset.zone.to_text(omit_final_dot=True),
                rrset.spec.name.to_text(omit_final_dot=True),
                type_text(rrset.spec.rdtype),
            ]
            for target in rrset.targets.values():
                if target.up is not None:
                    up.add_metric([*labels, target.source, target.address], 1 if target.up else 0)
            all_down.add_metric(labels, 1 if rrset.all_down else 0)
        yield up
        yield all_down


# ---------------------------------------------------------------------------
# `ddns-server health status`
