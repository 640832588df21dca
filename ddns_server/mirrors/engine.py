"""The mirror engine: journal after the cursor -> net RRset changes -> provider pushes.

Pure and blocking (no Twisted): a worker thread (worker.py) or a command
(`mirror resync`) drives one `Mirror` with its own journal connection.

* The cursor (state.py) is the last journal version the provider confirmed.
  A step reads the versions after it, collects the managed (name, type) keys
  they touched, reads those RRsets' current content, and pushes each whole
  (replace, or delete when gone): many versions collapse into one push per
  RRset. The cursor moves only after the provider confirmed.
* When the cursor's version is no longer in the journal (pruned, or a new
  mirror), the mirror falls back to a full compare: the provider's managed
  RRsets against the zone's (the same plan as a resync).
* Ownership: the mirror remembers what it wrote. A managed RRset at the
  provider that it did not write and that differs is a conflict, left alone,
  unless `adopt`. Records outside the managed names/types are never touched.
* A resync (periodic, or `mirror resync`) repairs drift; it is refused when
  it would replace or delete more than `max_change_share` of the managed
  RRsets at the provider (octoDNS's rails, with its minimum of 10 existing
  records below which the share is not checked) unless forced.
* Errors: transient ones retry with exponential backoff and jitter, capped at
  5 minutes, never sooner than a provider's retry_after; permanent ones stop
  the mirror until SIGHUP or `mirror resync`.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from ddns_server.journal import Journal, Version
from ddns_server.mirrors import state
from ddns_server.mirrors.base import (
    Change,
    PermanentError,
    Provider,
    ProviderError,
    RRset,
    TransientError,
)
from ddns_server.mirrors.spec import MirrorSpec
from ddns_server.mirrors.state import MirrorState
from ddns_server.zonedata import Record, wire_to_name

log = logging.getLogger("ddns_server.mirrors")

BASE_BACKOFF = 1.0  # seconds before the first retry (then doubled)
MAX_BACKOFF = 300.0  # the cap: 5 minutes
MAX_RETRY_AFTER = 3600.0  # a provider's retry_after is honoured up to an hour
MIN_EXISTING = 10  # octoDNS's MIN_EXISTING_RECORDS: smaller zones skip the share check
CHUNK = 100  # RRsets per provider.apply call

Key = tuple[str, str]


class ThresholdRefused(PermanentError):
    """A full compare would change more of the provider than max_change_share allows."""


def error_class(e: BaseException) -> str:
    if isinstance(e, ThresholdRefused):
        return "threshold"
    if isinstance(e, ProviderError):
        return "transient" if e.transient else "permanent"
    return "transient"


def backoff(attempt: int, retry_after: float | None, rand: Callable[[], float]) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): exponential, jittered,
    capped at MAX_BACKOFF, and never sooner than the provider asked."""
    delay = min(MAX_BACKOFF, BASE_BACKOFF * 2 ** min(attempt - 1, 30))
    delay *= 0.5 + 0.5 * rand()  # "equal jitter": spreads mirrors that failed together
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def canonical(rrset: RRset) -> RRset:
    """The RRset with its values in dnspython's presentation form, sorted and unique,
    so that providers' spellings ("::1" vs "0:0::1", unquoted TXT) compare equal."""
    values = set()
    for value in rrset.values:
        try:
            rd = dns.rdata.from_text(dns.rdataclass.IN, rrset.rdtype, value, dns.name.root)
            values.add(rd.to_text())
        except (dns.exception.DNSException, ValueError):
            values.add(value)
    return RRset(rrset.name.lower(), rrset.rdtype, rrset.ttl, tuple(sorted(values)))


def same(a: RRset | None, b: RRset | None) -> bool:
    if a is None or b is None:
        return a is b
    return canonical(a) == canonical(b)


def key_text(key: Key) -> str:
    return f"{key[0]} {key[1]}"


@dataclass
class Plan:
    """A full compare's outcome: what to create, replace and delete at the provider."""

    version: Version | None  # the journal version the plan brings the provider to
    creates: list[Change] = field(default_factory=list)
    replaces: list[Change] = field(default_factory=list)
    deletes: list[Change] = field(default_factory=list)
    conflicts: list[Key] = field(default_factory=list)
    adopted: list[RRset] = field(default_factory=list)  # equal at the provider: now ours
    existing: int = 0  # managed RRsets at the provider

    @property
    def changes(self) -> list[Change]:
        return self.creates + self.replaces + self.deletes

    def share(self) -> float:
        return (len(self.replaces) + len(self.deletes)) / max(1, self.existing)

    def refusal(self, max_share: float, mirror: str) -> str | None:
        """Why the safety threshold stops this plan (None when it does not)."""
        changed = len(self.replaces) + len(self.deletes)
        if self.existing < MIN_EXISTING or self.share() <= max_share:
            return None
        return (
            f"mirror {mirror}: the resync would replace or delete {changed} of the"
            f" {self.existing} managed RRsets at the provider ({self.share():.0%}, more than"
            f" max_change_share {max_share:.0%}); check the provider, then run"
            f" `ddns-server mirror resync {mirror} --force` to apply it"
        )

    def to_dict(self) -> dict[str, Any]:
        def rr(change: Change) -> dict[str, Any]:
            new = change.new
            out: dict[str, Any] = {"name": change.key[0], "type": change.key[1]}
            if new is not None:
                out.update(ttl=new.ttl, values=list(new.values))
            return out

        return {
            "serial": self.version.serial if self.version else None,
            "create": [rr(c) for c in self.creates],
            "replace": [rr(c) for c in self.replaces],
            "delete": [rr(c) for c in self.deletes],
            "conflicts": [key_text(k) for k in self.conflicts],
            "existing": self.existing,
        }

    def lines(self) -> list[str]:
        out = []
        for word, changes in (
            ("create", self.creates),
            ("replace", self.replaces),
            ("delete", self.deletes),
        ):
            for c in changes:
                if c.new is None:
                    out.append(f"{word} {key_text(c.key)}")
                else:
                    out += [
                        f"{word} {c.new.name} {c.new.ttl} {c.new.rdtype} {v}" for v in c.new.values
                    ]
        out += [
            f"conflict {key_text(k)} (not written by this mirror; adopt: true takes it over)"
            for k in self.conflicts
        ]
        return out


@contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One consistent view of the journal (WAL: readers see one commit)."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


class Mirror:
    """One mirror: its spec, its journal connection, its provider."""

    def __init__(
        self,
        spec: MirrorSpec,
        journal: Journal,
        provider: Provider,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.spec = spec
        self.journal = journal
        self.provider = provider
        self.clock = clock
        self.sleep = sleep
        self.rand = rand
        self.counters: Counter[tuple[str, str]] = Counter()  # ("pushes"|"errors", class)
        self._last_call = float("-inf")
        # Stopped, or waiting for a retry: new versions need not wake the
        # mirror (the worker then sleeps through wake-ups; no retry storm).
        self.holding = False
        self._names: dict[bytes, str] = {}

    # -- provider calls, rate-limited ------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        cps = self.spec.calls_per_second
        if cps > 0:
            wait = self._last_call + 1.0 / cps - self.clock()
            if wait > 0:
                self.sleep(wait)
        self._last_call = self.clock()
        return fn(*args)

    # -- the journal's side ----------------------------------------------------

    def _key(self, record: Record) -> Key | None:
        owner, rdtype, _ttl, _rdata = record
        name = self._names.get(owner)
        if name is None:
            name = self._names[owner] = wire_to_name(owner).to_text().lower()
            if len(self._names) > 10000:
                self._names.clear()
        type_text = dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]
        if not self.spec.manages(name, type_text):
            return None
        return (name, type_text)

    def _content(
        self, keys: set[Key] | None, owners: set[tuple[bytes, int]] | None = None
    ) -> dict[Key, RRset]:
        """The zone's current managed RRsets (only `keys`, when given; read by
        their `owners` spellings when given, instead of the whole zone)."""
        grouped: dict[Key, tuple[int, set[str]]] = {}
        records = (
            self.journal.load_keys(self.spec.zone, owners)
            if owners is not None
            else self.journal.load(self.spec.zone)
        )
        for record in records:
            key = self._key(record)
            if key is None or (keys is not None and key not in keys):
                continue
            _owner, rdtype, ttl, rdata = record
            rd = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, rdata, 0, len(rdata))  # type: ignore[arg-type]
            old = grouped.get(key)
            if old is None:
                grouped[key] = (ttl, {rd.to_text()})
            else:
                old[1].add(rd.to_text())
                grouped[key] = (min(old[0], ttl), old[1])
        return {
            key: RRset(key[0], key[1], ttl, tuple(sorted(values)))
            for key, (ttl, values) in grouped.items()
        }

    def _cursor_valid(self, st: MirrorState) -> bool:
        """Are all versions after the cursor still journaled? (Pruning keeps a suffix.)"""
        if st.version_id <= 0:
            return False
        zone_id = self.journal.zone_id(self.spec.zone)
        row = self.journal.conn.execute(
            "SELECT 1 FROM versions WHERE id = ? AND zone_id = ?", (st.version_id, zone_id)
        ).fetchone()
        return row is not None

    # -- one step ----------------------------------------------------------------

    def step(self) -> float | None:
        """Deliver what is due; seconds until the next step is due (None: when woken)."""
        conn = self.journal.conn
        st = state.load(conn, self.spec.name, self.spec.zone)
        now = self.clock()
        if st.stopped:
            self.holding = True
            return None
        if st.next_retry is not None and now < st.next_retry:
            self.holding = True
            return st.next_retry - now
        try:
            if not self._cursor_valid(st):
                self._full_sync(st, force=False, initial=True)
            elif self._resync_due(st, now):
                try:
                    self._full_sync(st, force=False, initial=False)
                except ThresholdRefused as e:
                    # Drift repair refused: say so, keep delivering new changes.
                    self.counters[("errors", "threshold")] += 1
                    log.error("%s", e)
                    st.error_time, st.error_class, st.error_message = now, "threshold", str(e)
                    st.last_resync = now
                    state.save(conn, st)
                    self._deliver(st)
            else:
                self._deliver(st)
        except Exception as e:  # noqa: BLE001 - every failure is classed and retried or stops
            self._failed(st, e)
        st = state.load(conn, self.spec.name, self.spec.zone)
        self.holding = st.stopped or st.next_retry is not None
        return self._next_due(st)

    def _resync_due(self, st: MirrorState, now: float) -> bool:
        interval = self.spec.resync_interval
        return interval > 0 and (st.last_resync is None or now - st.last_resync >= interval)

    def _next_due(self, st: MirrorState) -> float | None:
        now = self.clock()
        if st.stopped:
            return None
        if st.next_retry is not None:
            return max(0.0, st.next_retry - now)
        if self.journal.latest_id(self.spec.zone) > st.version_id:
            return 0.0
        if self.spec.resync_interval > 0:
            return max(0.0, (st.last_resync or now) + self.spec.resync_interval - now)
        return None

    def _deliver(self, st: MirrorState) -> None:
        """Push the net effect of the versions after the cursor on the managed RRsets."""
        conn = self.journal.conn
        touched: set[Key] = set()
        owners: set[tuple[bytes, int]] = set()
        with read_snapshot(conn):
            versions = self.journal.versions(self.spec.zone, after_id=st.version_id)
            if not versions:
                return
            for v in versions:
                cs = self.journal.changeset(v.id)
                for record in (*cs.removed, *cs.added):
                    key = self._key(record)
                    if key is not None:
                        touched.add(key)
                        owners.add((record[0], record[1]))
            last = versions[-1]
            desired = self._content(touched, owners) if touched else {}
        conflicts = set(st.conflicts)
        if touched:
            owned = state.owned(conn, self.spec.name)
            unowned = sorted(k for k in touched if k not in owned)
            actual: dict[Key, RRset] = {}
            if unowned:
                wanted = set(unowned)
                for rr in self._call(self.provider.read, unowned):
                    rr = canonical(rr)
                    if rr.key in wanted:
                        actual[rr.key] = rr
            changes: list[Change] = []
            adopted: list[RRset] = []
            for key in sorted(touched):
                want = desired.get(key)
                if key in owned:
                    if not same(owned[key], want):
                        changes.append(Change(key, want))
                    conflicts.discard(key_text(key))
                    continue
                have = actual.get(key)
                if same(have, want):
                    if want is not None:
                        adopted.append(want)
                    conflicts.discard(key_text(key))
                elif have is None or self.spec.adopt:
                    changes.append(Change(key, want))
                    conflicts.discard(key_text(key))
                else:
                    if key_text(key) not in conflicts:
                        log.warning(
                            "mirror %s: conflict at %s: the provider holds a different RRset"
                            " this mirror did not write; left alone (adopt: true takes it over)",
                            self.spec.name,
                            key_text(key),
                        )
                    conflicts.add(key_text(key))
            self._push(changes, last)
            state.set_owned(conn, self.spec.name, adopted, ())
        self._delivered(st, last, sorted(conflicts))

    def _push(self, changes: list[Change], version: Version | None) -> None:
        conn = self.journal.conn
        serial = version.serial if version else "-"
        for start in range(0, len(changes), CHUNK):
            chunk = changes[start : start + CHUNK]
            self._call(self.provider.apply, chunk)
            self.counters[("pushes", "ok")] += 1
            state.set_owned(
                conn,
                self.spec.name,
                [c.new for c in chunk if c.new is not None],
                [c.key for c in chunk if c.new is None],
            )
            shown = ", ".join(
                ("replace " if c.new is not None else "delete ") + key_text(c.key)
                for c in chunk[:10]
            )
            more = f" and {len(chunk) - 10} more" if len(chunk) > 10 else ""
            log.info(
                "mirror %s: pushed serial %s to %s: %s%s",
                self.spec.name,
                serial,
                self.spec.provider,
                shown,
                more,
            )

    def _delivered(self, st: MirrorState, version: Version | None, conflicts: list[str]) -> None:
        if version is not None:
            st.version_id, st.serial = version.id, version.serial
        st.last_success = self.clock()
        st.error_time = st.error_class = st.error_message = None
        st.next_retry = None
        st.attempts = 0
        st.stopped = False
        st.conflicts = conflicts
        state.save(self.journal.conn, st)

    def _failed(self, st: MirrorState, e: BaseException) -> None:
        kind = error_class(e)
        now = self.clock()
        self.counters[("errors", kind)] += 1
        message = str(e) if isinstance(e, ProviderError) else f"{type(e).__name__}: {e}"
        st.error_time, st.error_class, st.error_message = now, kind, message
        if kind == "transient":
            st.attempts += 1
            retry_after = e.retry_after if isinstance(e, TransientError) else None
            delay = backoff(st.attempts, retry_after, self.rand)
            st.next_retry = now + delay
            log.warning(
                "mirror %s: %s error (attempt %d, retry in %.1f s): %s",
                self.spec.name,
                kind,
                st.attempts,
                delay,
                message,
            )
        else:
            st.stopped = True
            st.next_retry = None
            log.error(
                "mirror %s: stopped by a %s error: %s (fix it, then send SIGHUP or run"
                " `ddns-server mirror resync %s`)",
                self.spec.name,
                kind,
                message,
                self.spec.name,
            )
        state.save(self.journal.conn, st)

    # -- full compare (resync) ---------------------------------------------------

    def plan(self) -> Plan:
        """Read the provider's managed RRsets and compare them with the zone's."""
        with read_snapshot(self.journal.conn):
            latest = self.journal.versions(self.spec.zone, limit=1)
            desired = self._content(None)
        owned = state.owned(self.journal.conn, self.spec.name)
        actual: dict[Key, RRset] = {}
        for rr in self._call(self.provider.read, None):
            rr = canonical(rr)
            if self.spec.manages(rr.name, rr.rdtype):
                actual[rr.key] = rr
        plan = Plan(latest[0] if latest else None, existing=len(actual))
        for key in sorted(set(desired) | set(actual)):
            want, have = desired.get(key), actual.get(key)
            if same(want, have):
                if want is not None and key not in owned:
                    plan.adopted.append(want)
                continue
            if have is not None and key not in owned and not self.spec.adopt:
                plan.conflicts.append(key)
            elif have is None:
                plan.creates.append(Change(key, want))
            elif want is None:
                plan.deletes.append(Change(key, None))
            else:
                plan.replaces.append(Change(key, want))
        return plan

    def apply_plan(self, plan: Plan) -> None:
        """Push a plan, then move the cursor to its version (provider confirmed)."""
        conn = self.journal.conn
        st = state.load(conn, self.spec.name, self.spec.zone)
        try:
            self._push(plan.changes, plan.version)
        except Exception as e:  # noqa: BLE001 - recorded, then re-raised to the caller
            self._failed(st, e)
            raise
        state.set_owned(conn, self.spec.name, plan.adopted, ())
        st.last_resync = self.clock()
        for key in plan.conflicts:
            log.warning(
                "mirror %s: conflict at %s: the provider holds a different RRset this mirror"
                " did not write; left alone (adopt: true takes it over)",
                self.spec.name,
                key_text(key),
            )
        if plan.version is not None and plan.version.id < st.version_id:
            plan.version = None  # delivered further meanwhile: keep that cursor
        self._delivered(st, plan.version, [key_text(k) for k in plan.conflicts])

    def _full_sync(self, st: MirrorState, force: bool, initial: bool) -> None:
        plan = self.plan()
        refusal = None if force else plan.refusal(self.spec.max_change_share, self.spec.name)
        if refusal is not None:
            raise ThresholdRefused(refusal)
        log.info(
            "mirror %s: %s: %d to create, %d to replace, %d to delete, %d conflicts",
            self.spec.name,
            "first full compare" if initial else "resync",
            len(plan.creates),
            len(plan.replaces),
            len(plan.deletes),
            len(plan.conflicts),
        )
        self.apply_plan(plan)


# -- status (CLI and metrics) ----------------------------------------------------


def lag(journal: Journal, zone: str, version_id: int) -> tuple[int, float | None]:
    """Versions after the cursor, and the time of the oldest of them."""
    zone_id = journal.zone_id(zone)
    if zone_id is None:
        return 0, None
    row = journal.conn.execute(
        "SELECT count(*), min(time) FROM versions WHERE zone_id = ? AND id > ?",
        (zone_id, version_id),
    ).fetchone()
    return int(row[0]), row[1]


def pending_keys(journal: Journal, spec: MirrorSpec, version_id: int) -> int | None:
    """Managed RRsets changed after the cursor (None: a full compare is due)."""
    probe = Mirror(spec, journal, _NoProvider())
    if not probe._cursor_valid(state.MirrorState(spec.name, spec.zone, version_id)):
        return None
    touched: set[Key] = set()
    for v in journal.versions(spec.zone, after_id=version_id):
        cs = journal.changeset(v.id)
        for record in (*cs.removed, *cs.added):
            key = probe._key(record)
            if key is not None:
                touched.add(key)
    return len(touched)


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def status(journal: Journal, spec: MirrorSpec, now: float) -> dict[str, Any]:
    """One mirror's status, as `mirror status --json` prints it."""
    st = state.load(journal.conn, spec.name, spec.zone)
    latest = journal.versions(spec.zone, limit=1)
    versions, oldest = lag(journal, spec.zone, st.version_id)
    pending = pending_keys(journal, spec, st.version_id)
    if st.stopped:
        condition = "stopped"
    elif st.next_retry is not None:
        condition = "retrying"
    elif pending is None:
        condition = "full compare due"
    elif versions:
        condition = "pending"
    else:
        condition = "in sync"
    return {
        "name": spec.name,
        "provider": spec.provider,
        "zone": spec.zone.rstrip(".") or ".",  # as the config names it
        "upstream_zone": spec.upstream_zone.rstrip(".") or ".",
        "state": condition,
        "delivered_serial": st.serial if st.version_id else None,
        "current_serial": latest[0].serial if latest else None,
        "pending": pending,
        "pending_versions": versions,
        "lag_seconds": round(now - oldest, 3) if oldest is not None else 0.0,
        "last_success": _iso(st.last_success),
        "last_error": (
            {"time": _iso(st.error_time), "class": st.error_class, "message": st.error_message}
            if st.error_class
            else None
        ),
        "next_retry": _iso(st.next_retry),
        "stopped": st.stopped,
        "conflicts": st.conflicts,
    }


class _NoProvider:
    def read(self, keys: Iterable[Key] | None = None) -> list[RRset]:
        raise PermanentError("no provider")

    def apply(self, changes: list[Change]) -> None:
        raise PermanentError("no provider")

    def close(self) -> None:
        pass
