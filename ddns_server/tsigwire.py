"""TSIG records on the wire: the one place we build and append them (RFC 8945).

dnspython computes every MAC (dns.tsig.sign); these helpers only lay out the
record around it, for the answers dnspython's Message cannot write for us
(TSIG errors, pre-rendered transfer messages).
"""

from __future__ import annotations

import struct

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG

# The fudge of our signatures: dnspython's and BIND's default (RFC 8945 §10).
TSIG_FUDGE = 300

_HEADER = struct.Struct("!HHIH")  # type, class, TTL, rdata length
_COUNT = struct.Struct("!H")


def tsig_rdata(
    algorithm: dns.name.Name,
    time_signed: int,
    fudge: int,
    original_id: int,
    error: int,
    other: bytes = b"",
) -> dns.rdtypes.ANY.TSIG.TSIG:
    """TSIG rdata with an empty MAC: unsigned, or for dns.tsig.sign to fill in."""
    return dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY,
        dns.rdatatype.TSIG,
        algorithm,
        time_signed,
        fudge,
        b"",
        original_id,
        error,
        other,
    )


def append_tsig(wire: bytes, keyname: dns.name.Name, rdata: dns.rdata.Rdata) -> bytes:
    """`wire` with a TSIG record added at the end of the additional section (and counted)."""
    rdata_wire = rdata.to_wire()
    owner = keyname.to_wire()  # RFC 8945 §4.2: the key name is not compressed
    assert rdata_wire is not None and owner is not None
    arcount = _COUNT.unpack_from(wire, 10)[0] + 1
    return (
        wire[:10]
        + _COUNT.pack(arcount)
        + wire[12:]
        + owner
        + _HEADER.pack(dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata_wire))
        + rdata_wire
    )
