"""An UPDATE's sections read straight from the wire, for the common case.

dnspython's generic parse of a signed UPDATE's sections (name objects,
rdata objects, RRsets) was a third of the time per update. This reads the
zone, prerequisite and update sections of a message whose TSIG tsigfast.py
has already checked into update.py's light form (ParsedUpdate), with the
owner names decompressed and the rdata kept as wire (its names
decompressed): what dnspython's objects give back with `to_wire()`.

Only the forms it knows exactly are taken: one zone RR of type SOA, class
IN; RRs of class IN (and NONE in the update section) with rdata of type A,
AAAA, TXT, MX, NS, CNAME, PTR or SRV; RRs of class ANY (and NONE among the
prerequisites) without rdata; no additional section. Anything else (another
type, class or section, a malformed name, pointer or rdata, trailing bytes)
returns None and the message takes dnspython's path, which is the
reference: tests/unit/test_tsigfast.py compares both paths' replies,
journals and zones over a generated corpus and mutated messages.
"""

from __future__ import annotations

import struct

import dns.name

from ddns_server.update import ParsedUpdate, UpdateRR

_HEADER = struct.Struct("!HHHH")
_RR = struct.Struct("!HHIH")
_IN, _NONE, _ANY = 1, 254, 255
_SOA, _OPT, _TSIG = 6, 41, 250
# rdata of fixed size, no names: taken as is
_FIXED = {1: 4, 28: 16}  # A, AAAA
_TXT = 16
# rdata = a fixed prefix and one domain name (which may be compressed)
_NAME_AFTER = {2: 0, 5: 0, 12: 0, 15: 2, 33: 6}  # NS, CNAME, PTR, MX, SRV


# pointer target -> what _pointed() read there (per message)
_Memo = dict[int, tuple[bytes, int, int]]


class _Bad(Exception):
    """A form this reader does not take: dnspython's path answers it."""


def read_update(data: bytes) -> ParsedUpdate | None:
    """The sections of an UPDATE (without its TSIG); None: use dnspython."""
    try:
        return _read(data)
    except (_Bad, IndexError, struct.error, ValueError):
        return None


def _read(data: bytes) -> ParsedUpdate:
    qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data, 4)
    if qdcount != 1 or arcount != 0:
        raise _Bad
    memo: _Memo = {}
    wire, pos = _name(data, 12, memo)
    rdtype, rdclass = struct.unpack_from("!HH", data, pos)
    if rdtype != _SOA or rdclass != _IN:
        raise _Bad
    zone = [(_as_name(wire), rdtype, rdclass)]
    pos += 4
    prerequisites, pos = _section(data, pos, ancount, True, memo)
    updates, pos = _section(data, pos, nscount, False, memo)
    if pos != len(data):
        raise _Bad  # trailing bytes
    return ParsedUpdate(zone, prerequisites, updates)


def _section(
    data: bytes, pos: int, count: int, prereq: bool, memo: _Memo
) -> tuple[list[UpdateRR], int]:
    out = []
    for _ in range(count):
        wire, pos = _name(data, pos, memo)
        rdtype, rdclass, ttl, rdlen = _RR.unpack_from(data, pos)
        pos += 10
        end = pos + rdlen
        if end > len(data) or rdtype in (_OPT, _TSIG):
            raise _Bad
        if rdclass == _ANY or (rdclass == _NONE and prereq):
            # dnspython: no rdata allowed (FORMERR otherwise)
            if rdlen:
                raise _Bad
            rdata = None
        elif rdclass == _IN or rdclass == _NONE:
            rdata = _rdata(data, pos, end, rdtype, memo)
        else:
            raise _Bad
        # the owner as wire: no Name per RR (update.py compares wire; issue 14, item 9)
        out.append(UpdateRR(wire, wire.lower(), rdclass, rdtype, ttl, rdata))
        pos = end
    return out, pos


def _rdata(data: bytes, pos: int, end: int, rdtype: int, memo: _Memo) -> bytes:
    """The rdata at data[pos:end] as dnspython would write it again."""
    size = _FIXED.get(rdtype)
    if size is not None:
        if end - pos != size:
            raise _Bad
        return data[pos:end]
    if rdtype == _TXT:
        at = pos
        if at == end:
            raise _Bad  # dnspython: no strings
        while at < end:
            at += data[at] + 1
        if at != end:
            raise _Bad
        return data[pos:end]
    prefix = _NAME_AFTER.get(rdtype)
    if prefix is None or end - pos < prefix + 1:
        raise _Bad
    wire, after = _name(data, pos + prefix, memo, end)
    if after != end:
        raise _Bad
    return data[pos : pos + prefix] + wire


def _name(data: bytes, pos: int, memo: _Memo, limit: int | None = None) -> tuple[bytes, int]:
    """The name at `pos` uncompressed (case kept) and where it ends there.

    dnspython's rules (dns.name.from_wire_parser): labels of up to 63
    octets, a name of up to 255, each pointer strictly before the previous
    one (or the name's start), the name it points to wholly before the part
    that pointed to it, at most 16 pointers. `limit`: where the rdata ends.

    What a pointer leads to is read once per message (`memo`, by target):
    in a large UPDATE thousands of owners point to the same zone name.
    """
    stop = len(data) if limit is None else limit
    size = 1
    at = pos
    while True:
        if at >= stop:
            raise _Bad
        length = data[at]
        if length == 0:
            return data[pos : at + 1], at + 1
        if length >= 0xC0:
            if at + 2 > stop:
                raise _Bad
            target = ((length & 0x3F) << 8) | data[at + 1]
            if target >= pos:
                raise _Bad
            suffix = memo.get(target)
            if suffix is None:
                suffix = memo[target] = _pointed(data, target)
            wire, first_end, hops = suffix
            # What it points to ends before this name starts; with this
            # pointer, at most 16; the whole name at most 255 octets.
            if first_end > pos or hops >= 16 or size + len(wire) - 1 > 255:
                raise _Bad
            return data[pos:at] + wire, at + 2
        if length > 63 or at + 1 + length > stop:
            raise _Bad
        size += length + 1
        if size > 255:
            raise _Bad
        at += length + 1


def _pointed(data: bytes, pos: int) -> tuple[bytes, int, int]:
    """The name a pointer leads to, read on its own, for `_name`: its wire,
    where its first part ends (the caller checks that against its own
    start) and how many pointers it follows. A name `_name` would refuse
    with the pointer in front is refused here, or by the caller's checks."""
    labels = []
    size = 1
    end = -1
    biggest = start = pos
    stop = len(data)
    hops = 0
    while True:
        if pos >= stop:
            raise _Bad
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length >= 0xC0:
            if pos + 2 > stop:
                raise _Bad
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end < 0:
                end = pos + 2
            hops += 1
            if target >= biggest or hops > 16:
                raise _Bad
            biggest = pos = target
            stop = start  # the target must end before what pointed to it
            start = target
            continue
        if length > 63 or pos + 1 + length > stop:
            raise _Bad
        labels.append(data[pos : pos + length + 1])
        size += length + 1
        if size > 255:
            raise _Bad
        pos += length + 1
    return b"".join(labels) + b"\x00", end if end >= 0 else pos, hops


def _as_name(wire: bytes) -> dns.name.Name:
    """The Name of an uncompressed wire name _name() checked.

    Its labels read directly: a third of dns.name.from_wire's cost.
    """
    labels = []
    pos = 0
    while wire[pos]:
        end = pos + 1 + wire[pos]
        labels.append(wire[pos + 1 : end])
        pos = end
    labels.append(b"")
    return dns.name.Name(labels)
