"""RFC 2136 UPDATE requests: zone lookup, policy, processing, commit, answer.

The dnsmsg.UpdateHandler that DnsHandler hands UPDATE messages to. The RFC
logic is in update.py (pure); this glues it to the Store: find the zone,
refuse who may not update it, compute the changeset, commit it (journal
first, then the in-memory zone) and answer. One log line per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.update

from ddns_server import policy
from ddns_server.dnsmsg import Source
from ddns_server.errors import DnsError, FormErr, NotAuth, Refused, ServFail
from ddns_server.gcpause import GcPaused
from ddns_server.limits import DEFAULT_LIMITS, UpdateLimits, check_limits
from ddns_server.model import PolicyRule, Zone
from ddns_server.store import Store
from ddns_server.update import ParsedUpdate, from_message, process, zone_section
from ddns_server.zonedata import Changeset, ZoneData, name_to_wire

log = logging.getLogger("ddns_server.updates")

CHANNEL = "rfc2136"


class UpdateProcessor:
    """Answers UPDATE messages for the store's zones under their policies."""

    def __init__(
        self,
        store: Store,
        zones: Iterable[Zone],
        count: Callable[[str], None] = lambda result: None,
        limits: UpdateLimits = DEFAULT_LIMITS,
    ) -> None:
        self.store = store
        self.limits = limits  # issue 14: caps on what one UPDATE may make a zone hold
        self.count = count  # result: the rcode's name, or "NOCHANGE"
        self.policies: dict[bytes, tuple[PolicyRule, ...]] = {}
        # key name (its labels: case kept, as the text shows it) -> its text
        self._who: dict[tuple[bytes, ...], str] = {}
        self.configure(zones)
        # The caps are one of the store's pre-commit checks (for this channel):
        # checked on the final changeset, before anything is journaled.
        store.checks.append(self._check_limits)

    def _check_limits(self, zone: ZoneData, changes: Changeset, channel: str) -> None:
        if channel == CHANNEL:
            check_limits(zone, changes, self.limits)  # raises Refused: nothing changes

    def configure(self, zones: Iterable[Zone]) -> None:
        """Take the zones' update policies (at start and on SIGHUP)."""
        self.policies = {name_to_wire(z.name).lower(): z.update_policy for z in zones}

    def handle_update(self, query: dns.message.Message, source: Source) -> int:
        """Process one UPDATE dnspython parsed; the rcode to answer it with."""
        key_name: dns.name.Name | None = query.keyname if query.had_tsig else None
        zone_text = query.question[0].name if query.question else "?"

        def parsed() -> ParsedUpdate:
            if not isinstance(query, dns.update.UpdateMessage):
                raise FormErr("not an UPDATE message")
            return from_message(query)

        return self._handle(parsed, zone_text, key_name, source)

    def handle_parsed(
        self, update: ParsedUpdate, key_name: dns.name.Name | None, source: Source
    ) -> int:
        """Process one UPDATE read from the wire (wireupdate.py); the rcode."""
        zone_text = update.zone[0][0] if update.zone else "?"
        return self._handle(lambda: update, zone_text, key_name, source)

    def _handle(
        self,
        parsed: Callable[[], ParsedUpdate],
        zone_text: object,  # a Name: formatted only when logged
        key_name: dns.name.Name | None,
        source: Source,
    ) -> int:
        """The one path of both forms: process, commit, count, log; the rcode."""
        who = self._who_text(key_name)
        try:
            try:
                with GcPaused():  # a large UPDATE: see gcpause.py
                    serial = self._update(parsed(), key_name, who, source)
            except DnsError:
                raise
            except Exception as e:  # never leave a client without an answer
                log.exception("update %s: internal error", zone_text)
                raise ServFail(str(e)) from e
        except DnsError as e:
            log.info(
                "update %s from %s#%d key %s: %s (%s)",
                zone_text,
                source[0],
                source[1],
                who,
                dns.rcode.to_text(e.rcode),
                e,
            )
            self.count(dns.rcode.to_text(e.rcode))
            return int(e.rcode)
        self.count("NOERROR" if serial is not None else "NOCHANGE")
        if serial is None:
            log.info(
                "update %s from %s#%d key %s: NOERROR (no change)",
                zone_text,
                source[0],
                source[1],
                who,
            )
        return int(dns.rcode.NOERROR)

    def _who_text(self, key_name: dns.name.Name | None) -> str:
        """The key name as logs and the journal show it (cached: one per key)."""
        if key_name is None:
            return "-"
        who = self._who.get(key_name.labels)
        if who is None:
            if len(self._who) >= 256:  # only verified keys get here; bounded anyway
                self._who.clear()
            who = self._who[key_name.labels] = key_name.to_text(omit_final_dot=True)
        return who

    def _update(
        self,
        query: ParsedUpdate,
        key_name: dns.name.Name | None,
        who: str,
        source: Source,
    ) -> int | None:
        """Apply the update; the new serial, or None when nothing changed."""
        zone = self._zone(query)
        rules = self.policies.get(zone.apex, ())
        # Like BIND for unsigned requests, and for keys no rule names: refused
        # before the prerequisites, so they cannot probe the zone.
        if key_name is None:
            raise Refused("unsigned updates are not allowed")
        if key_name not in policy.granted_keys(rules):
            raise Refused(f"no update policy rule for key {who}")
        try:
            # The store's one writer: reads other processes' versions, retries
            # against a newer one, journals before anything is published.
            version = self.store.write(
                zone.origin,
                lambda current: process(current, query, rules, key_name),
                who,
                source[0],
                CHANNEL,
            )
        except DnsError:
            raise  # a prerequisite, the policy or a pre-commit check refused it
        except Exception as e:
            # The journal could not be written; the store put the zone back
            # as the journal has it: nothing changed.
            log.exception("update %s: journal write failed", zone.origin)
            raise ServFail(f"journal write failed: {e}") from e
        return version.serial if version is not None else None

    def _zone(self, query: ParsedUpdate) -> ZoneData:
        """RFC 2136 §3.1.1: the zone section must name a zone served here."""
        name = zone_section(query)
        zone = self.store.zone_for(name)
        if zone is None:
            raise NotAuth(f"not authoritative for {name}")
        return zone
