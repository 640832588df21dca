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

from ddns_server import config
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
NOW = float(int(time.time()))  # the handlers' clock: BADTIME is decided on it
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


def serve(path: Path, fast: bool) -> Served:
    store = Store(Journal(path), clock=lambda: NOW)
    store.open_zone(ORIGIN, records_from_text(ZONE, ORIGIN, "test"))
    handler = DnsHandler(QueryEngine(store.zones), dict(KEYS), clock=lambda: NOW)
    handler.updates = UpdateProcessor(store, [config.Zone(ORIGIN, None, RULES)])
    if not fast:
        handler.fast_tsig = None
    return Served(store, handler)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    fast = serve(tmp_path / "fast.sqlite3", True)
    reference = serve(tmp_path / "reference.sqlite3", False)
    yield fast, reference
    fast.store.journal.close()
    reference.store.journal.close()


NAMES = ["www", "new", "alias", "ns1", "gone", "@", "a.b", "WWW"]


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
        else:
            message.present(name, "A", rng.choice(["192.0.2.10", "192.0.2.99"]))
    for _ in range(rng.randrange(1, 4)):  # updates, every kind of §2.5
        name = n(rng.choice(NAMES))
        kind = rng.randrange(6)
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
        else:
            message.add(name, 60, "CNAME", "www")
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
    now = int(time.time())
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
def test_fast_and_reference_paths_agree(pair: tuple[Served, Served], seed: int) -> None:
    fast, reference = pair
    rng = random.Random(seed)
    rcodes: set[int] = set()
    verifier = fast.handler.fast_tsig
    assert verifier is not None
    taken = []

    def verify(data: bytes, keyring: dict[dns.name.Name, dns.tsig.Key]) -> object:
        parsed = FastTsig.verify(verifier, data, keyring)
        taken.append(parsed is not None)
        return parsed

    verifier.verify = verify  # type: ignore[method-assign,assignment]
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
        parsed = fast.verify(message.to_wire(), keyring)
        if key.algorithm == dns.tsig.HMAC_SHA256_128:
            assert parsed is None  # dnspython's
            continue
        assert parsed is not None and parsed.had_tsig and parsed.keyname == name
        reference = dns.message.from_wire(message.to_wire(), keyring=keyring)
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
