"""The full message path: everything the hand parser in query.py leaves out.

dnspython parses the message (and checks its TSIG); queries are still answered
by the QueryEngine so both paths give the same bytes, UPDATE goes to the
update processor, AXFR/IXFR to the transfer processor. Errors become rcodes
here, in one place.
"""

from __future__ import annotations

import hmac
import logging
import struct
import time
from collections.abc import Callable
from typing import Protocol

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from ddns_server.errors import DnsError
from ddns_server.gcpause import GcPaused
from ddns_server.model import TSIG_MAX_FUDGE
from ddns_server.query import EDNS_PAYLOAD, QueryEngine, bare_error, opt_record, udp_limit
from ddns_server.ratelog import RateLimitedLog, describe
from ddns_server.tsigfast import FastTsig, Verified
from ddns_server.tsigwire import TSIG_FUDGE, append_tsig, tsig_rdata
from ddns_server.wireupdate import read_update
from ddns_server.zonedata import skip_name

log = logging.getLogger("ddns_server.dnsmsg")
# Per-packet problems (internal errors) are logged a few times a second at most.
packet_log = RateLimitedLog(log)
# TSIG failures are logged per request (as BIND does), but anyone who knows a
# key name can send them at line rate: at most 20 lines a second, then a summary.
tsig_log = RateLimitedLog(log, 20)

Keyring = dict[dns.name.Name, dns.tsig.Key]

# The largest fudge we honour in a request: a request may claim up to 65535 s
# (18 h of replay); we allow at most this (BIND's own fudge, RFC 8945 §10's
# recommended 300 s). Configurable: `tsig_max_fudge`.
MAX_FUDGE = TSIG_MAX_FUDGE
# The largest DNS message over TCP (a 16-bit length prefix).
TCP_MAX = 65535
Source = tuple[str, int]

# RFC 8945 TSIG error names (rcode 16 is BADVERS too, for EDNS).
_TSIG_ERRORS: dict[int, str] = {
    dns.rcode.BADSIG: "BADSIG",
    dns.rcode.BADKEY: "BADKEY",
    dns.rcode.BADTIME: "BADTIME",
    dns.rcode.BADTRUNC: "BADTRUNC",
}

_META_NOTIMP = {dns.rdatatype.MAILA, dns.rdatatype.MAILB, dns.rdatatype.TKEY}


class UpdateHandler(Protocol):
    """What DnsHandler hands UPDATE messages to (update_handler.UpdateProcessor)."""

    def handle_update(self, query: dns.message.Message, source: Source) -> int:
        """Process an UPDATE; the rcode to answer it with."""
        ...


class TransferHandler(Protocol):
    """What DnsHandler hands AXFR/IXFR to (xfr.TransferProcessor)."""

    def handle_transfer(self, query: dns.message.Message, source: Source, tcp: bool) -> list[bytes]:
        """The response messages (wire, signed when the query was) to AXFR/IXFR."""
        ...


class DnsHandler:
    """Turns one DNS message into its response messages (wire)."""

    def __init__(
        self,
        engine: QueryEngine,
        keyring: Keyring,
        updates: UpdateHandler | None = None,
        transfers: TransferHandler | None = None,
        clock: Callable[[], float] = time.time,
        max_fudge: int = MAX_FUDGE,
        count_error: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.updates = updates
        self.transfers = transfers
        self.clock = clock
        self.max_fudge = max_fudge
        self.count_error = count_error  # one per internal error (a metric)
        # Signed UPDATEs: TSIG checked and signed with hmac (dnspython for the rest).
        self.fast_tsig: FastTsig | None = FastTsig()
        # ... and their sections read from the wire (wireupdate.py), not by dnspython.
        self.wire_updates = True

    def handle(self, data: bytes, source: Source, tcp: bool) -> list[bytes]:
        """Response wire messages for `data` (none: drop it).

        Never raises: whatever a client sends, an internal error is counted,
        logged (rate-limited, no traceback) and answered SERVFAIL, signed
        when the request was. Over TCP every message fits a 16-bit length.
        """
        try:
            fast = self.engine.answer(data, not tcp)
            if fast is not None:
                if tcp and len(fast) > TCP_MAX:
                    return [self.failure_response(data)]
                return [fast]
            responses = self.handle_full(data, source, tcp)
        except Exception as e:  # noqa: BLE001 - one packet must never stop the server
            return self.internal_error(data, source, e)
        if tcp and any(len(r) > TCP_MAX for r in responses):
            # Cannot happen by construction (answers and transfers are sized):
            # a guard, so a framing error can never drop the connection.
            return self.internal_error(data, source, ValueError("response over 65535 octets"))
        return responses

    def internal_error(self, data: bytes, source: Source, error: BaseException) -> list[bytes]:
        """Count and log (rate-limited) an internal error; the SERVFAIL to send."""
        self.count_error()
        packet_log.error(
            "client %s#%d: internal error on a %d-octet message: %s",
            source[0],
            source[1],
            len(data),
            describe(error),
        )
        if len(data) < 12 or data[2] & 0x80:
            return []
        try:
            return [self.failure_response(data)]
        except Exception:  # noqa: BLE001 - the bare answer cannot fail
            return [error_response(data, dns.rcode.SERVFAIL)]

    def handle_full(self, data: bytes, source: Source, tcp: bool) -> list[bytes]:
        if len(data) < 12 or data[2] & 0x80:
            return []  # too short to answer, or a response: never answer those
        query = None
        if self.fast_tsig is not None and data[2] & 0x78 == 0x28:  # opcode UPDATE
            # the common signed UPDATE (tsigfast.py); None: dnspython's path below
            checked = self.fast_tsig.check(data, self.keyring)
            if checked is not None:
                with GcPaused():  # a large UPDATE: see gcpause.py
                    fast = self._wire_update(data, checked, source)
                if fast is not None:
                    return fast
                query = self.fast_tsig.message(checked)
        if query is None:
            try:
                try:
                    query = dns.message.from_wire(data, keyring=self.keyring)
                except dns.message.UnknownTSIGKey:
                    return [self._tsig_error(data, source, dns.rcode.BADKEY)]
                except dns.tsig.BadSignature:
                    return [self._bad_signature_response(data, source)]
                except dns.tsig.BadTime:
                    return [self._tsig_error(data, source, dns.rcode.BADTIME)]
                except (dns.tsig.BadKey, dns.tsig.BadAlgorithm):
                    # BIND looks keys up by name and algorithm: another algorithm is another key.
                    return [self._tsig_error(data, source, dns.rcode.BADKEY)]
            except (dns.exception.DNSException, ValueError, struct.error, IndexError):
                # Unparseable (BadEDNS, trailing junk, names over 255 octets, ...),
                # also when it fails again while answering a TSIG error: FORMERR,
                # without a question (a name we could not read is not echoed).
                return [error_response(data, dns.rcode.FORMERR)]
        if query.had_tsig and not self._in_time(query):
            # dnspython honours the request's own fudge (up to 65535 s); we
            # cap it (MAX_FUDGE). The MAC verified: BADTIME is signed.
            return [self._tsig_error(data, source, dns.rcode.BADTIME)]
        try:
            return self._dispatch(query, data, source, tcp)
        except DnsError as e:
            return [self.finish(query, make_response(query, e.rcode), tcp)]

    def _wire_update(self, data: bytes, checked: Verified, source: Source) -> list[bytes] | None:
        """A verified UPDATE whose sections wireupdate.py reads: answered
        without dnspython's Message. None: the message takes dnspython's path."""
        # UpdateProcessor.handle_parsed; a handler without it gets dnspython's message
        handle = getattr(self.updates, "handle_parsed", None)
        if not self.wire_updates or handle is None or self.fast_tsig is None:
            return None
        update = read_update(checked.stripped)
        if update is None:
            return None
        if abs(int(self.clock()) - checked.time_signed) > min(checked.fudge, self.max_fudge):
            return [self._tsig_error(data, source, dns.rcode.BADTIME)]  # as _in_time
        keyname = self.fast_tsig.key_name(checked)
        rcode = handle(update, keyname, source)
        wire = self._reply_wire(data, rcode, -1, 0)
        now = int(self.clock())
        return [
            self.fast_tsig.sign_reply(wire, checked.entry, keyname, checked.mac, now, TSIG_FUDGE)
        ]

    def failure_response(self, data: bytes, rcode: int = dns.rcode.SERVFAIL) -> bytes:
        """An error answer to a request already handled, whose change could not
        be made durable after all (a failed UDP group commit): signed when the
        request was, like every reply to a signed request."""
        try:
            query = dns.message.from_wire(data, keyring=self.keyring)
            return self.finish(query, make_response(query, rcode), False)
        except Exception:  # noqa: BLE001 - e.g. the key went away on a reload
            return error_response(data, rcode)

    def _in_time(self, query: dns.message.Message) -> bool:
        rdata = query.tsig[0] if query.tsig else None
        if not isinstance(rdata, dns.rdtypes.ANY.TSIG.TSIG):
            return True
        fudge = min(rdata.fudge, self.max_fudge)
        return abs(int(self.clock()) - rdata.time_signed) <= fudge

    def _dispatch(
        self, query: dns.message.Message, data: bytes, source: Source, tcp: bool
    ) -> list[bytes]:
        if query.edns > 0:
            # RFC 6891 §6.1.3: BADVERS for any request with an EDNS version
            # we do not speak, UPDATE included (as BIND answers).
            return [self.finish(query, make_response(query, dns.rcode.BADVERS), tcp)]
        opcode = query.opcode()
        if opcode == dns.opcode.UPDATE:
            if self.updates is None:
                return [self.finish(query, make_response(query, dns.rcode.NOTIMP), tcp)]
            return [self.reply(query, data, self.updates.handle_update(query, source))]
        if opcode != dns.opcode.QUERY:
            return [self.finish(query, make_response(query, dns.rcode.NOTIMP), tcp)]
        if len(query.question) != 1:
            return [self.finish(query, make_response(query, dns.rcode.FORMERR), tcp)]
        question = query.question[0]
        rdtype = question.rdtype
        if rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            if self.transfers is None:
                return [self.finish(query, make_response(query, dns.rcode.NOTIMP), tcp)]
            return self.transfers.handle_transfer(query, source, tcp)
        if rdtype in (dns.rdatatype.OPT, dns.rdatatype.TSIG):
            # RFC 6891 §6.1.1, RFC 8945 §5: pseudo-RR types never go in a question (BIND: FORMERR)
            return [self.finish(query, make_response(query, dns.rcode.FORMERR), tcp)]
        if rdtype in _META_NOTIMP:
            return [self.finish(query, make_response(query, dns.rcode.NOTIMP), tcp)]
        if question.rdclass != dns.rdataclass.IN:
            return [self.finish(query, make_response(query, dns.rcode.REFUSED), tcp)]
        head = data[0:4]
        question_wire = _name_wire(question.name) + struct.pack("!HH", rdtype, question.rdclass)
        opt = b""
        limit = 512
        if query.edns == 0:
            opt = opt_record(bool(query.ednsflags & dns.flags.DO))
            limit = udp_limit(query.payload)
        wire = self.engine.answer_question(head, question_wire, opt, not tcp, limit)
        if not query.had_tsig:
            return [wire]
        # Signed query: re-render with dnspython, which signs the response.
        plain = dns.message.from_wire(wire)
        response = make_response(query, plain.rcode())
        response.flags = plain.flags
        response.answer = plain.answer
        response.authority = plain.authority
        response.additional = plain.additional
        return [self.finish(query, response, tcp)]

    def finish(self, query: dns.message.Message, response: dns.message.Message, tcp: bool) -> bytes:
        """Render a response: signed when the query was, truncated to fit UDP."""
        max_size = 65535 if tcp else udp_limit(query.payload if query.edns >= 0 else None)
        try:
            return response.to_wire(max_size=max_size)  # type: ignore[no-any-return]
        except dns.exception.TooBig:
            response.answer = []
            response.authority = []
            response.additional = []
            if tcp:
                # No TC over TCP: an answer that cannot fit 65535 octets is SERVFAIL.
                response.set_rcode(dns.rcode.SERVFAIL)
            else:
                response.flags |= dns.flags.TC
            return response.to_wire(max_size=max_size)  # type: ignore[no-any-return]

    def reply(self, query: dns.message.Message, data: bytes, rcode: int) -> bytes:
        """A response of just a header and the query's first section, signed
        when the query was: what an UPDATE is answered with (RFC 2136 §3.8).

        Assembled from the request's own bytes; dnspython only signs it (its
        Message.to_wire would cost more than the update itself).
        """
        wire = self._reply_wire(data, rcode, query.edns, query.ednsflags)
        if not query.had_tsig:
            return wire
        key = query.keyring
        assert isinstance(key, dns.tsig.Key) and query.keyname is not None
        fast = self.fast_tsig
        entry = fast.entry(self.keyring, key) if fast is not None else None
        if fast is not None and entry is not None and query.mac is not None:
            now = int(self.clock())
            return fast.sign_reply(wire, entry, query.keyname, query.mac, now, TSIG_FUDGE)
        unsigned = tsig_rdata(key.algorithm, 0, TSIG_FUDGE, query.id, 0)
        signed, _ = dns.tsig.sign(wire, key, unsigned, int(self.clock()), query.mac)
        return append_tsig(wire, query.keyname, signed)

    @staticmethod
    def _reply_wire(data: bytes, rcode: int, edns: int, ednsflags: int) -> bytes:
        """The unsigned answer to an UPDATE: header, zone section, our OPT if it had one."""
        qdcount = (data[4] << 8) | data[5]
        end = 12
        for _ in range(qdcount):
            end = skip_name(data, end) + 4
        opt = b""
        if edns >= 0:
            do = 0x80 if ednsflags & dns.flags.DO else 0
            opt = b"\x00\x00\x29" + struct.pack("!HBBBBH", EDNS_PAYLOAD, rcode >> 4, 0, do, 0, 0)
        head = data[0:2] + bytes((0x80 | (data[2] & 0x79), rcode & 0x0F))
        return head + struct.pack("!HHHH", qdcount, 0, 0, 1 if opt else 0) + data[12:end] + opt

    def _tsig_error(self, data: bytes, source: Source, tsig_error: int) -> bytes:
        """Answer, and log, a request whose TSIG failed (RFC 8945 §5.2).

        BADTIME and BADTRUNC come after the MAC verified: signed. BADKEY and
        BADSIG: unsigned (§5.3.2).
        """
        _, keyname, _ = _unverified(data)
        tsig_log.log(
            logging.INFO,
            "client %s#%d: TSIG key %s: %s",
            source[0],
            source[1],
            keyname.to_text(omit_final_dot=True),
            _TSIG_ERRORS.get(tsig_error, str(tsig_error)),
        )
        if tsig_error in (dns.rcode.BADTIME, dns.rcode.BADTRUNC):
            return self._signed_tsig_error(data, tsig_error)
        return tsig_error_response(data, tsig_error, int(self.clock()))

    def _bad_signature_response(self, data: bytes, source: Source) -> bytes:
        """The MAC did not verify in full: FORMERR, BADTRUNC, BADTIME or BADSIG.

        RFC 8945 §5.2.2.1, as BIND checks it: a MAC longer than the hash, or
        shorter than max(10, half the hash), is FORMERR. dnspython compares
        whole MACs only, so a truncated MAC of an allowed length is checked
        here; when it verifies, our policy (BIND's for keys without
        digest-bits, the only kind the config has) wants the whole MAC:
        BADTRUNC, signed (or BADTIME first when the time is off, as BIND
        orders the checks). Anything else is BADSIG.
        """
        _, keyname, rdata = _unverified(data)
        key = self.keyring[keyname]
        size = len(rdata.mac)
        full = dns.tsig.mac_sizes[key.algorithm]
        if size > full or (size and size < max(10, (full + 1) // 2)):
            tsig_log.log(
                logging.INFO,
                "client %s#%d: TSIG MAC of %d octets: FORMERR",
                source[0],
                source[1],
                size,
            )
            return error_response(data, dns.rcode.FORMERR)
        if 0 < size < full and _truncated_mac_verifies(data, key, rdata):
            if abs(int(self.clock()) - rdata.time_signed) > min(rdata.fudge, self.max_fudge):
                return self._tsig_error(data, source, dns.rcode.BADTIME)
            return self._tsig_error(data, source, dns.rcode.BADTRUNC)
        return self._tsig_error(data, source, dns.rcode.BADSIG)

    def _signed_tsig_error(self, data: bytes, tsig_error: int) -> bytes:
        """NOTAUTH with a signed TSIG error, for a request whose MAC verified.

        RFC 8945 §5.2.3, like BIND: for BADTIME the time signed is the
        request's and "other data" holds our time (48 bits); the request MAC
        is digested first (§5.3).
        """
        query, keyname, request = _unverified(data)
        key = self.keyring[keyname]
        now = int(self.clock())
        other = b""
        time_signed = now
        if tsig_error == dns.rcode.BADTIME:
            other = struct.pack("!HI", now >> 32, now & 0xFFFFFFFF)
            time_signed = request.time_signed
        wire = _to_wire(make_response(query, dns.rcode.NOTAUTH))
        rdata = tsig_rdata(key.algorithm, time_signed, request.fudge, query.id, tsig_error, other)
        signed, _ = dns.tsig.sign(wire, key, rdata, time_signed, request.mac)
        return append_tsig(wire, keyname, signed)


def make_response(query: dns.message.Message, rcode: int) -> dns.message.Message:
    """A response to `query` with `rcode`: question copied, AA clear, EDNS echoed."""
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
    response.flags &= ~dns.flags.RA
    response.flags |= query.flags & dns.flags.CD
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    if query.edns >= 0 and query.ednsflags & dns.flags.DO:
        response.ednsflags |= dns.flags.DO
    return response


def error_response(data: bytes, rcode: int) -> bytes:
    """A bare error answer for a message dnspython could not parse.

    Like BIND: the query's ID and opcode, QR set, RD copied, no sections
    (query.bare_error: the fast path gives the same bytes).
    """
    return bare_error(data, rcode)


def tsig_error_response(data: bytes, tsig_error: int, now: int) -> bytes:
    """RFC 8945 §5.3.2: NOTAUTH with an unsigned TSIG carrying the error.

    For BADKEY and BADSIG: the question is echoed; the TSIG record has an
    empty MAC and, like BIND's, our time as its time signed.
    """
    query, keyname, tsig = _unverified(data)
    wire = _to_wire(make_response(query, dns.rcode.NOTAUTH))
    rdata = tsig_rdata(tsig.algorithm, now, tsig.fudge, query.id, tsig_error)
    return append_tsig(wire, keyname, rdata)


def _unverified(
    data: bytes,
) -> tuple[dns.message.Message, dns.name.Name, dns.rdtypes.ANY.TSIG.TSIG]:
    """A signed request parsed without checking its TSIG, to answer a TSIG error."""
    query = dns.message.from_wire(data, keyring=False)
    assert query.tsig is not None and query.keyname is not None
    rdata = query.tsig[0]
    assert isinstance(rdata, dns.rdtypes.ANY.TSIG.TSIG)
    return query, query.keyname, rdata


def _name_wire(name: dns.name.Name) -> bytes:
    wire = name.to_wire()
    assert wire is not None
    return wire


def _to_wire(message: dns.message.Message) -> bytes:
    wire = message.to_wire()
    assert wire is not None
    return wire


def _tsig_start(wire: bytes) -> int:
    """Where the last record (the TSIG) of a message starts."""
    qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", wire, 4)
    pos = 12
    for _ in range(qdcount):
        pos = skip_name(wire, pos) + 4
    for _ in range(ancount + nscount + arcount - 1):
        pos = skip_name(wire, pos)
        pos += 10 + struct.unpack_from("!H", wire, pos + 8)[0]
    return pos


def _truncated_mac_verifies(
    data: bytes, key: dns.tsig.Key, rdata: dns.rdtypes.ANY.TSIG.TSIG
) -> bool:
    """RFC 8945 §5.2.2.1 (4): does a truncated MAC equal the start of ours?"""
    start = _tsig_start(data)
    arcount = struct.unpack_from("!H", data, 10)[0] - 1
    unsigned = data[:10] + struct.pack("!H", arcount) + data[12:start]
    expected, _ = dns.tsig.sign(unsigned, key, rdata, rdata.time_signed, b"")
    return hmac.compare_digest(expected.mac[: len(rdata.mac)], rdata.mac)


__all__ = ["DnsHandler", "make_response", "error_response", "tsig_error_response"]
