"""The full message path: everything the hand parser in query.py leaves out.

dnspython parses the message (and checks its TSIG); queries are still answered
by the QueryEngine so both paths give the same bytes, UPDATE goes to the
update processor, AXFR/IXFR to the transfer processor. Errors become rcodes
here, in one place.
"""

from __future__ import annotations

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
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from ddns_server.errors import DnsError
from ddns_server.query import EDNS_PAYLOAD, QueryEngine, opt_record, udp_limit

Keyring = dict[dns.name.Name, dns.tsig.Key]
Source = tuple[str, int]

_META_NOTIMP = {dns.rdatatype.MAILA, dns.rdatatype.MAILB, dns.rdatatype.TKEY}


class UpdateProcessor(Protocol):
    def handle_update(self, query: dns.message.Message, source: Source) -> dns.message.Message:
        """The response to an UPDATE (unsigned; the caller signs it)."""
        ...


class TransferProcessor(Protocol):
    def handle_transfer(self, query: dns.message.Message, source: Source, tcp: bool) -> list[bytes]:
        """The response messages (wire, signed when the query was) to AXFR/IXFR."""
        ...


class DnsHandler:
    """Turns one DNS message into its response messages (wire)."""

    def __init__(
        self,
        engine: QueryEngine,
        keyring: Keyring,
        updates: UpdateProcessor | None = None,
        transfers: TransferProcessor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.updates = updates
        self.transfers = transfers
        self.clock = clock

    def handle(self, data: bytes, source: Source, tcp: bool) -> list[bytes]:
        """Response wire messages for `data` (none: drop it)."""
        fast = self.engine.answer(data, not tcp)
        if fast is not None:
            return [fast]
        return self.handle_full(data, source, tcp)

    def handle_full(self, data: bytes, source: Source, tcp: bool) -> list[bytes]:
        if len(data) < 12 or data[2] & 0x80:
            return []  # too short to answer, or a response: never answer those
        try:
            query = dns.message.from_wire(data, keyring=self.keyring)
        except dns.message.UnknownTSIGKey:
            return [tsig_error_response(data, dns.rcode.BADKEY)]
        except dns.tsig.BadSignature:
            return [tsig_error_response(data, dns.rcode.BADSIG)]
        except dns.tsig.BadTime:
            return [self._badtime_response(data)]
        except dns.message.BadEDNS:
            return [error_response(data, dns.rcode.FORMERR)]
        except (dns.tsig.BadKey, dns.tsig.BadAlgorithm):
            return [tsig_error_response(data, dns.rcode.BADKEY)]
        except (dns.exception.DNSException, ValueError, struct.error, IndexError):
            return [error_response(data, dns.rcode.FORMERR)]
        try:
            return self._dispatch(query, data, source, tcp)
        except DnsError as e:
            return [self.finish(query, make_response(query, e.rcode), tcp)]

    def _dispatch(
        self, query: dns.message.Message, data: bytes, source: Source, tcp: bool
    ) -> list[bytes]:
        opcode = query.opcode()
        if opcode == dns.opcode.UPDATE:
            if self.updates is None:
                return [self.finish(query, make_response(query, dns.rcode.NOTIMP), tcp)]
            return [self.finish(query, self.updates.handle_update(query, source), tcp)]
        if opcode != dns.opcode.QUERY:
            return [self.finish(query, make_response(query, dns.rcode.NOTIMP), tcp)]
        if query.edns > 0:
            response = make_response(query, dns.rcode.BADVERS)
            return [self.finish(query, response, tcp)]
        if len(query.question) != 1:
            return [self.finish(query, make_response(query, dns.rcode.FORMERR), tcp)]
        question = query.question[0]
        rdtype = question.rdtype
        if rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            if self.transfers is None:
                return [self.finish(query, make_response(query, dns.rcode.NOTIMP), tcp)]
            return self.transfers.handle_transfer(query, source, tcp)
        if rdtype == dns.rdatatype.OPT:
            return [self.finish(query, make_response(query, dns.rcode.FORMERR), tcp)]
        if rdtype in _META_NOTIMP:
            return [self.finish(query, make_response(query, dns.rcode.NOTIMP), tcp)]
        if question.rdclass != dns.rdataclass.IN:
            return [self.finish(query, make_response(query, dns.rcode.REFUSED), tcp)]
        head = data[0:4]
        question_wire = question.name.to_wire() + struct.pack("!HH", rdtype, question.rdclass)
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
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=max_size)  # type: ignore[no-any-return]

    def _badtime_response(self, data: bytes) -> bytes:
        """RFC 8945 §5.2.3: BADTIME, signed, with our time in "other data"."""
        query = dns.message.from_wire(data, keyring=False)
        response = make_response(query, dns.rcode.NOTAUTH)
        keyname = query.keyname
        key = self.keyring[keyname]
        now = int(self.clock())
        response.use_tsig(
            key,
            keyname,
            tsig_error=dns.rcode.BADTIME,
            other_data=struct.pack("!HI", now >> 32, now & 0xFFFFFFFF),
            algorithm=key.algorithm,
        )
        response.request_mac = query.mac
        return response.to_wire()  # type: ignore[no-any-return]


def make_response(query: dns.message.Message, rcode: int) -> dns.message.Message:
    """A response to `query` with `rcode`: question copied, AA clear, EDNS echoed."""
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
    response.flags &= ~dns.flags.RA
    response.flags |= query.flags & dns.flags.CD
    response.set_rcode(rcode)
    if query.edns >= 0 and query.ednsflags & dns.flags.DO:
        response.ednsflags |= dns.flags.DO
    return response


def error_response(data: bytes, rcode: int) -> bytes:
    """A bare error answer for a message dnspython could not parse.

    Like BIND: the query's ID and opcode, QR set, RD copied, no sections.
    """
    flags1 = 0x80 | (data[2] & 0x79)
    return data[0:2] + bytes((flags1, rcode & 0x0F)) + b"\x00" * 8


def tsig_error_response(data: bytes, tsig_error: int) -> bytes:
    """RFC 8945 §5.3.2: NOTAUTH with an unsigned TSIG carrying the error.

    The question is echoed; the TSIG record has an empty MAC.
    """
    query = dns.message.from_wire(data, keyring=False)
    response = make_response(query, dns.rcode.NOTAUTH)
    response.use_edns(False) if query.edns < 0 else None
    wire = bytearray(response.to_wire())
    tsig = query.tsig[0]
    rdata = dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY,
        dns.rdatatype.TSIG,
        tsig.algorithm,
        tsig.time_signed,
        tsig.fudge,
        b"",
        query.id,
        tsig_error,
        b"",
    )
    rdata_wire = rdata.to_wire()
    wire += query.keyname.to_wire()
    wire += struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata_wire))
    wire += rdata_wire
    arcount = struct.unpack_from("!H", wire, 10)[0] + 1
    struct.pack_into("!H", wire, 10, arcount)
    return bytes(wire)


__all__ = ["DnsHandler", "make_response", "error_response", "tsig_error_response"]
