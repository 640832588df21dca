"""The hmac TSIG path for UPDATEs gives dnspython's replies and effects, byte for byte.

Two servers of the same zone, one with the fast path and one without (the
reference: dnspython parses, verifies and signs), get the same bytes: a
generated corpus of signed UPDATEs (every prerequisite kind, every rcode,
every algorithm, keys unknown or without grant, bad and truncated MACs, time
skew, TSIG errors, EDNS, unsigned). Every reply must be the same bytes, and
at the end both journals and zones the same.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update
import pytest
from zonetext import records_from_text

from ddns_server import config, dnsmsg, update, wireupdate
from ddns_server.config import PolicyRule
from ddns_server.dnsmsg import DnsHandler
from ddns_server.journal import Journal
from ddns_server.query import QueryEngine
from ddns_server.store import Store
from ddns_server.tsigfast import FastTsig
from ddns_server.tsigwire import append_tsig, tsig_rdata
from ddns_server.update_handler import UpdateProcessor

ORIGIN = dns.name.from_text("example.test.")
ZONE = """
$TTL 300
@       SOA   ns1 hostmaster 100 3600 600 86400 60
@       NS    ns1
ns1     A     192.0.2.1
www     A     192.0.2.10
www     A     192.0.2.11
www     TXT   "hello"
alias   CNAME www
"""
# The handlers' clock (BADTIME is decided on it): fixed during a test, so both
# servers decide alike, and set when each test starts, so a test that runs
# minutes after collection (the whole suite) still signs within the fudge.
_NOW = [float(int(time.time()))]


def clock() -> float:
    return _NOW[0]


@pytest.fixture(autouse=True)
def _fresh_clock() -> None:
    _NOW[0] = float(int(time.time()))


SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
ALGORITHMS = [
    dns.tsig.HMAC_MD5,
    dns.tsig.HMAC_SHA1,
    dns.tsig.HMAC_SHA224,
    dns.tsig.HMAC_SHA256,
    dns.tsig.HMAC_SHA384,
    dns.tsig.HMAC_SHA512,
    dns.tsig.HMAC_SHA256_128,  # not taken by the fast path: dnspython's
]


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text, ORIGIN)


KEYS = {
    n(f"k{i}"): dns.tsig.Key(n(f"k{i}"), SECRET, algorithm)
    for i, algorithm in enumerate(ALGORITHMS)
}
KEYS[n("nogrant")] = dns.tsig.Key(n("nogrant"), SECRET, dns.tsig.HMAC_SHA256)
RULES = tuple(PolicyRule(name, "zonesub", None, None) for name in KEYS if name != n("nogrant"))
UNKNOWN = dns.tsig.Key(n("unknown"), SECRET, dns.tsig.HMAC_SHA256)


@dataclass
class Served:
    store: Store
    handler: DnsHandler


def serve(path: Path, fast: bool, wire: bool = True) -> Served:
    store = Store(Journal(path), clock=clock)
    store.open_zone(ORIGIN, records_from_text(ZONE, ORIGIN, "test"))
    handler = DnsHandler(QueryEngine(store.zones), dict(KEYS), clock=clock)
    handler.updates = UpdateProcessor(store, [config.Zone(ORIGIN, None, RULES)])
    if not fast:
        handler.fast_tsig = None
    handler.wire_updates = wire
    return Served(store, handler)


@pytest.fixture(params=["wire", "hmac-only"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    """The fast path (sections read from the wire, or TSIG only) and the reference."""
    fast = serve(tmp_path / "fast.sqlite3", True, request.param == "wire")
    reference = serve(tmp_path / "reference.sqlite3", False)
    yield fast, reference
    fast.store.journal.close()
    reference.store.journal.close()


@pytest.fixture
def wire_taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each call of the wire reader took the message (False: dnspython's)."""
    taken: list[bool] = []

    def read(data: bytes) -> object:
        parsed = wireupdate.read_update(data)
        taken.append(parsed is not None)
        return parsed

    monkeypatch.setattr(dnsmsg, "read_update", read)
    return taken


NAMES = ["www", "new", "alias", "ns1", "gone", "@", "a.b", "WWW", "Mail.Sub"]
# rdata of every type the wire reader takes (names in them compressed by dnspython)
RDATA = [
    ("A", "192.0.2.10"),
    ("AAAA", "2001:db8::1"),
    ("TXT", '"hello"'),
    ("TXT", '"a" "b c" ""'),
    ("MX", "10 www"),
    ("MX", "20 Mail.Example.Test."),
    ("NS", "ns1"),
    ("PTR", "www.example.test."),
    ("SRV", "0 5 5060 www"),
    ("CNAME", "WWW"),
    ("CAA", '0 issue "ca.example"'),  # not taken: dnspython's
]


def _update(rng: random.Random) -> dns.update.UpdateMessage:
    zone = rng.choice(["example.test.", "example.test.", "example.test.", "other.test."])
    message = dns.update.UpdateMessage(zone)
    message.id = rng.randrange(65536)
    for _ in range(rng.randrange(3)):  # prerequisites, every kind of RFC 2136 §2.4
        name = n(rng.choice(NAMES))
        kind = rng.randrange(5)
        if kind == 0:
            message.present(name)
        elif kind == 1:
            message.absent(name)
        elif kind == 2:
            message.present(name, rng.choice(["A", "TXT", "MX"]))
        elif kind == 3:
            message.absent(name, rng.choice(["A", "TXT"]))
        elif rng.random() < 0.5:
            message.present(name, "A", rng.choice(["192.0.2.10", "192.0.2.99"]))
        else:
            message.present(name, *rng.choice(RDATA))
    for _ in range(rng.randrange(1, 4)):  # updates, every kind of §2.5
        name = n(rng.choice(NAMES))
        kind = rng.randrange(8)
        if kind == 0:
            message.add(name, 60, "A", f"192.0.2.{rng.randrange(1, 255)}")
        elif kind == 1:
            message.add(name, 60, "TXT", f'"t{rng.randrange(9)}"')
        elif kind == 2:
            message.delete(name, "A")
        elif kind == 3:
            message.delete(name)
        elif kind == 4:
            message.delete(name, "A", "192.0.2.10")
        elif kind == 5:
            message.add(name, 60, "CNAME", "www")
        elif kind == 6:
            message.add(name, rng.choice([60, 0, 2**31 + 5]), *rng.choice(RDATA))
        else:
            message.delete(name, *rng.choice(RDATA))
    if rng.random() < 0.2:
        message.use_edns(0, 0, 1232)
    if rng.random() < 0.03:
        message.use_edns(1)  # BADVERS
    return message


def _signed(rng: random.Random, message: dns.update.UpdateMessage) -> bytes:
    """The message's bytes, signed (or not, or badly) as the case says."""
    wire = message.to_wire()
    roll = rng.random()
    if roll < 0.05:
        return wire  # unsigned
    key = UNKNOWN if roll < 0.08 else KEYS[rng.choice(list(KEYS))]
    now = int(clock())
    skew = rng.choice([0] * 12 + [-10_000, 10_000, 299, -299])
    fudge = 300
    error = dns.rcode.BADSIG if rng.random() < 0.03 else 0
    rdata = tsig_rdata(key.algorithm, now + skew, fudge, message.id, error)
    signed, _ = dns.tsig.sign(wire, key, rdata, now + skew)
    tamper = rng.random()
    if tamper < 0.06:
        mac = bytearray(signed.mac)
        mac[rng.randrange(len(mac))] ^= 0x01
        signed = signed.replace(mac=bytes(mac))
    elif tamper < 0.1:
        signed = signed.replace(mac=signed.mac[: rng.choice([1, 8, 10, 16])])
    elif tamper < 0.12:
        signed = signed.replace(original_id=(message.id + 1) % 65536)
    keyname = key.name
    if rng.random() < 0.2:
        keyname = dns.name.from_text(key.name.to_text().upper())  # the case is the sender's
    return append_tsig(wire, keyname, signed)


@pytest.mark.parametrize("seed", range(4))
def test_fast_and_reference_paths_agree(
    pair: tuple[Served, Served], seed: int, wire_taken: list[bool]
) -> None:
    fast, reference = pair
    rng = random.Random(seed)
    rcodes: set[int] = set()
    verifier = fast.handler.fast_tsig
    assert verifier is not None
    taken = []

    def check(data: bytes, keyring: dict[dns.name.Name, dns.tsig.Key]) -> object:
        checked = FastTsig.check(verifier, data, keyring)
        taken.append(checked is not None)
        return checked

    verifier.check = check  # type: ignore[method-assign,assignment]
    for _ in range(150):
        data = _signed(rng, _update(rng))
        tcp = rng.random() < 0.2
        got = fast.handler.handle_full(data, ("127.0.0.1", 5300), tcp)
        want = reference.handler.handle_full(data, ("127.0.0.1", 5300), tcp)
        assert got == want, data.hex()
        if want:
            rcodes.add(want[0][3] & 0x0F)
    zone_fast = fast.store.zone_for(ORIGIN)
    zone_ref = reference.store.zone_for(ORIGIN)
    assert zone_fast is not None and zone_ref is not None
    assert zone_fast.record_set() == zone_ref.record_set()
    assert zone_fast.serial == zone_ref.serial
    assert fast.store.journal.versions("example.test.", 1000) == reference.store.journal.versions(
        "example.test.", 1000
    )
    # most requests take the fast path; the others show dnspython's answers are kept
    assert 0.5 * len(taken) < sum(taken) < len(taken)
    if fast.handler.wire_updates:  # and most of those have their sections read from the wire
        assert 0.6 * len(wire_taken) < sum(wire_taken) < len(wire_taken)
    else:
        assert not wire_taken
    # the corpus reaches the rcodes it is meant to
    assert {dns.rcode.NOERROR, dns.rcode.NOTAUTH, dns.rcode.REFUSED} <= rcodes
    assert rcodes & {dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN, dns.rcode.NXRRSET, dns.rcode.YXRRSET}


def test_fast_path_takes_the_common_case() -> None:
    fast = FastTsig()
    keyring = dict(KEYS)
    for name, key in KEYS.items():
        message = dns.update.UpdateMessage("example.test.")
        message.add(n("x"), 60, "A", "192.0.2.1")
        message.use_tsig(keyring, name, algorithm=key.algorithm)
        # signed once: each to_wire() signs at the time it runs (a second may pass)
        wire = message.to_wire()
        parsed = fast.verify(wire, keyring)
        if key.algorithm == dns.tsig.HMAC_SHA256_128:
            assert parsed is None  # dnspython's
            continue
        assert parsed is not None and parsed.had_tsig and parsed.keyname == name
        reference = dns.message.from_wire(wire, keyring=keyring)
        assert parsed == reference
        assert parsed.mac == reference.mac and parsed.keyring is reference.keyring


def test_fast_signature_is_dnspythons() -> None:
    fast = FastTsig()
    keyring = dict(KEYS)
    wire = bytes.fromhex("1234a800000100000000000000000600 01".replace(" ", ""))
    for key in KEYS.values():
        entry = fast.entry(keyring, key)
        if key.algorithm == dns.tsig.HMAC_SHA256_128:
            assert entry is None
            continue
        assert entry is not None
        request_mac = bytes(range(entry.size))
        got = fast.sign_reply(wire, entry, key.name, request_mac, 1_700_000_000, 300)
        rdata = tsig_rdata(key.algorithm, 0, 300, 0x1234, 0)
        signed, _ = dns.tsig.sign(wire, key, rdata, 1_700_000_000, request_mac)
        assert got == append_tsig(wire, key.name, signed)
    assert fast.entry(keyring, dns.tsig.Key(n("k3"), SECRET, dns.tsig.HMAC_SHA256)) is None


def _mutated(rng: random.Random, wire: bytes) -> bytes:
    """The message with its sections damaged as a fuzzer would (header kept an UPDATE)."""
    data = bytearray(wire)
    for _ in range(rng.randrange(1, 4)):
        if len(data) <= 12:
            break
        roll = rng.random()
        at = rng.randrange(12, len(data))
        if roll < 0.45:
            data[at] = rng.randrange(256)
        elif roll < 0.6:
            data[at] = rng.choice([0x00, 0x3F, 0x40, 0xC0, 0xFF])
        elif roll < 0.7:
            del data[at:]
        elif roll < 0.8:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        elif roll < 0.9 and at + 1 < len(data):  # a compression pointer anywhere
            target = rng.randrange(len(data))
            data[at : at + 2] = bytes((0xC0 | target >> 8, target & 0xFF))
        else:
            data[rng.choice([5, 7, 9])] = rng.randrange(4)  # the section counts
    data[2] = 0x28 | (data[2] & 0x07)  # opcode UPDATE, a request
    return bytes(data)


@pytest.mark.parametrize("seed", range(3))
def test_mutated_updates_get_the_reference_reply(
    pair: tuple[Served, Served], seed: int, wire_taken: list[bool]
) -> None:
    """Damaged sections under a valid MAC: the wire reader takes what it reads
    exactly as dnspython does and hands the rest to it, so both give the same
    bytes, journal and zone (the MAC is made over the damaged message, so it
    is the sections' parsing that is tried, not the TSIG check)."""
    fast, reference = pair
    rng = random.Random(1000 + seed)
    key = KEYS[n("k3")]  # HMAC-SHA256, granted
    for _ in range(250):
        message = _update(rng)
        message.use_edns(False)
        data = _mutated(rng, message.to_wire())
        now = int(clock())
        rdata = tsig_rdata(key.algorithm, now, 300, 0, 0)
        signed, _ = dns.tsig.sign(data, key, rdata, now)
        data = append_tsig(data, key.name, signed)
        tcp = rng.random() < 0.2
        got = fast.handler.handle(data, ("127.0.0.1", 5300), tcp)
        want = reference.handler.handle(data, ("127.0.0.1", 5300), tcp)
        assert got == want, data.hex()
    zone_fast = fast.store.zone_for(ORIGIN)
    zone_ref = reference.store.zone_for(ORIGIN)
    assert zone_fast is not None and zone_ref is not None
    assert zone_fast.record_set() == zone_ref.record_set()
    assert fast.store.journal.versions("example.test.", 1000) == reference.store.journal.versions(
        "example.test.", 1000
    )
    if fast.handler.wire_updates:  # both kinds happen: read from the wire, and handed over
        assert 0 < sum(wire_taken) < len(wire_taken)


def test_wire_reader_reads_what_dnspython_reads() -> None:
    """The light form from the wire equals the one from dnspython's message."""
    rng = random.Random(7)
    read = 0
    for _ in range(300):
        message = _update(rng)
        message.use_edns(False)
        wire = message.to_wire()
        parsed = wireupdate.read_update(wire)
        if parsed is None:
            continue
        read += 1
        reference = dns.message.from_wire(wire)
        assert isinstance(reference, dns.update.UpdateMessage)
        assert parsed == update.from_message(reference), wire.hex()
    assert read > 200


def _agrees_with_dnspython(wire: bytes) -> bool:
    """The wire reader gives dnspython's light form, or hands the message over."""
    parsed = wireupdate.read_update(wire)
    try:
        reference = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - dnspython refuses it: so must the reader
        return parsed is None
    assert isinstance(reference, dns.update.UpdateMessage)
    return parsed is None or parsed == update.from_message(reference)


def test_wire_reader_every_compression_pointer_target() -> None:
    """Each compression pointer of a few messages sent to every offset:
    forwards, to itself, into a label, into the header, chains, overlaps."""
    message = dns.update.UpdateMessage("example.test.")
    message.present(n("www"), "MX", "10 mail.example.test.")
    message.add(n("Mail.Sub"), 60, "MX", "10 www.example.test.")
    message.add(n("www"), 60, "SRV", "0 5 5060 mail.sub.example.test.")
    message.delete(n("www"), "NS", "ns1.example.test.")
    base = message.to_wire()
    pointers = [i for i in range(12, len(base) - 1) if base[i] >= 0xC0]
    assert len(pointers) >= 5
    taken = 0
    for at in pointers:
        for target in range(len(base)):
            data = bytearray(base)
            data[at : at + 2] = bytes((0xC0 | target >> 8, target & 0xFF))
            assert _agrees_with_dnspython(bytes(data)), (at, target)
            taken += wireupdate.read_update(bytes(data)) is not None
    assert taken > len(pointers)  # some pointers elsewhere are fine for both


def _reference_name(data: bytes, pos: int, limit: int | None = None) -> tuple[bytes, int] | None:
    """dnspython's rules, one label and pointer at a time (the reader before
    it remembered pointer targets): the name, where it ends; None: refused."""
    labels = []
    size = 1
    end = -1
    biggest = start = pos
    stop = len(data) if limit is None else limit
    hops = 0
    while True:
        if pos >= stop:
            return None
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length >= 0xC0:
            if pos + 2 > stop:
                return None
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end < 0:
                end = pos + 2
            hops += 1
            if target >= biggest or hops > 16:
                return None
            biggest = pos = target
            stop = start
            start = target
            continue
        if length > 63 or pos + 1 + length > stop:
            return None
        labels.append(data[pos : pos + length + 1])
        size += length + 1
        if size > 255:
            return None
        pos += length + 1
    return b"".join(labels) + b"\x00", end if end >= 0 else pos


def test_wire_names_read_with_remembered_pointers_match_the_rules() -> None:
    """The reader remembers what each pointer target holds (one message's
    names share them): over random buffers of labels, pointers (chains,
    loops, forwards, long names) and limits, every name is read exactly as
    the rules read it one step at a time, or refused alike."""
    rng = random.Random(99)
    agreed = read = pointed = 0
    for _ in range(3000):
        data = bytearray(rng.randbytes(rng.randrange(4)))
        starts: list[int] = []  # where labels start: the targets a pointer usually has
        while len(data) < rng.randrange(8, 600):  # names as a message holds them
            for _ in range(rng.choice([0, 1, 1, 2, 4, 40])):
                length = rng.choice([1, 3, 10, 63, 64, rng.randrange(64)])
                starts.append(len(data))
                data += bytes([length]) + bytes(rng.randrange(97, 123) for _ in range(length))
            roll = rng.random()
            if roll < 0.6 and starts:
                target = rng.choice(starts) if rng.random() < 0.9 else rng.randrange(len(data) + 4)
                data += bytes((0xC0 | target >> 8, target & 0xFF))
            elif roll < 0.95:
                data += b"\x00"
            else:
                data += rng.randbytes(rng.randrange(1, 4))  # junk
        data = bytes(data)
        memo: dict[int, tuple[bytes, int, int]] = {}  # shared by every name read, as in a message
        for _ in range(20):
            pos = rng.choice(starts) if starts and rng.random() < 0.8 else rng.randrange(len(data))
            limit = rng.choice([None, rng.randrange(pos, len(data) + 1)])
            want = _reference_name(data, pos, limit)
            try:
                got: tuple[bytes, int] | None = wireupdate._name(data, pos, memo, limit)
            except (wireupdate._Bad, IndexError):
                got = None
            assert got == want, (data.hex(), pos, limit)
            agreed += 1
            read += want is not None
            pointed += want is not None and len(want[0]) > want[1] - pos  # decompressed
    assert agreed == 60000 and read > 3000 and pointed > 300  # read, through pointers, refused


def _label(length: int) -> bytes:
    return bytes([length]) + b"x" * length


def test_wire_names_at_the_limits_of_the_rules() -> None:
    """The edges random buffers seldom reach, each side of each: 16 and 17
    pointers in a chain, 255 and 256 octets through a pointer, and a name
    whose target's first part ends one octet too late (inside the name)."""
    cases: list[tuple[bytes, int]] = []
    chain = bytearray(b"\x00")  # a chain of pointers: each name points to the one before
    start = 0
    for _ in range(18):
        here = len(chain)
        chain += _label(1) + bytes((0xC0 | start >> 8, start & 0xFF))
        cases.append((bytes(chain), here))
        start = here
    for total in (254, 255, 256, 257):
        first = _label(63) * 3 + b"\x00"  # 193 octets
        rest = total - len(first)  # the pointing name's own labels
        second = (_label(rest - 1) if rest > 1 else b"") + b"\xc0\x00"
        cases.append((first + second, len(first)))
    # target at 5 ("a" then a pointer to the root at 2): its first part ends at 9,
    # one octet after the name that points to it starts (8): refused; at 9: read
    # (at 8, the pointer's second octet 0x02 is the length of the label "bc")
    late = b"\x00" * 5 + _label(1) + b"\xc0\x02" + b"bc\xc0\x05"
    fine = b"\x00" * 5 + _label(1) + b"\xc0\x02" + b"\x02bc\xc0\x05"
    cases += [(late, 8), (fine, 9)]
    outcomes = []
    for data, pos in cases:
        want = _reference_name(data, pos)
        try:
            got: tuple[bytes, int] | None = wireupdate._name(data, pos, {})
        except wireupdate._Bad:
            got = None
        assert got == want, (data.hex(), pos)
        outcomes.append(want is not None)
    # chains of 1..16 pointers read, 17 and 18 refused; 254 and 255 octets read;
    # the late target refused, the one that ends in time read
    assert outcomes == [True] * 16 + [False] * 2 + [True, True, False, False, False, True]
