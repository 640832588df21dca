"""A fast reader for the common forms of RFC 1035 master files.

dnspython reads a 100,000-record zone file in 10-15 s; most zone files use a
handful of forms that a few string operations per line turn straight into
the wire records the journal and the in-memory zone keep. This reader takes
exactly those forms: one record per line or parentheses over several lines,
comments, `$ORIGIN` and `$TTL`, `@`, relative and absolute names, an omitted
owner, TTLs with units, class IN or none, and the types A, AAAA, NS, CNAME,
PTR, MX, SRV, TXT, SOA and CAA, in plain ASCII without escapes.

Anything else (another directive, type or class, an escape, a quoted string
over lines, a record outside the zone, CNAME beside other data, a second
SOA or CNAME, a missing SOA or NS at the apex, any error at all) makes
`read_records` answer None, and the caller hands the whole file to dnspython:
it stays the reference and the one that reports errors ("FILE:LINE: ...").
The records come out in dnspython's order (owners in order of first
appearance, RRsets in order of last addition, records deduplicated as
dnspython compares them, an RRset's TTL the smallest given), so both readers
give the same zone byte for byte; tests/unit/test_masterfile.py compares them
over a corpus.
"""

from __future__ import annotations

import gc
import re
import socket
import struct
from socket import AF_INET

import dns.exception
import dns.ipv6
import dns.ttl

from ddns_server.zonedata import Record

# dnspython's tokenizer: a quoted string, a parenthesis, a comment, or a run
# of other characters up to a delimiter (space, tab, ; ( ) ").
_TOKEN = re.compile(r'"[^"\n]*"|[()]|;[^\n]*|[^\s;()"]+|"')

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, CAA = 1, 2, 5, 6, 12, 15, 16, 28, 33, 257
_TYPES = {
    "A": A,
    "NS": NS,
    "CNAME": CNAME,
    "SOA": SOA,
    "PTR": PTR,
    "MX": MX,
    "TXT": TXT,
    "AAAA": AAAA,
    "SRV": SRV,
    "CAA": CAA,
}
# Characters dnspython's tokenizer may treat otherwise than str.split does.
_ODD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\\]")
_NAME_TYPES = {NS: 1, CNAME: 1, PTR: 1, MX: 2, SRV: 4, SOA: 7}
_U16 = struct.Struct("!H")
_SRV = struct.Struct("!HHH")
_SOA_TIMES = struct.Struct("!IIIII")


class _Unusual(Exception):
    """A form this reader leaves to dnspython."""


def _name(text: str, origin: bytes) -> bytes:
    """Wire form (case kept) of a name token relative to `origin`."""
    if "." not in text and text != "@":
        size = len(text)
        if size > 63 or size + len(origin) > 254:
            raise _Unusual
        return bytes((size,)) + text.encode() + origin
    if text == "@":
        return origin
    if text == ".":
        return b"\x00"
    absolute = text.endswith(".")
    if absolute:
        text = text[:-1]
    labels = text.split(".")
    wire = b"".join(bytes((len(label),)) + label.encode() for label in labels)
    for label in labels:
        if not 0 < len(label) < 64:
            raise _Unusual
    wire += b"\x00" if absolute else origin
    if len(wire) > 255:
        raise _Unusual
    return wire


def _int(text: str, limit: int) -> int:
    if not text.isdigit():
        raise _Unusual
    value = int(text)
    if value > limit:
        raise _Unusual
    return value


def _bare(token: str) -> str:
    """A token that must not be a quoted string (names, numbers)."""
    if token[0] == '"':
        raise _Unusual
    return token


def _string(token: str) -> bytes:
    """A <character-string>: quoted or not, at most 255 octets."""
    if token[0] == '"':
        token = token[1:-1]
    data = token.encode()
    if len(data) > 255:
        raise _Unusual
    return data


def _in_zone(low: bytes, apex: bytes) -> bool:
    if not low.endswith(apex):
        return False
    cut = len(low) - len(apex)
    pos = 0
    while pos < cut:
        pos += low[pos] + 1
    return pos == cut


def read_records(text: str, apex: bytes) -> list[Record] | None:
    """The zone's records, or None when dnspython must read this text.

    `apex` is the zone's origin in wire form.
    """
    if not text.isascii() or _ODD.search(text):
        return None
    # Nothing read here forms a cycle: the collector would only walk the
    # growing zone again and again (a third of the time).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _Reader(apex).read(text)
    except (_Unusual, ValueError, OSError, dns.exception.DNSException):
        return None
    finally:
        if enabled:
            gc.enable()


class _Reader:
    def __init__(self, apex: bytes) -> None:
        self.apex = apex
        self.apex_low = apex.lower()
        self.origin = apex
        self.origin_in_zone = True
        self.last_name = apex
        self.last_ttl = 0
        self.last_ttl_known = False
        self.default_ttl = 0
        self.default_ttl_known = False
        self.default_ttl_from_soa = False
        # lower-cased owner -> (owner as first written, {rdtype: [ttl, {key: rdata}]})
        self.nodes: dict[bytes, tuple[bytes, dict[int, list[object]]]] = {}
        self.ttls: dict[str, int | None] = {}

    def read(self, text: str) -> list[Record]:
        findall = _TOKEN.findall
        pending: list[str] = []
        leading = False
        depth = 0
        line_tokens = self._line
        nodes = self.nodes
        ttls = self.ttls
        inet_pton = socket.inet_pton
        for line in text.split("\n"):
            if depth == 0:
                if not line or line[0] == ";":
                    continue
                if '"' not in line and ";" not in line and "(" not in line and ")" not in line:
                    tokens = line.split()
                    # _line's first case, `label TTL A address`, inline: no call
                    # per line for the bulk of a large zone (the same steps).
                    if len(tokens) == 4 and tokens[2] == "A" and line[0] not in " \t":
                        label, ttl_text, _type, address = tokens
                        ttl = ttls.get(ttl_text)  # a TTL seen before
                        if (
                            ttl is not None
                            and self.origin_in_zone
                            and "." not in label
                            and label[0] not in '$@"'
                            and len(label) < 64
                        ):
                            owner = bytes((len(label),)) + label.encode() + self.origin
                            if len(owner) <= 255:
                                rdata = inet_pton(AF_INET, address)
                                self.last_name = owner
                                self.last_ttl = ttl
                                self.last_ttl_known = True
                                low = owner.lower()
                                if low not in nodes:  # a new owner: _add in one step
                                    nodes[low] = (owner, {A: [ttl, {rdata: rdata}]})
                                else:
                                    self._add(owner, A, ttl, rdata, rdata)
                                continue
                    if tokens:
                        line_tokens(tokens, line[0] in " \t")
                    continue
                tokens = findall(line)
                leading = line[0] in " \t"
            else:
                tokens = findall(line)
            for token in tokens:
                first = token[0]
                if first == ";":
                    continue
                if first == "(":
                    depth += 1
                elif first == ")":
                    depth -= 1
                    if depth < 0:
                        raise _Unusual
                elif token == '"':
                    raise _Unusual  # a quoted string running over the line
                else:
                    pending.append(token)
            if depth == 0 and pending:
                self._line(pending, leading)
                pending = []
        if depth or pending:
            raise _Unusual
        return self._records()

    def _ttl(self, token: str) -> int | None:
        """The TTL a token denotes, or None when it is not a TTL."""
        ttls = self.ttls
        if token in ttls:
            return ttls[token]
        try:
            value: int | None = dns.ttl.from_text(token) if token[0] != '"' else None
        except dns.ttl.BadTTL:
            value = None
        ttls[token] = value
        return value

    def _implicit_ttl(self) -> int | None:
        # dnspython's Reader._implicit_ttl (RFC 2308 mode, its default)
        if self.last_ttl_known and (not self.default_ttl_known or self.default_ttl_from_soa):
            return self.last_ttl
        if self.default_ttl_known:
            return self.default_ttl
        return None

    def _line(self, tokens: list[str], leading: bool) -> None:
        # The most common line of all, `label TTL A address`, in a few steps;
        # the general code below gives the same (tests/unit/test_masterfile.py).
        if not leading and len(tokens) == 4 and tokens[2] == "A" and self.origin_in_zone:
            label, ttl_text, _type, address = tokens
            ttl = self.ttls.get(ttl_text)  # a TTL seen before
            if ttl is not None and "." not in label and label[0] not in '$@"' and len(label) < 64:
                owner = bytes((len(label),)) + label.encode() + self.origin
                if len(owner) <= 255:
                    rdata = socket.inet_pton(socket.AF_INET, address)
                    self.last_name = owner
                    self.last_ttl = ttl
                    self.last_ttl_known = True
                    low = owner.lower()
                    if low not in self.nodes:  # a new owner: what _add does, in one step
                        self.nodes[low] = (owner, {A: [ttl, {rdata: rdata}]})
                    else:
                        self._add(owner, A, ttl, rdata, rdata)
                    return
        pos = 0
        if not leading:
            owner_text = _bare(tokens[0])
            if owner_text[0] == "$":
                self._directive(tokens)
                return
            owner = _name(owner_text, self.origin)
            # a relative name is under $ORIGIN: in the zone when $ORIGIN is
            if (owner_text[-1] == "." or not self.origin_in_zone) and not _in_zone(
                owner.lower(), self.apex_low
            ):
                raise _Unusual  # dnspython skips such lines; let it
            self.last_name = owner
            pos = 1
        elif tokens[0][0] == "$":
            raise _Unusual
        else:
            owner = self.last_name
            if not _in_zone(owner.lower(), self.apex_low):
                raise _Unusual
        n = len(tokens)
        # [ttl] [class] [ttl] type, as dnspython's Reader._rr_line
        if pos >= n:
            raise _Unusual
        ttl = self._ttl(tokens[pos])
        if ttl is not None:
            self.last_ttl = ttl
            self.last_ttl_known = True
            pos += 1
        if pos < n and tokens[pos].upper() == "IN":
            pos += 1
        if ttl is None and pos < n:
            ttl = self._ttl(tokens[pos])
            if ttl is not None:
                self.last_ttl = ttl
                self.last_ttl_known = True
                pos += 1
            else:
                ttl = self._implicit_ttl()
        if pos >= n:
            raise _Unusual
        rdtype = _TYPES.get(tokens[pos].upper())
        if rdtype is None:
            raise _Unusual  # another type, class or a syntax error
        rdata, key = self._rdata(rdtype, tokens, pos + 1)
        if rdtype == SOA:
            if owner.lower() != self.apex_low:
                raise _Unusual
            if not self.default_ttl_known:
                self.default_ttl = _SOA_TIMES.unpack_from(rdata, len(rdata) - 20)[4]
                self.default_ttl_known = True
                self.default_ttl_from_soa = True
                if ttl is None:
                    ttl = self._implicit_ttl()
        if ttl is None:
            raise _Unusual
        self._add(owner, rdtype, ttl, rdata, key)

    def _directive(self, tokens: list[str]) -> None:
        word = tokens[0].upper()
        if len(tokens) != 2:
            raise _Unusual
        if word == "$TTL":
            self.default_ttl = dns.ttl.from_text(_bare(tokens[1]))
            self.default_ttl_known = True
            self.default_ttl_from_soa = False
        elif word == "$ORIGIN":
            self.origin = _name(_bare(tokens[1]), self.origin)
            self.origin_in_zone = _in_zone(self.origin.lower(), self.apex_low)
        else:
            raise _Unusual  # $INCLUDE, $GENERATE, ...

    def _rdata(self, rdtype: int, tokens: list[str], pos: int) -> tuple[bytes, bytes]:
        """(rdata wire, dnspython's comparison key) of the record's data."""
        args = tokens[pos:]
        wanted = _NAME_TYPES.get(rdtype)
        if rdtype == TXT:
            if not args:
                raise _Unusual
            wire = b""
            for arg in args:
                data = _string(arg)
                wire += bytes((len(data),)) + data
            return wire, wire
        if rdtype == A or rdtype == AAAA:
            if len(args) != 1:
                raise _Unusual
            if rdtype == A:
                # glibc's inet_pton takes exactly dnspython's dotted quads
                # (four decimal parts, no leading zeros): a test checks.
                wire = socket.inet_pton(socket.AF_INET, _bare(args[0]))
            else:
                wire = dns.ipv6.inet_aton(_bare(args[0]))
            return wire, wire
        if rdtype == CAA:
            if len(args) != 3:
                raise _Unusual
            flags = _int(_bare(args[0]), 255)
            tag = _string(args[1])
            if not tag.isalnum():
                raise _Unusual
            wire = bytes((flags, len(tag))) + tag + _string(args[2])
            return wire, wire
        if wanted is None or len(args) != wanted:
            raise _Unusual
        origin = self.origin
        if rdtype == MX:
            head = _U16.pack(_int(_bare(args[0]), 0xFFFF))
            name = _name(_bare(args[1]), origin)
            return head + name, head + name.lower()
        if rdtype == SRV:
            head = _SRV.pack(*(_int(_bare(a), 0xFFFF) for a in args[:3]))
            name = _name(_bare(args[3]), origin)
            return head + name, head + name.lower()
        if rdtype == SOA:
            mname = _name(_bare(args[0]), origin)
            rname = _name(_bare(args[1]), origin)
            times = _SOA_TIMES.pack(
                _int(_bare(args[2]), 0xFFFFFFFF),
                *(dns.ttl.from_text(_bare(a)) for a in args[3:]),
            )
            return mname + rname + times, mname.lower() + rname.lower() + times
        name = _name(_bare(args[0]), origin)  # NS, CNAME, PTR
        return name, name.lower()

    def _add(self, owner: bytes, rdtype: int, ttl: int, rdata: bytes, key: bytes) -> None:
        low = owner.lower()
        node = self.nodes.get(low)
        if node is None:
            node = self.nodes[low] = (owner, {})
        rdatasets = node[1]
        # dnspython replaces the whole RRset on every addition: it moves last.
        rds = rdatasets.pop(rdtype, None)
        if rds is None:
            if rdatasets and (rdtype == CNAME or CNAME in rdatasets):
                raise _Unusual  # CNAME and other data: dnspython's error
            rds = [ttl, {key: rdata}]
        else:
            if rdtype == SOA or rdtype == CNAME:
                raise _Unusual  # a singleton given twice: dnspython keeps the last
            if ttl < rds[0]:  # type: ignore[operator]
                rds[0] = ttl
            datas = rds[1]
            if key not in datas:  # type: ignore[operator]
                datas[key] = rdata  # type: ignore[index]
        rdatasets[rdtype] = rds

    def _records(self) -> list[Record]:
        apex = self.nodes.get(self.apex_low)
        if apex is None or SOA not in apex[1] or NS not in apex[1]:
            raise _Unusual  # dnspython's NoSOA / NoNS
        return [
            (owner, rdtype, ttl, rdata)  # type: ignore[misc]
            for owner, rdatasets in self.nodes.values()
            for rdtype, (ttl, datas) in rdatasets.items()
            for rdata in datas.values()  # type: ignore[attr-defined]
        ]
