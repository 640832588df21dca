"""TSIG checked and signed with the standard library's hmac (RFC 8945 §4.3, §5.3).

dnspython's TSIG work is half the cost of parsing a signed UPDATE, and
signing the answer costs as much again: it builds rdata objects and contexts
around the few hmac calls. Here the common case is done on the bytes
themselves: one TSIG, last in the additional section, of a known key, with
its algorithm, an HMAC-MD5/SHA1/SHA2 MAC of full length, no error, and a time
within the fudge. Anything else (and every failure: a bad MAC, a time out of
the fudge, an unknown key or algorithm, a truncated MAC) returns None, and
the caller takes dnspython's path, which stays the reference and gives every
error answer. tests/unit/test_tsigfast.py compares both paths' replies and
effects over a generated corpus.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig

_TSIG = 250
_ANY = 255
_HASHES: dict[dns.name.Name, Callable[..., object]] = {
    dns.tsig.HMAC_MD5: hashlib.md5,
    dns.tsig.HMAC_SHA1: hashlib.sha1,
    dns.tsig.HMAC_SHA224: hashlib.sha224,
    dns.tsig.HMAC_SHA256: hashlib.sha256,
    dns.tsig.HMAC_SHA384: hashlib.sha384,
    dns.tsig.HMAC_SHA512: hashlib.sha512,
}
_U16 = struct.Struct("!H")
_RR = struct.Struct("!HHIH")
_TIMES = struct.Struct("!HIHH")  # time signed (48 bits), fudge, MAC size
_TAIL = struct.Struct("!HHH")  # original id, error, other length
_CLASS_TTL = struct.Struct("!HI").pack(_ANY, 0)


@dataclass(frozen=True, slots=True)
class Verified:
    """A request whose TSIG MAC verified: its bytes without the TSIG, and the TSIG."""

    stripped: bytes  # the request without its TSIG, ARCOUNT - 1 (what the MAC covers)
    entry: _Key
    owner: bytes  # key name, wire as sent (case kept)
    algorithm: bytes  # algorithm name, wire as sent
    time_signed: int
    fudge: int
    mac: bytes
    original_id: int
    error: int
    other: bytes


@dataclass(frozen=True, slots=True)
class _Key:
    key: dns.tsig.Key
    digestmod: Callable[..., object]
    size: int  # MAC octets
    name_digest: bytes  # key name, canonical wire
    algorithm_digest: bytes  # algorithm name, canonical wire
    algorithm_wire: bytes  # as dnspython writes it in our TSIG records


def _key_entry(key: dns.tsig.Key) -> _Key | None:
    digestmod = _HASHES.get(key.algorithm)
    if digestmod is None or not isinstance(key.secret, bytes):
        return None
    algorithm_wire = key.algorithm.to_wire()
    assert algorithm_wire is not None
    return _Key(
        key,
        digestmod,
        digestmod().digest_size,  # type: ignore[attr-defined]
        key.name.to_digestable(),
        key.algorithm.to_digestable(),
        algorithm_wire,
    )


class FastTsig:
    """The keyring by lower-cased wire name, rebuilt when the keyring changes."""

    def __init__(self) -> None:
        self._keyring: object = None
        self._keys: dict[bytes, _Key] = {}
        self._names: dict[bytes, dns.name.Name] = {}

    def _name(self, wire: bytes) -> dns.name.Name:
        """A key's or algorithm's name as written (case kept), parsed once.

        Only names of keys whose MAC verified get here: a handful; the
        memo is emptied should it ever grow.
        """
        name = self._names.get(wire)
        if name is None:
            if len(self._names) >= 256:
                self._names.clear()
            name = self._names[wire] = dns.name.from_wire(wire, 0)[0]
        return name

    def _entries(self, keyring: Mapping[dns.name.Name, dns.tsig.Key]) -> dict[bytes, _Key]:
        if keyring is not self._keyring:
            keys = {}
            for name, key in keyring.items():
                entry = _key_entry(key)
                if entry is not None and key.name == name:
                    keys[name.to_digestable()] = entry
            self._keys = keys
            self._keyring = keyring
        return self._keys

    def entry(
        self, keyring: Mapping[dns.name.Name, dns.tsig.Key], key: dns.tsig.Key
    ) -> _Key | None:
        """The fast signer of `key` (None: sign with dnspython)."""
        entry = self._entries(keyring).get(key.name.to_digestable())
        return entry if entry is not None and entry.key is key else None

    def verify(
        self, data: bytes, keyring: Mapping[dns.name.Name, dns.tsig.Key]
    ) -> dns.message.Message | None:
        """The request parsed, its TSIG verified; None: take dnspython's path."""
        checked = self.check(data, keyring)
        return self.message(checked) if checked is not None else None

    def check(self, data: bytes, keyring: Mapping[dns.name.Name, dns.tsig.Key]) -> Verified | None:
        """The request's TSIG verified on the bytes; None: take dnspython's path."""
        try:
            return self._check(data, keyring)
        except (IndexError, struct.error, ValueError):
            return None

    def key_name(self, checked: Verified) -> dns.name.Name:
        """The key name as the request wrote it (dnspython's `Message.keyname`)."""
        return self._name(checked.owner)

    def _check(self, data: bytes, keyring: Mapping[dns.name.Name, dns.tsig.Key]) -> Verified | None:
        qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", data, 4)
        if arcount == 0:
            return None
        pos = 12
        for _ in range(qdcount):
            pos = _skip_name(data, pos) + 4
        start = pos
        for _ in range(ancount + nscount + arcount):
            start = pos
            pos = _skip_name(data, pos)
            rdtype = (data[pos] << 8) | data[pos + 1]
            if rdtype == _TSIG and pos + 10 + _U16.unpack_from(data, pos + 8)[0] != len(data):
                return None  # a TSIG not last: dnspython's error
            pos += 10 + _U16.unpack_from(data, pos + 8)[0]
        if pos != len(data) or rdtype != _TSIG:
            return None
        tsig_start = start
        owner, owner_end = _read_name(data, tsig_start)
        entry = self._entries(keyring).get(owner.lower())
        if entry is None:
            return None
        _type, rdclass, ttl, rdlen = _RR.unpack_from(data, owner_end)
        rdata_start = owner_end + 10
        algorithm, algorithm_end = _read_name(data, rdata_start)
        if rdclass != _ANY or ttl != 0 or algorithm.lower() != entry.algorithm_digest:
            return None
        high, low, fudge, mac_size = _TIMES.unpack_from(data, algorithm_end)
        mac_start = algorithm_end + 10
        mac = data[mac_start : mac_start + mac_size]
        original_id, error, other_size = _TAIL.unpack_from(data, mac_start + mac_size)
        other_start = mac_start + mac_size + 6
        if other_start + other_size != len(data) or rdata_start + rdlen != len(data):
            return None
        time_signed = (high << 32) | low
        if error or mac_size != entry.size or abs(time_signed - int(time.time())) > fudge:
            return None
        stripped = data[:10] + _U16.pack(arcount - 1) + data[12:tsig_start]
        digest = hmac.new(entry.key.secret, digestmod=entry.digestmod)  # type: ignore[arg-type]
        digest.update(_U16.pack(original_id))
        digest.update(stripped[2:])
        digest.update(entry.name_digest)
        digest.update(_CLASS_TTL)
        digest.update(entry.algorithm_digest)
        digest.update(data[algorithm_end : algorithm_end + 8])  # time signed, fudge
        digest.update(data[mac_start + mac_size + 2 :])  # error, other length, other
        if not hmac.compare_digest(digest.digest(), mac):
            return None
        return Verified(
            stripped,
            entry,
            owner,
            algorithm,
            time_signed,
            fudge,
            mac,
            original_id,
            error,
            data[other_start:],
        )

    def message(self, checked: Verified) -> dns.message.Message | None:
        """dnspython's parse of a verified request, with the TSIG it would hold."""
        try:
            query = dns.message.from_wire(checked.stripped)
        except Exception:  # noqa: BLE001 - dnspython's own path answers it
            return None
        rd = dns.rdtypes.ANY.TSIG.TSIG(
            dns.rdataclass.ANY,
            dns.rdatatype.TSIG,
            self._name(checked.algorithm),
            checked.time_signed,
            checked.fudge,
            checked.mac,
            checked.original_id,
            checked.error,
            checked.other,
        )
        query.keyring = checked.entry.key
        query.tsig = dns.rrset.from_rdata(self._name(checked.owner), 0, rd)
        return query

    def sign_reply(
        self,
        wire: bytes,
        entry: _Key,
        keyname: dns.name.Name,
        request_mac: bytes,
        now: int,
        fudge: int,
    ) -> bytes:
        """`wire` signed as dnspython's `dns.tsig.sign` + `append_tsig` do:
        the request MAC first, error 0, no other data (RFC 8945 §5.3)."""
        original_id = wire[0:2]
        times = struct.pack("!HIH", (now >> 32) & 0xFFFF, now & 0xFFFFFFFF, fudge)
        digest = hmac.new(entry.key.secret, digestmod=entry.digestmod)  # type: ignore[arg-type]
        digest.update(_U16.pack(len(request_mac)) + request_mac)
        digest.update(wire)  # the id is the original id: ours is the request's
        digest.update(entry.name_digest + _CLASS_TTL + entry.algorithm_digest + times)
        digest.update(b"\x00\x00\x00\x00")  # error, other length
        mac = digest.digest()
        rdata = (
            entry.algorithm_wire
            + times
            + _U16.pack(len(mac))
            + mac
            + original_id
            + b"\x00\x00\x00\x00"
        )
        owner = keyname.to_wire()
        assert owner is not None
        arcount = _U16.unpack_from(wire, 10)[0] + 1
        return (
            wire[:10]
            + _U16.pack(arcount)
            + wire[12:]
            + owner
            + _RR.pack(_TSIG, _ANY, 0, len(rdata))
            + rdata
        )


def _skip_name(data: bytes, pos: int) -> int:
    """Where the (possibly compressed) name at `pos` ends; IndexError past the end."""
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length >= 0xC0:
            return pos + 2
        if length > 63:
            raise ValueError("bad label")
        pos += length + 1


def _read_name(data: bytes, pos: int) -> tuple[bytes, int]:
    """The name at `pos` uncompressed (wire, case kept) and where it ends there.

    dnspython compresses the TSIG owner; pointers must point backwards
    (RFC 1035 §4.1.4, as dnspython checks). ValueError: a bad name.
    """
    labels = []
    end = -1
    size = 0
    while True:
        length = data[pos]
        if length == 0:
            break
        if length >= 0xC0:
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= pos:
                raise ValueError("bad pointer")
            pos = target
            continue
        if length > 63:
            raise ValueError("bad label")
        labels.append(data[pos : pos + length + 1])
        size += length + 1
        if size > 254:
            raise ValueError("name too long")
        pos += length + 1
    return b"".join(labels) + b"\x00", end if end >= 0 else pos + 1
