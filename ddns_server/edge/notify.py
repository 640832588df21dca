"""NOTIFY (RFC 1996): tell a zone's secondaries of every new version.

A store listener: each new version (ours, or one `Store.poll` found that
another process such as `journal rollback` journaled) sends a NOTIFY to each
`notify` endpoint of the zone, over UDP from an ephemeral port: opcode
NOTIFY, AA set, the zone's SOA as question and our current SOA in the answer
section (RFC 1996 §3.7, as BIND sends it). It is resent after 1 s, 2 s, 4 s,
8 s until a response with the same ID comes from the target (RFC 1996 §3.6);
a newer version replaces a NOTIFY still waiting for the same target. Like
BIND, the zones are also announced once at start-up.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from twisted.internet.protocol import DatagramProtocol

from ddns_server import model
from ddns_server.journal import Version
from ddns_server.zonedata import SOA, ZoneData, name_to_wire, wire_to_name

log = logging.getLogger(__name__)

# RFC 1996 §3.6: retransmit with a growing interval; BIND tries 5 times.
FIRST_RETRY = 1.0
TRIES = 5
# The shortest time between two NOTIFYs of a zone to one target (see notify()).
NOTIFY_INTERVAL = 0.05

Target = tuple[str, int]  # normalised address text, port


@dataclass
class _Pending:
    """One NOTIFY waiting for its response."""

    zone: str  # text, for logs
    apex: bytes
    target: Target
    message_id: int
    wire: bytes
    tries: int = 0
    delay: float = FIRST_RETRY
    call: Any = None  # the IDelayedCall of the next retry


class _NotifySocket(DatagramProtocol):
    """The ephemeral UDP socket NOTIFYs leave from; responses come back here."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        self.notifier.response_received(data, (addr[0], addr[1]))


class Notifier:
    """Sends and retries NOTIFYs; `on_version` is the store listener."""

    def __init__(
        self,
        reactor: Any,
        zones: Iterable[model.Zone],
        count: Callable[[str], None] = lambda result: None,
        first_retry: float = FIRST_RETRY,
        tries: int = TRIES,
    ) -> None:
        self.reactor = reactor
        self.count = count
        self.first_retry = first_retry
        self.tries = tries
        self.targets: dict[bytes, tuple[Target, ...]] = {}
        # (apex, target) -> the NOTIFY in flight; (id, target) -> its key
        self.pending: dict[tuple[bytes, Target], _Pending] = {}
        self._by_id: dict[tuple[int, Target], tuple[bytes, Target]] = {}
        self._ports: dict[int, Any] = {}  # address family -> Twisted UDP port
        self._scheduled: dict[tuple[bytes, Target], Any] = {}  # delayed sends
        self._last_sent: dict[tuple[bytes, Target], float] = {}
        self.configure(zones)

    def configure(self, zones: Iterable[model.Zone]) -> None:
        """Take the `notify` lists of a (re)loaded config."""
        self.targets = {
            name_to_wire(z.name).lower(): tuple(_target(ep.host, ep.port) for ep in z.notify)
            for z in zones
        }

    def on_version(self, zone: ZoneData, version: Version | None) -> None:
        try:
            self.notify(zone)
        except Exception:  # a NOTIFY problem never fails the commit that caused it
            log.exception("notify of %s failed", zone.origin)

    def notify(self, zone: ZoneData) -> None:
        """Announce the zone's current SOA to each of its secondaries.

        At most one NOTIFY per target every NOTIFY_INTERVAL: versions that
        come faster (a burst of updates) are announced together by one
        NOTIFY carrying the newest SOA, like BIND's notify-delay (whose
        default is 5 s; ours is short, so secondaries follow within
        milliseconds).
        """
        now = self.reactor.seconds()
        for target in self.targets.get(zone.apex, ()):
            key = (zone.apex, target)
            if key in self._scheduled:
                continue  # the scheduled NOTIFY will carry this version's SOA
            wait = self._last_sent.get(key, -NOTIFY_INTERVAL) + NOTIFY_INTERVAL - now
            if wait > 0:
                self._scheduled[key] = self.reactor.callLater(wait, self._send_new, zone, target)
            else:
                self._send_new(zone, target)

    def _send_new(self, zone: ZoneData, target: Target) -> None:
        """A NOTIFY with the zone's SOA as it is now, replacing one in flight."""
        key = (zone.apex, target)
        self._scheduled.pop(key, None)
        self._last_sent[key] = self.reactor.seconds()
        old = self.pending.pop(key, None)
        if old is not None:
            self._forget(old)  # superseded by this newer version
        message_id = secrets.randbits(16)
        while (message_id, target) in self._by_id:  # another zone's, in flight
            message_id = secrets.randbits(16)
        pending = _Pending(
            zone.origin.to_text(),
            zone.apex,
            target,
            message_id,
            _notify_wire(zone, message_id),
            delay=self.first_retry,
        )
        self.pending[key] = pending
        self._by_id[(message_id, target)] = key
        self._send(pending)

    def stop(self) -> None:
        for call in self._scheduled.values():
            if call.active():
                call.cancel()
        self._scheduled.clear()
        for pending in list(self.pending.values()):
            self._forget(pending)
        self.pending.clear()
        for port in self._ports.values():
            port.stopListening()
        self._ports.clear()

    # -- sending and retrying ---------------------------------------------------------

    def _send(self, pending: _Pending) -> None:
        pending.tries += 1
        try:
            self._port(pending.target).write(pending.wire, pending.target)
        except OSError as e:  # unreachable network, no route: try again later
            log.warning("notify of %s to %s#%d: %s", pending.zone, *pending.target, e)
        pending.call = self.reactor.callLater(pending.delay, self._retry, pending)

    def _retry(self, pending: _Pending) -> None:
        pending.call = None
        if pending.tries >= self.tries:
            log.warning(
                "notify of %s to %s#%d: no response after %d tries",
                pending.zone,
                *pending.target,
                pending.tries,
            )
            self._done(pending, "failed")
            return
        pending.delay *= 2
        self._send(pending)

    def _port(self, target: Target) -> Any:
        """The UDP port (one per address family, opened on first use)."""
        family = 6 if ":" in target[0] else 4
        port = self._ports.get(family)
        if port is None:
            interface = "::" if family == 6 else ""
            port = self._ports[family] = self.reactor.listenUDP(
                0, _NotifySocket(self), interface=interface
            )
        return port

    def response_received(self, data: bytes, source: tuple[str, int]) -> None:
        """A datagram on the NOTIFY socket: the answer to one of ours?"""
        if len(data) < 12 or not data[2] & 0x80:
            return
        if (data[2] >> 3) & 0x0F != dns.opcode.NOTIFY:
            return
        target = _target(source[0], source[1])
        key = self._by_id.get(((data[0] << 8) | data[1], target))
        pending = self.pending.get(key) if key else None
        if pending is None:
            return  # late, or for a NOTIFY already superseded
        rcode = data[3] & 0x0F
        if rcode == dns.rcode.NOERROR:
            log.info("notify of %s to %s#%d acknowledged", pending.zone, *target)
            self._done(pending, "acked")
        else:
            # As BIND: an error answer ends the retries.
            log.warning(
                "notify of %s to %s#%d: %s",
                pending.zone,
                *target,
                dns.rcode.to_text(dns.rcode.Rcode.make(rcode)),
            )
            self._done(pending, "failed")

    def _done(self, pending: _Pending, result: str) -> None:
        self.pending.pop((pending.apex, pending.target), None)
        self._forget(pending)
        self.count(result)

    def _forget(self, pending: _Pending) -> None:
        if pending.call is not None and pending.call.active():
            pending.call.cancel()
        pending.call = None
        self._by_id.pop((pending.message_id, pending.target), None)


def _target(host: str, port: int) -> Target:
    """An address as responses report it (IPv6 compressed, no scope)."""
    try:
        return (ipaddress.ip_address(host.split("%", 1)[0]).compressed, port)
    except ValueError:
        return (host, port)


def _notify_wire(zone: ZoneData, message_id: int) -> bytes:
    """RFC 1996 §3.7: opcode NOTIFY, AA, question SOA, our SOA in the answer."""
    owner, _rdtype, ttl, rdata = zone.soa_record()
    origin = wire_to_name(owner)
    message = dns.message.Message(message_id)
    message.flags = dns.flags.AA
    message.set_opcode(dns.opcode.NOTIFY)
    message.find_rrset(message.question, origin, dns.rdataclass.IN, dns.rdatatype.SOA, create=True)
    soa = dns.rdata.from_wire(dns.rdataclass.IN, SOA, rdata, 0, len(rdata))
    message.answer.append(dns.rrset.from_rdata(origin, ttl, soa))
    wire: bytes = message.to_wire()
    return wire


__all__ = ["Notifier"]
