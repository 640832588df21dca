"""A seeded mutation fuzzer for the DNS message path (issue 14, "Proof").

A corpus of valid messages (queries of many kinds, signed and unsigned
UPDATEs, AXFR/IXFR requests, NOTIFY, TSIG-signed queries) is mutated (bit
flips, byte changes, truncation, insertion, junk appended, header counts
changed, pieces of two messages spliced) and each result is sent through
the real DnsHandler.handle, over "UDP" and "TCP", with a real Store and
journal behind it. Half the mutated UPDATEs are then signed properly, so
the update code sees well-signed garbage, not only BADSIG.

Every case must hold:
* every reply parses with dnspython, fits its transport (65,535 octets over
  TCP, the advertised size over UDP), and answers the message's ID;
* nothing is logged with a traceback, and no internal error is counted;
* the zone is unchanged unless the message was a properly signed UPDATE
  that was answered NOERROR.

Used by tests/unit/test_fuzz.py (a few thousand cases) and scripts/fuzz.py
(`make fuzz`: as many as you like).
"""

from __future__ import annotations

import logging
import random
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig
import dns.update
from zonetext import records_from_text

from ddns_server import model
from ddns_server.dnsmsg import DnsHandler
from ddns_server.journal import Journal
from ddns_server.model import PolicyRule
from ddns_server.query import EDNS_PAYLOAD, QueryEngine
from ddns_server.store import Store
from ddns_server.update_handler import UpdateProcessor
from ddns_server.xfr import TransferProcessor
from ddns_server.zonedata import ZoneData

ORIGIN = dns.name.from_text("fuzz.test")
ADMIN = dns.tsig.Key("admin.fuzz.test.", b"a" * 32, dns.tsig.HMAC_SHA256)
HOST = dns.tsig.Key("host.fuzz.test.", b"h" * 32, dns.tsig.HMAC_SHA512)
KEYRING = {ADMIN.name: ADMIN, HOST.name: HOST}
RULES = (
    PolicyRule(ADMIN.name, "zonesub", None, None),
    PolicyRule(HOST.name, "name", dns.name.from_text("h.fuzz.test"), None),
)
SOURCE = ("127.0.0.1", 5300)
ZONE = """
$ORIGIN fuzz.test.
$TTL 300
@        SOA   ns1 hostmaster 1 3600 600 86400 60
@        NS    ns1
@        MX    10 mail
ns1      A     192.0.2.1
mail     A     192.0.2.2
www      A     192.0.2.10
www      AAAA  2001:db8::10
www      TXT   "hello" "world"
alias    CNAME www
loop1    CNAME loop2
loop2    CNAME loop1
*.wild   A     192.0.2.30
sub      NS    ns.sub
ns.sub   A     192.0.2.53
red      DNAME target
target   A     192.0.2.40
x.target A     192.0.2.41
srv      SRV   0 5 5060 www
"""

Record = tuple[bytes, int, int, bytes]


Sample = tuple[bytes, bytes, dns.tsig.Key | None]


def corpus() -> list[Sample]:
    """Valid messages: (wire, wire before signing, the key it was signed with)."""
    out: list[Sample] = []

    def add(message: dns.message.Message, key: dns.tsig.Key | None = None) -> None:
        plain = message.to_wire()
        wire = plain
        if key is not None:
            message.use_tsig({key.name: key}, key.name)
            wire = message.to_wire()
        assert wire is not None and plain is not None
        out.append((wire, plain, key))

    names = ["www", "alias", "nope", "a.wild", "x.red", "deep.x.red", "sub", "a.sub", "loop1", "@"]
    types = ["A", "AAAA", "MX", "TXT", "ANY", "NS", "SOA", "CNAME", "DNAME", "SRV", "DS"]
    for i, name in enumerate(names):
        qname = dns.name.from_text(name, ORIGIN)
        add(dns.message.make_query(qname, types[i % len(types)]))
        add(
            dns.message.make_query(qname, types[(i + 3) % len(types)], use_edns=0, want_dnssec=True)
        )
        add(dns.message.make_query(qname, types[(i + 5) % len(types)], use_edns=0, payload=4096))
    add(dns.message.make_query("other.test.", "A"))
    add(dns.message.make_query("www.fuzz.test.", "A"), ADMIN)
    add(dns.message.make_query("fuzz.test.", "AXFR"))
    add(dns.message.make_query("fuzz.test.", "AXFR"), ADMIN)
    ixfr = dns.message.make_query("fuzz.test.", "IXFR")
    ixfr.authority.append(
        dns.rrset.from_text("fuzz.test.", 0, "IN", "SOA", "ns1.fuzz.test. hm.fuzz.test. 1 1 1 1 1")
    )
    add(ixfr)
    notify = dns.message.make_query("fuzz.test.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    add(notify)
    for key in (ADMIN, HOST, None):
        update = dns.update.UpdateMessage(ORIGIN)
        update.add("h", 60, "A", "192.0.2.77")
        update.add("h", 60, "TXT", "fuzzed")
        update.delete("www", "AAAA")
        add(update, key)
        update = dns.update.UpdateMessage(ORIGIN)
        update.present("www")
        update.absent("free")
        update.replace("h", 120, "MX", "10 mail.fuzz.test.")
        update.add("h", 60, "CNAME", "www")
        update.delete("h", "A", "192.0.2.77")
        add(update, key)
    return out


@dataclass
class Stats:
    cases: int = 0
    replies: int = 0
    changes: int = 0
    rcodes: dict[str, int] = field(default_factory=dict)


class Failure(AssertionError):
    """A case that broke a rule; carries the message to reproduce it."""


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.bad.append(record.getMessage())


def mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """One to three random changes to `data`."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        choice = rng.randrange(9)
        if choice == 0 and out:
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif choice == 1 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif choice == 2 and out:
            del out[rng.randrange(len(out)) :]
        elif choice == 3:
            i = rng.randrange(len(out) + 1)
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 4:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif choice == 5 and len(out) >= 12:
            struct.pack_into("!H", out, 4 + 2 * rng.randrange(4), rng.choice([0, 1, 2, 0xFFFF]))
        elif choice == 6 and len(out) >= 4:
            out[2] = rng.randrange(256)
            out[3] = rng.randrange(256)
        elif choice == 7 and other:
            cut = rng.randrange(len(out) + 1)
            out = out[:cut] + other[rng.randrange(len(other)) :]
        elif choice == 8 and len(out) > 13:
            # a label length changed: compression pointers, long names, ...
            out[12] = rng.choice([0x3F, 0x40, 0xC0, 0xFF, 0x00, 0x01])
    return bytes(out)


def sign(wire: bytes, key: dns.tsig.Key) -> bytes:
    """Append a valid TSIG for `wire` (whatever it holds) signed with `key`."""
    if len(wire) < 12:
        return wire
    now = int(time.time())
    message_id = struct.unpack_from("!H", wire)[0]
    rdata = dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, now, 300, b"", message_id, 0, b""
    )
    signed, _ = dns.tsig.sign(wire, key, rdata, now, b"")
    rdata_wire = signed.to_wire()
    owner = key.name.to_wire()
    assert rdata_wire is not None and owner is not None
    out = bytearray(wire)
    out += owner + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata_wire))
    out += rdata_wire
    struct.pack_into("!H", out, 10, (struct.unpack_from("!H", out, 10)[0] + 1) & 0xFFFF)
    return bytes(out)


class Target:
    """The real handler, store and journal the fuzzer sends to."""

    def __init__(self, folder: Path) -> None:
        self.store = Store(Journal(folder / "journal.sqlite3"))
        self.store.open_zone(ORIGIN, records_from_text(ZONE, ORIGIN, "fuzz"))
        zone_config = model.Zone(ORIGIN, None, RULES, allow_transfer_networks=("127.0.0.0/8",))
        self.errors = 0
        self.handler = DnsHandler(
            QueryEngine(self.store.zones), dict(KEYRING), count_error=self._error
        )
        self.handler.updates = UpdateProcessor(self.store, [zone_config])
        self.handler.transfers = TransferProcessor(self.store, [zone_config])

    def _error(self) -> None:
        self.errors += 1

    @property
    def zone(self) -> ZoneData:
        zone = self.store.zone_for(ORIGIN)
        assert zone is not None
        return zone

    def close(self) -> None:
        self.store.journal.close()


def _authorized_update(data: bytes) -> bool:
    """Is `data` an UPDATE whose TSIG verifies (the only thing that may change the zone)?"""
    try:
        message = dns.message.from_wire(data, keyring=dict(KEYRING))
    except Exception:  # noqa: BLE001 - anything unparseable is not one
        return False
    return isinstance(message, dns.update.UpdateMessage) and message.had_tsig


def check_reply(data: bytes, reply: bytes, tcp: bool, index: int) -> str:
    """The reply's rcode name, or raise Failure."""
    if tcp and len(reply) > 65535:
        raise Failure(f"{len(reply)}-octet reply over TCP")
    if not tcp and len(reply) > max(EDNS_PAYLOAD, 512):
        raise Failure(f"{len(reply)}-octet reply over UDP")
    try:
        parsed = dns.message.from_wire(reply, keyring=False)
    except Exception as e:  # noqa: BLE001 - the rule under test
        raise Failure(f"reply does not parse: {type(e).__name__}: {e}") from None
    if index == 0 and reply[:2] != data[:2]:
        raise Failure("reply ID differs from the request's")
    return dns.rcode.to_text(parsed.rcode())


def run(
    cases: int,
    seed: int = 14,
    progress: Callable[[Stats], None] | None = None,
    folder: Path | None = None,
) -> Stats:
    """Fuzz `cases` mutated messages; raise Failure (with a reproducer) on the first bad one."""
    rng = random.Random(seed)
    messages = corpus()
    stats = Stats()
    recorder = _Recorder()
    root = logging.getLogger()
    root.addHandler(recorder)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        target = Target(Path(tmp))
        try:
            snapshot = target.zone.record_set()
            for case in range(cases):
                base, plain, key = rng.choice(messages)
                other = rng.choice(messages)[0]
                if key is not None and rng.random() < 0.5:
                    data = sign(mutate(rng, plain, other), key)
                else:
                    data = mutate(rng, base, other)
                tcp = rng.random() < 0.5
                stats.cases += 1
                try:
                    replies = target.handler.handle(data, SOURCE, tcp)
                    for i, reply in enumerate(replies):
                        rcode = check_reply(data, reply, tcp, i)
                        stats.replies += 1
                        stats.rcodes[rcode] = stats.rcodes.get(rcode, 0) + 1
                    if recorder.bad:
                        raise Failure(f"traceback logged: {recorder.bad[0]}")
                    if target.errors:
                        raise Failure("an internal error was counted")
                    now = target.zone.record_set()
                    if now != snapshot:
                        ok = (
                            _authorized_update(data)
                            and replies
                            and dns.message.from_wire(replies[0], keyring=False).rcode() == 0
                        )
                        if not ok:
                            raise Failure("the zone changed without an authorized update")
                        stats.changes += 1
                        snapshot = now
                except Failure as e:
                    raise Failure(
                        f"case {case} (seed {seed}, {'tcp' if tcp else 'udp'}): {e}\n"
                        f"message: {data.hex()}"
                    ) from None
                if progress is not None and case % 10000 == 9999:
                    progress(stats)
        finally:
            target.close()
            root.removeHandler(recorder)
            root.setLevel(old_level)
    return stats


__all__ = ["run", "Stats", "Failure", "corpus", "mutate"]
