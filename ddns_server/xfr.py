"""Outgoing zone transfers: AXFR (RFC 5936) and IXFR (RFC 1995) from the journal.

Access follows the zone's `allow_transfer`: a source address in one of its
networks, or a request signed (TSIG, already verified by dnspython in
`dnsmsg`) with one of its keys. The checks and their order are BIND 9's
(`lib/ns/xfrout.c`): unknown zone NOTAUTH, then the ACL (REFUSED), then
FORMERR for AXFR over UDP or an IXFR without the client's SOA.

Transfers are rendered straight from the zone's compact wire form (no
dnspython rrsets: a 100,000-record zone goes out in a fraction of a second),
owners compressed against the zone apex and the previous owner, in messages
of at most MESSAGE_SIZE octets. A signed request gets every message signed
(RFC 8945 §5.3.1) with dnspython's multi-message TSIG.

Everything happens in one synchronous call, so a transfer is a consistent
snapshot of one version even while updates keep arriving.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TSIG
import dns.serial
import dns.tsig

from ddns_server import model
from ddns_server.dnsmsg import Source
from ddns_server.errors import FormErr, NotAuth, Refused, ServFail
from ddns_server.journal import net_changes
from ddns_server.query import opt_record
from ddns_server.store import Store, zone_key
from ddns_server.tsigwire import TSIG_FUDGE, append_tsig, tsig_rdata
from ddns_server.zonedata import SOA, Record, ZoneData, name_to_wire, rr_tail, tails

log = logging.getLogger(__name__)

# Octets per transfer message (BIND's transfer-message-size is 20480). Below
# 16384 every offset in a message fits a compression pointer (RFC 1035 §4.1.4).
MESSAGE_SIZE = 16000
# The largest message at all: TCP frames it with a 16-bit length.
MAX_MESSAGE = 65535
# BIND 9.18's max-ixfr-ratio default (100%): when the condensed differences
# hold more records than the zone itself, an AXFR-style answer is smaller.
MAX_IXFR_RATIO = 1.0

_QR_AA = b"\x84\x00"  # QR and AA set, opcode QUERY, NOERROR (BIND copies no RD)
_COUNTS = struct.Struct("!HHHH")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# One record as it goes out: (owner wire, type + class + TTL + length + rdata).
OwnedTail = tuple[bytes, bytes]


@dataclass(frozen=True)
class TransferAcl:
    """A zone's `allow_transfer`: networks and TSIG key names."""

    networks: tuple[Network, ...] = ()
    keys: frozenset[dns.name.Name] = frozenset()

    @classmethod
    def from_zone(cls, zone: model.Zone) -> TransferAcl:
        return cls(
            tuple(ipaddress.ip_network(n, strict=False) for n in zone.allow_transfer_networks),
            frozenset(zone.allow_transfer_keys),
        )

    def allows(self, address: str, key: dns.name.Name | None) -> bool:
        """Like a BIND address match list: any matching element admits."""
        if key is not None and key in self.keys:
            return True
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)  # a dual-stack socket's view of IPv4
        return any(
            c in net for c in candidates for net in self.networks if c.version == net.version
        )


class TransferProcessor:
    """Answers AXFR and IXFR for the store's zones (a dnsmsg.TransferHandler)."""

    def __init__(
        self,
        store: Store,
        zones: Iterable[model.Zone],
        clock: Callable[[], float] = time.time,
        message_size: int = MESSAGE_SIZE,
        max_ixfr_ratio: float = MAX_IXFR_RATIO,
    ) -> None:
        self.store = store
        self.clock = clock
        self.message_size = message_size
        self.max_ixfr_ratio = max_ixfr_ratio
        self.acls: dict[bytes, TransferAcl] = {}
        self.configure(zones)

    def configure(self, zones: Iterable[model.Zone]) -> None:
        """Take the ACLs of a (re)loaded config."""
        self.acls = {name_to_wire(z.name).lower(): TransferAcl.from_zone(z) for z in zones}

    # -- entry point --------------------------------------------------------------

    def handle_transfer(self, query: dns.message.Message, source: Source, tcp: bool) -> list[bytes]:
        """The response messages to an AXFR or IXFR query (signed when it was)."""
        try:
            return self._transfer(query, source, tcp)
        except RecordTooBig as e:
            # Fail this transfer cleanly (SERVFAIL, one log line): BIND's
            # xfrout fails the same way when a record cannot be rendered.
            question = query.question[0]
            log.error(
                "%s of %s to %s#%d failed: a record at %s of %d octets cannot fit"
                " a %d-octet message with its OPT and TSIG records",
                dns.rdatatype.to_text(question.rdtype),
                question.name,
                source[0],
                source[1],
                _owner_text(e.owner),
                e.size,
                MAX_MESSAGE,
            )
            raise ServFail("transfer record too big") from None

    def _transfer(self, query: dns.message.Message, source: Source, tcp: bool) -> list[bytes]:
        question = query.question[0]
        kind = dns.rdatatype.to_text(question.rdtype)
        apex = name_to_wire(question.name).lower()
        zone = self.store.zones.get(apex)
        acl = self.acls.get(apex)
        if zone is None or acl is None or question.rdclass != dns.rdataclass.IN:
            raise NotAuth(f"{kind} of {question.name}: not a zone we serve")
        client_soa = _client_soa(query) if question.rdtype == dns.rdatatype.IXFR else None
        key = query.keyname if query.had_tsig else None
        if not acl.allows(source[0], key):
            log.info(
                "%s of %s from %s#%d%s refused by allow_transfer",
                kind,
                zone.origin,
                source[0],
                source[1],
                _key_text(key),
            )
            raise Refused(f"{kind} of {zone.origin} not allowed")
        if question.rdtype == dns.rdatatype.AXFR and not tcp:
            raise FormErr("AXFR over UDP")  # RFC 5936 §4.2; BIND answers FORMERR
        writer = self._writer(query, apex)
        style = kind
        if question.rdtype == dns.rdatatype.IXFR:
            if client_soa is None:
                raise FormErr("IXFR without the client's SOA")  # RFC 1995 §3
            client_serial = int(client_soa.serial)
            if not tcp or dns.serial.Serial(client_serial) >= dns.serial.Serial(zone.serial):
                # RFC 1995 §2, §4 and BIND: up to date (or over UDP, where we
                # send no differences, like BIND): our current SOA alone.
                writer.add(*_soa_tail(zone))
                return self._finish(writer, zone, source, key, "IXFR poll", logging.DEBUG)
            diffs = self._ixfr_records(zone, client_serial)
            if diffs is not None:
                for owner, tail in diffs:
                    writer.add(owner, tail)
                return self._finish(writer, zone, source, key, f"IXFR from {client_serial}")
            style = "AXFR-style IXFR"  # the journal no longer (or never) held it
        soa = _soa_tail(zone)
        writer.add(*soa)
        for owner, tail in _zone_tails(zone):
            writer.add(owner, tail)
        writer.add(*soa)
        return self._finish(writer, zone, source, key, style)

    # -- pieces ---------------------------------------------------------------------

    def _writer(self, query: dns.message.Message, apex: bytes) -> _MessageWriter:
        question = query.question[0]
        question_wire = name_to_wire(question.name) + struct.pack(
            "!HH", question.rdtype, question.rdclass
        )
        # BIND puts an OPT record in every message when the query had one.
        opt = opt_record(bool(query.ednsflags & dns.flags.DO)) if query.edns >= 0 else b""
        signer = None
        if query.had_tsig:
            key, keyname, mac = query.keyring, query.keyname, query.mac
            assert isinstance(key, dns.tsig.Key) and keyname is not None and mac is not None
            signer = _Signer(key, keyname, mac, query.id, int(self.clock()))
        head = struct.pack("!H", query.id) + _QR_AA
        return _MessageWriter(head, question_wire, apex, self.message_size, opt, signer)

    def _ixfr_records(self, zone: ZoneData, client_serial: int) -> list[OwnedTail] | None:
        """RFC 1995 §4 condensed: SOA(new) SOA(old) deletions SOA(new) additions SOA(new).

        None when the journal does not hold the client's version (pruned, or
        never ours), or the differences outweigh the zone: answer AXFR-style.
        """
        journal = self.store.journal
        key = zone_key(zone.origin)
        version = journal.find_version(key, client_serial)
        if version is None:
            return None
        net = net_changes(cs for _v, cs in journal.changesets_after(key, version.id))
        apex = zone.apex
        old_soa = next((rr for rr in net.removed if rr[1] == SOA and rr[0].lower() == apex), None)
        new_soa = next((rr for rr in net.added if rr[1] == SOA and rr[0].lower() == apex), None)
        if old_soa is None or new_soa is None:
            return None
        removed = [rr for rr in net.removed if rr is not old_soa]
        added = [rr for rr in net.added if rr is not new_soa]
        if len(removed) + len(added) > self.max_ixfr_ratio * zone.record_count:
            return None
        new = _owned(new_soa)
        return [new, _owned(old_soa), *map(_owned, removed), new, *map(_owned, added), new]

    def _finish(
        self,
        writer: _MessageWriter,
        zone: ZoneData,
        source: Source,
        key: dns.name.Name | None,
        style: str,
        level: int = logging.INFO,
    ) -> list[bytes]:
        messages = writer.finish()
        log.log(
            level,
            "%s of %s serial %d to %s#%d%s: %d records in %d messages",
            style,
            zone.origin,
            zone.serial,
            source[0],
            source[1],
            _key_text(key),
            writer.records,
            len(messages),
        )
        return messages


# -- rendering ------------------------------------------------------------------------


class RecordTooBig(Exception):
    """A record that cannot fit one transfer message even alone."""

    def __init__(self, owner: bytes, size: int) -> None:
        super().__init__(f"a record of {owner!r} takes {size} octets")
        self.owner = owner
        self.size = size


class _Signer:
    """RFC 8945 §5.3.1: every message of a transfer signed, each MAC chained."""

    def __init__(
        self,
        key: dns.tsig.Key,
        keyname: dns.name.Name,
        request_mac: bytes,
        original_id: int,
        now: int,
    ) -> None:
        self.key = key
        self.request_mac = request_mac
        self.now = now
        self.rdata = tsig_rdata(key.algorithm, now, TSIG_FUDGE, original_id, 0)
        self.ctx: object | None = None
        self.keyname = keyname
        full_mac = self.rdata.replace(mac=b"\x00" * dns.tsig.mac_sizes.get(key.algorithm, 64))
        self.reserve = len(name_to_wire(keyname)) + 10 + len(full_mac.to_wire() or b"")

    def sign(self, wire: bytes) -> bytes:
        """`wire` with a TSIG record appended (and counted)."""
        tsig, self.ctx = dns.tsig.sign(
            wire, self.key, self.rdata, self.now, self.request_mac, self.ctx, True
        )
        return append_tsig(wire, self.keyname, tsig)


class _MessageWriter:
    """Packs records into transfer messages, owners compressed by pointers.

    An owner that repeats the previous one becomes a pointer to it; other
    owners under the apex are their own labels plus a pointer to the apex as
    first written in the message (every owner is at or below the apex, so
    an exact suffix match falls on a label boundary). Rdata goes as stored.
    """

    def __init__(
        self,
        head: bytes,
        question: bytes,
        apex: bytes,
        size: int,
        opt: bytes,
        signer: _Signer | None,
    ) -> None:
        self.head = head
        self.question = question
        self.apex = apex
        self.apex_len = len(apex)
        self.opt = opt
        self.signer = signer
        overhead = len(opt) + (signer.reserve if signer else 0)
        self.room = size - overhead
        # A record bigger than `room` goes alone in a message, up to this.
        self.limit = MAX_MESSAGE - overhead
        self.messages: list[bytes] = []
        self.records = 0
        self._start()

    def _start(self) -> None:
        first = not self.messages
        self.parts: list[bytes] = []
        self.pos = 12 + (len(self.question) if first else 0)
        self.count = 0
        self.apex_ptr = b""
        self.apex_text = b""
        self.last_owner = b""
        self.last_pos = 0

    def add(self, owner: bytes, tail: bytes) -> None:
        pos = self.pos
        if owner == self.last_owner and self.last_pos < 0x4000:
            name = (0xC000 | self.last_pos).to_bytes(2, "big")
        else:
            if self.apex_ptr and owner.endswith(self.apex_text):
                name = owner[: len(owner) - self.apex_len] + self.apex_ptr
            else:
                name = owner
                cut = len(owner) - self.apex_len
                if not self.apex_ptr and cut >= 0 and pos + cut < 0x4000:
                    if owner[cut:].lower() == self.apex:
                        self.apex_ptr = struct.pack("!H", 0xC000 | (pos + cut))
                        self.apex_text = owner[cut:]
            self.last_owner = owner
            self.last_pos = pos
        rr = name + tail
        if pos + len(rr) > self.room and self.count:
            self._flush()
            self.add(owner, tail)
            return
        if pos + len(rr) > self.limit:
            # Alone in a message and still too big for 65535 octets with the
            # OPT and TSIG records: no transfer can carry it.
            raise RecordTooBig(owner, len(rr))
        self.parts.append(rr)
        self.pos = pos + len(rr)
        self.count += 1
        self.records += 1

    def _flush(self) -> None:
        first = not self.messages
        wire = (
            self.head
            + _COUNTS.pack(1 if first else 0, self.count, 0, 1 if self.opt else 0)
            + (self.question if first else b"")
            + b"".join(self.parts)
            + self.opt
        )
        if self.signer is not None:
            wire = self.signer.sign(wire)
        self.messages.append(wire)
        self._start()

    def finish(self) -> list[bytes]:
        if self.count or not self.messages:
            self._flush()
        return self.messages


def _client_soa(query: dns.message.Message) -> dns.rdtypes.ANY.SOA.SOA | None:
    """The SOA an IXFR query carries in its authority section (RFC 1995 §3)."""
    qname = query.question[0].name
    for rrset in query.authority:
        if rrset.rdtype == SOA and rrset.name == qname:
            soa = rrset[0]
            assert isinstance(soa, dns.rdtypes.ANY.SOA.SOA)
            return soa
    return None


def _soa_tail(zone: ZoneData) -> OwnedTail:
    return _owned(zone.soa_record())


def _owned(record: Record) -> OwnedTail:
    owner, rdtype, ttl, rdata = record
    return owner, rr_tail(rdtype, ttl, rdata)


def _zone_tails(zone: ZoneData) -> Iterator[OwnedTail]:
    """Every record but the apex SOA, straight from the zone's wire form.

    Each stored RRset is its records as `C0 0C` + tail (see zonedata), so a
    single-record RRset needs only the pointer cut off.
    """
    apex = zone.apex
    case = zone.case
    for low, node in zone.nodes.items():
        owner = case.get(low, low)
        for rdtype, (count, wire) in node.items():
            if rdtype == SOA and low == apex:
                continue
            if count == 1:
                yield owner, wire[2:]
            else:
                for tail in tails(wire):
                    yield owner, tail


def _owner_text(owner: bytes) -> str:
    try:
        return dns.name.from_wire(owner, 0)[0].to_text()
    except Exception:  # noqa: BLE001 - only for the log line
        return repr(owner)


def _key_text(key: dns.name.Name | None) -> str:
    return f" (TSIG {key})" if key is not None else ""


__all__ = ["MESSAGE_SIZE", "TransferAcl", "TransferProcessor"]
