"""Authoritative answers to standard queries, straight from ZoneData wire.

Two entry points share one resolver and one renderer:

* `QueryEngine.answer(data, udp_limit)` parses a plain query by hand (header,
  one question, at most an OPT record) and returns the response wire, or None
  when the message is not a plain query (TSIG, other opcodes, odd counts,
  compression in the question, ...); the caller then takes the full dnspython
  path in `ddns_server.dnsmsg`.
* `QueryEngine.answer_parsed(...)` answers a question that dnspython parsed;
  the full path uses it so both give the same bytes (a test checks this over a
  whole zone).

Answers follow BIND with `minimal-responses yes`: positive answers carry only
the answer section; negative answers carry the SOA (RFC 2308, TTL = min(SOA
TTL, SOA minimum)); referrals carry the NS RRset and in-zone glue. ANY is
answered with every RRset of the name (RFC 8482 allows either). No
compression inside rdata; owners point at the question where they can.
"""

from __future__ import annotations

import struct

from ddns_server.zonedata import (
    CNAME,
    DNAME,
    NS,
    QNAME_POINTER,
    RRsetWire,
    ZoneData,
    find_zone,
    is_subdomain,
    parent,
    tails,
)

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
YXDOMAIN = 6

TYPE_A = 1
TYPE_AAAA = 28
TYPE_OPT = 41
TYPE_DS = 43
TYPE_TKEY = 249
TYPE_ANY = 255

CLASS_IN = 1

# The largest DNS message: TCP frames it with a 16-bit length.
TCP_MAX = 65535

# Our advertised EDNS UDP payload size, and the largest UDP answer we send
# (BIND's default max-udp-size and edns-udp-size since 9.16: 1232).
EDNS_PAYLOAD = 1232
# BIND's max-restarts (11): a query follows at most 12 CNAMEs, then SERVFAIL.
MAX_CHAIN = 12

# Remembered answers per zone (see QueryEngine.answer); cleared on every change.
ANSWER_CACHE_SIZE = 20000

_COUNTS = struct.Struct("!HHHH")
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0
_OPT_PLAIN = b"\x00\x00\x29" + struct.pack("!H", EDNS_PAYLOAD) + b"\x00\x00\x00\x00\x00\x00"
_OPT_DO = b"\x00\x00\x29" + struct.pack("!H", EDNS_PAYLOAD) + b"\x00\x00\x80\x00\x00\x00"
# BADVERS is extended rcode 16: 1 in the OPT's upper eight bits, 0 in the header.
_OPT_BADVERS = b"\x00\x00\x29" + struct.pack("!H", EDNS_PAYLOAD) + b"\x01\x00\x00\x00\x00\x00"
_OPT_BADVERS_DO = b"\x00\x00\x29" + struct.pack("!H", EDNS_PAYLOAD) + b"\x01\x00\x80\x00\x00\x00"

# (owner lower-cased wire, count, RRsetWire bytes); owner None = the qname.
Item = tuple[bytes | None, int, bytes]


class QueryAnswer:
    """The sections of one answer, before rendering."""

    __slots__ = ("rcode", "aa", "answer", "authority", "additional")

    def __init__(self, rcode: int = NOERROR, aa: bool = True) -> None:
        self.rcode = rcode
        self.aa = aa
        self.answer: list[Item] = []
        self.authority: list[Item] = []
        self.additional: list[Item] = []


# Flags and counts of a positive answer (the header after the ID), by
# RD | CD | answer count << 8 | OPT length >> 2 (0 or 2): a few dozen shapes in practice.
_HEADS: dict[int, bytes] = {}


def _head(flags1: int, flags2: int, count: int, opt: bytes) -> bytes:
    """The flags and counts of a positive answer with `count` records, remembered."""
    head = bytes((0x84 | (flags1 & 0x01), flags2 & 0x10)) + _COUNTS.pack(
        1, count, 0, 1 if opt else 0
    )
    if len(_HEADS) < 4096:
        _HEADS[(flags1 & 0x01) | (flags2 & 0x10) | (count << 8) | (len(opt) >> 2)] = head
    return head


class QueryEngine:
    """Answers queries from the served zones (a dict shared with the store)."""

    def __init__(self, zones: dict[bytes, ZoneData]) -> None:
        # apex (lower-cased wire) -> ZoneData; the store adds and swaps entries.
        self.zones = zones

    # -- the hot path ---------------------------------------------------------

    def answer(self, data: bytes, udp: bool) -> bytes | None:
        """Response wire for a plain query, or None to take the full path.

        Returns None for anything this parser does not cover: the full path
        then gives the answer (or the error) instead.
        """
        response = self.hit(data, udp)
        return response if response is not None else self.walk(data, udp)

    def hit(self, data: bytes, udp: bool, counts: dict[int, int] | None = None) -> bytes | None:
        """The common answers, or None: a query without EDNS options whose
        name holds the type with nothing in the way, or (UDP) one that `walk`
        answered before and remembered. `walk` answers everything else.

        The labels are not walked: the name is taken to end at the first zero
        octet, which is known to be right once the name is found among the
        zone's owners (every owner is a well-formed name, and the walk reads
        the same length octets), or else checked before a remembered answer
        is used. `counts` (query type << 4 | rcode -> answers; the UDP read
        loop's metrics) is bumped for each answer given.
        """
        n = len(data)
        end = data.find(0, 12)
        qend = end + 5
        if (
            n < 17
            or data[2] & 0xF8
            or data[4:10] != _ONE_QUESTION
            or end < 13
            or qend > n
            or data[end + 3 : qend] != b"\x00\x01"
        ):
            return None
        if n == qend:
            if data[11] or data[10]:
                return None
            opt = b""
            limit = 512
        elif (
            n == qend + 11
            and data[10] == 0
            and data[11] == 1
            and data[qend : qend + 3] == b"\x00\x00\x29"
            and not (data[qend + 6] or data[qend + 9] or data[qend + 10])
        ):
            # an OPT record without options, EDNS version 0
            opt = _OPT_DO if data[qend + 7] & 0x80 else _OPT_PLAIN
            limit = (data[qend + 3] << 8) | data[qend + 4]
            limit = EDNS_PAYLOAD if limit > EDNS_PAYLOAD else (512 if limit < 512 else limit)
        else:
            return None
        qtype = (data[end + 1] << 8) | data[end + 2]
        if TYPE_TKEY <= qtype < TYPE_ANY or qtype == TYPE_OPT:
            return None  # meta-types: see walk
        zones = self.zones
        qname = data[12 : end + 1].lower()
        zone = zones.get(qname)
        if zone is None:
            pos = 0  # find_zone, inline
            while pos < end - 12:
                pos += qname[pos] + 1
                zone = zones.get(qname[pos:])
                if zone is not None:
                    break
            else:
                return None
        node = zone.nodes.get(qname)
        if node is not None:
            rrset = node.get(qtype)
            if (
                rrset is not None
                and qend + len(rrset[1]) + len(opt) <= (limit if udp else TCP_MAX)
                and qname not in zone.occluded
            ):
                head = _HEADS.get(
                    (data[2] & 0x01) | (data[3] & 0x10) | (rrset[0] << 8) | (len(opt) >> 2)
                )
                if head is None:
                    head = _head(data[2], data[3], rrset[0], opt)
                if counts is not None:
                    counts[qtype << 4] = counts.get(qtype << 4, 0) + 1
                return data[0:2] + head + data[12:qend] + rrset[1] + opt
        elif not _well_formed(qname):
            return None  # the first zero octet was inside a label: walk reads it
        if not udp:
            return None
        # NXDOMAIN, NODATA, chains, referrals...: walk's remembered answer, if any
        cached = zone.answers.get(data[2:])
        if cached is None:
            return None
        if counts is not None:
            key = (qtype << 4) | (cached[1] & 0x0F)
            counts[key] = counts.get(key, 0) + 1
        return data[0:2] + cached

    def walk(self, data: bytes, udp: bool) -> bytes | None:
        """`answer` for what `hit` does not take: the labels walked one by one."""
        n = len(data)
        if n < 17 or data[2] & 0xF8 or data[4:10] != _ONE_QUESTION:
            return None
        pos = 12
        try:
            length = data[pos]
            while length:
                if length > 63:
                    return None
                pos += length + 1
                length = data[pos]
        except IndexError:
            return None
        pos += 1
        if pos - 12 > 255:
            # RFC 1035 §3.1: a name is at most 255 octets. The full path
            # (dnspython) cannot parse it: FORMERR without a question, and
            # the same bytes here (issue 14: never NXDOMAIN/REFUSED echoing it).
            return bare_error(data, FORMERR)
        qend = pos + 4
        if qend > n:
            return None
        if data[pos + 2 : qend] != b"\x00\x01":
            return None
        qtype = (data[pos] << 8) | data[pos + 1]
        arcount = (data[10] << 8) | data[11]
        if arcount == 0:
            if qend != n:
                return None
            opt = b""
            limit = 512
        elif arcount == 1:
            # A root-owned OPT record, and nothing after it.
            if n < qend + 11 or data[qend : qend + 3] != b"\x00\x00\x29":
                return None
            if qend + 11 + ((data[qend + 9] << 8) | data[qend + 10]) != n:
                return None
            if data[qend + 6]:
                # RFC 6891 §6.1.3: BADVERS for an EDNS version we do not speak.
                return render_badvers(data[0:4], data[12:qend], data[qend + 7] & 0x80 != 0)
            limit = udp_limit((data[qend + 3] << 8) | data[qend + 4])
            opt = _OPT_DO if data[qend + 7] & 0x80 else _OPT_PLAIN
        else:
            return None
        # Meta-types (TKEY, TSIG, IXFR, AXFR, MAILB, MAILA; OPT) take the full
        # path; ANY and data types above 255 (CAA, URI, ...) are answered here.
        if TYPE_TKEY <= qtype < TYPE_ANY or qtype == TYPE_OPT:
            return None
        qname = data[12:pos].lower()
        zone = find_zone(self.zones, qname)
        if zone is None:
            return render(data, data[12:qend], QueryAnswer(REFUSED, aa=False), opt, udp, limit)
        # Common case: the name holds the type and no delegation is in the way.
        node = zone.nodes.get(qname)
        if node is not None:
            rrset = node.get(qtype)
            if rrset is not None and qname not in zone.occluded:
                body = data[12:qend] + rrset[1] + opt
                if len(body) + 12 <= (limit if udp else TCP_MAX):
                    return (
                        data[0:2]
                        + bytes((0x84 | (data[2] & 0x01), data[3] & 0x10))
                        + _COUNTS.pack(1, rrset[0], 0, 1 if opt else 0)
                        + body
                    )
        # Everything else (NXDOMAIN, NODATA, CNAME chains, wildcards,
        # referrals) is resolved once per zone version and remembered: the
        # answer depends only on the query minus its ID.
        if udp:
            cached = zone.answers.get(data[2:])
            if cached is not None:
                return data[0:2] + cached
        response = render(data, data[12:qend], resolve(zone, qname, qtype), opt, udp, limit)
        if udp and (arcount == 0 or n == qend + 11):  # no EDNS options (cookies vary)
            answers = zone.answers
            if len(answers) >= ANSWER_CACHE_SIZE:
                answers.clear()
            answers[data[2:]] = response[2:]
        return response

    def answer_question(
        self, head: bytes, question: bytes, opt: bytes, udp: bool, limit: int
    ) -> bytes:
        """Answer a question the caller parsed (the full path).

        `head` is the query's first four bytes (ID and flags), `question` the
        question's wire (name, type, class), `opt` our OPT record or b"".
        """
        qname = question[:-4].lower()
        qtype = (question[-4] << 8) | question[-3]
        zone = find_zone(self.zones, qname)
        if zone is None:
            return render(head, question, QueryAnswer(REFUSED, aa=False), opt, udp, limit)
        return render(head, question, resolve(zone, qname, qtype), opt, udp, limit)


def _well_formed(name: bytes) -> bool:
    """True when wire `name` is labels of at most 63 octets ending with its last octet (0)."""
    n = len(name)
    if n > 255:
        return False
    pos = 0
    length = name[0]
    while length:
        if length > 63:
            return False
        pos += length + 1
        if pos >= n:
            return False
        length = name[pos]
    return pos == n - 1


def bare_error(data: bytes, rcode: int) -> bytes:
    """An error answer with no sections, for a message that cannot be parsed.

    Like BIND: the query's ID and opcode, QR set, RD copied, counts zero.
    """
    flags1 = 0x80 | (data[2] & 0x79)
    return data[0:2] + bytes((flags1, rcode & 0x0F)) + b"\x00" * 8


def opt_record(do: bool) -> bytes:
    """Our OPT record: payload 1232, version 0, DO echoed."""
    return _OPT_DO if do else _OPT_PLAIN


def udp_limit(payload: int | None) -> int:
    """The largest UDP answer for a client's advertised payload (None: no EDNS)."""
    if payload is None:
        return 512
    return EDNS_PAYLOAD if payload > EDNS_PAYLOAD else (512 if payload < 512 else payload)


def render_badvers(head: bytes, question: bytes, do: bool = False) -> bytes:
    """RFC 6891 §6.1.3: BADVERS, with our OPT saying version 0 (DO echoed, as BIND does)."""
    flags = bytes((0x80 | (head[2] & 0x01), head[3] & 0x10))
    opt = _OPT_BADVERS_DO if do else _OPT_BADVERS
    return head[0:2] + flags + _COUNTS.pack(1, 0, 0, 1) + question + opt


def render(
    head: bytes, question: bytes, ans: QueryAnswer, opt: bytes, udp: bool, limit: int
) -> bytes:
    """Header + echoed question + sections + OPT, truncated for UDP."""
    flags1 = 0x80 | (0x04 if ans.aa else 0) | (head[2] & 0x01)
    flags2 = (head[3] & 0x10) | ans.rcode
    writer = _Writer(question[:-4])
    an = writer.section(ans.answer)
    ns = writer.section(ans.authority)
    ar = writer.section(ans.additional)
    body = b"".join(writer.parts)
    total = 12 + len(question) + len(body) + len(opt)
    if not udp and total > TCP_MAX:
        # Cannot fit one TCP message (update limits keep RRsets far smaller;
        # a zone file may not): SERVFAIL with the question, as BIND answers
        # when rendering fails, never an exception.
        return (
            head[0:2]
            + bytes((0x80 | (head[2] & 0x01), (head[3] & 0x10) | SERVFAIL))
            + _COUNTS.pack(1, 0, 0, 1 if opt else 0)
            + question
            + opt
        )
    if udp and total > limit:
        # RFC 2181 §9: set TC and the client retries over TCP. We send the
        # question (and OPT) only; BIND would fill in the RRsets that fit.
        return (
            head[0:2]
            + bytes((flags1 | 0x02, flags2))
            + _COUNTS.pack(1, 0, 0, 1 if opt else 0)
            + question
            + opt
        )
    return (
        head[0:2]
        + bytes((flags1, flags2))
        + _COUNTS.pack(1, an, ns, ar + (1 if opt else 0))
        + question
        + body
        + opt
    )


class _Writer:
    """Writes owner names with pointers to names already in the message."""

    __slots__ = ("parts", "offset", "names", "_qname")

    def __init__(self, qname: bytes) -> None:
        self.parts: list[bytes] = []
        self.offset = 12 + len(qname) + 4
        # Every suffix of the question name is already on the wire.
        names: dict[bytes, int] = {}
        low = qname.lower()
        pos = 0
        while low[pos]:
            names[low[pos:]] = 12 + pos
            pos += low[pos] + 1
        self.names = names
        self._qname = low

    def section(self, items: list[Item]) -> int:
        count = 0
        for owner, n, wire in items:
            count += n
            if owner is None or owner == self._qname:
                self.parts.append(wire)
                self.offset += len(wire)
                continue
            pointer = self._owner(owner)
            for tail in tails(wire):
                self.parts.append(pointer + tail)
                self.offset += len(pointer) + len(tail)
                if len(pointer) > 2:
                    pointer = self._owner(owner)
        return count

    def _owner(self, owner: bytes) -> bytes:
        """A pointer to `owner` (or to its longest known suffix)."""
        names = self.names
        pos = 0
        while owner[pos]:
            at = names.get(owner[pos:])
            if at is not None:
                head = owner[:pos]
                self._remember(owner, pos)
                return head + bytes((0xC0 | (at >> 8), at & 0xFF))
            pos += owner[pos] + 1
        self._remember(owner, pos)
        return owner

    def _remember(self, owner: bytes, upto: int) -> None:
        pos = 0
        while pos < upto and self.offset + pos < 0x3FFF:
            self.names.setdefault(owner[pos:], self.offset + pos)
            pos += owner[pos] + 1


# -- the resolver: RFC 1034 §4.3.2 within one zone -----------------------------


def _find_dname(zone: ZoneData, name: bytes) -> bytes | None:
    """The highest DNAME owner strictly above `name` (the apex included)."""
    dnames = zone.dnames
    found = None
    apex_len = len(zone.apex)
    pos = 0
    while len(name) - pos > apex_len:
        pos += name[pos] + 1
        if name[pos:] in dnames:
            found = name[pos:]
    return found


def _synthesize(zone: ZoneData, dname: bytes, name: bytes) -> tuple[RRsetWire, bytes, bool]:
    """RFC 6672 §2.2: the CNAME that a DNAME at `dname` gives `name`.

    Returns the CNAME's RRsetWire (the DNAME's TTL), its target (lower-cased,
    for following the chain) and whether the target fits 255 octets.
    """
    _, wire = zone.nodes[dname][DNAME]
    tail = next(tails(wire))
    ttl = tail[4:8]
    target = name[: len(name) - len(dname)] + tail[10:]
    rdata = struct.pack("!HH", CNAME, CLASS_IN) + ttl + struct.pack("!H", len(target)) + target
    return (1, QNAME_POINTER + rdata), target.lower(), len(target) <= 255


def _referral(zone: ZoneData, cut: bytes) -> QueryAnswer:
    ans = QueryAnswer(NOERROR, aa=False)
    count, wire = zone.nodes[cut][NS]
    ans.authority.append((cut, count, wire))
    for target in _names_in_rdata(wire):
        glue_node = zone.nodes.get(target)
        if glue_node is None:
            continue
        for rdtype in (TYPE_A, TYPE_AAAA):
            rrset = glue_node.get(rdtype)
            if rrset is not None:
                ans.additional.append((target, rrset[0], rrset[1]))
    return ans


def _names_in_rdata(wire: bytes) -> list[bytes]:
    """Lower-cased target names of an NS or CNAME RRsetWire (uncompressed)."""
    return [tail[10:].lower() for tail in tails(wire)]


def _negative(ans: QueryAnswer, zone: ZoneData, rcode: int) -> QueryAnswer:
    ans.rcode = rcode
    if zone.negative_soa:
        ans.authority.append((zone.apex, 1, QNAME_POINTER + zone.negative_soa))
    return ans


def _closest_encloser(zone: ZoneData, name: bytes) -> bytes:
    nodes = zone.nodes
    below = zone.below
    while name != zone.apex:
        name = parent(name)
        if name in nodes or name in below:
            return name
    return name


def resolve(zone: ZoneData, qname: bytes, qtype: int) -> QueryAnswer:
    """The answer for lower-cased wire `qname` of `qtype` inside `zone`."""
    ans = QueryAnswer()
    name = qname
    nodes = zone.nodes
    seen = {qname}
    for _ in range(MAX_CHAIN):
        cut = zone.delegation(name)
        dname = _find_dname(zone, name) if zone.dnames else None
        if dname is not None and (cut is None or len(dname) < len(cut)):
            # RFC 6672 §3.2, as BIND: the DNAME, the CNAME synthesized from
            # it (with the DNAME's TTL), then on to the new name like a CNAME.
            count, wire = nodes[dname][DNAME]
            ans.answer.append((None if dname == qname else dname, count, wire))
            synthesized, target, fits = _synthesize(zone, dname, name)
            if not fits:
                ans.rcode = YXDOMAIN  # the new name would exceed 255 octets
                return ans
            ans.answer.append((None if name == qname else name, *synthesized))
            if not is_subdomain(target, zone.apex):
                return ans
            if target in seen:
                ans.rcode = SERVFAIL
                return ans
            seen.add(target)
            name = target
            continue
        if cut is not None and not (cut == name and qtype == TYPE_DS):
            referral = _referral(zone, cut)
            if not ans.answer:
                return referral
            # RFC 1034 §4.3.2 step 3b: a CNAME chain that runs into a
            # delegation keeps its CNAMEs and AA, plus the referral (as BIND).
            ans.authority = referral.authority
            ans.additional = referral.additional
            return ans
        owner: bytes | None = None if name == qname else name
        node = nodes.get(name)
        if node is None:
            if name in zone.below:
                return _negative(ans, zone, NOERROR)  # empty non-terminal: NODATA
            if zone.wildcards:
                # RFC 4592 §3.3.1: the source of synthesis is "*." + closest encloser.
                node = nodes.get(b"\x01*" + _closest_encloser(zone, name))
            if node is None:
                return _negative(ans, zone, NXDOMAIN)
            # Synthesised records take the query name as owner.
        if qtype == TYPE_ANY:
            for count, wire in node.values():
                ans.answer.append((owner, count, wire))
            return ans
        rrset: RRsetWire | None = node.get(qtype)
        if rrset is not None:
            ans.answer.append((owner, rrset[0], rrset[1]))
            return ans
        cname = node.get(CNAME)
        if cname is None:
            return _negative(ans, zone, NOERROR)
        ans.answer.append((owner, cname[0], cname[1]))
        target = _names_in_rdata(cname[1])[0]
        if not is_subdomain(target, zone.apex):
            return ans  # the chain leaves the zone: the resolver follows it
        if target in seen:
            ans.rcode = SERVFAIL  # a CNAME loop: BIND answers SERVFAIL with the chain
            return ans
        seen.add(target)
        name = target
    ans.rcode = SERVFAIL  # longer than BIND's max-restarts allows
    return ans


__all__ = [
    "QueryEngine",
    "QueryAnswer",
    "resolve",
    "render",
    "udp_limit",
    "opt_record",
    "bare_error",
    "EDNS_PAYLOAD",
]
