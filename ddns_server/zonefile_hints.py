"""Say what to fix in a master file, where dnspython's own words don't.

dnspython reports a bad address as "Text input is malformed." and a file
whose origin is another zone as "no SOA"; a user needs the token at fault and
why. These helpers only run after parsing failed (never on the hot path).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone


class OriginMismatch(dns.exception.DNSException):
    """The master file is for another zone than the one it is read for."""


def file_origin(path: Path) -> dns.name.Name | None:
    """The zone a master file is for: its $ORIGIN or SOA owner; None if unknown."""
    try:
        zone = dns.zone.from_file(str(path), None, relativize=False, check_origin=False)
    except Exception:  # noqa: BLE001 - any failure: we cannot tell
        return None
    for name, _ in zone.iterate_rdatasets(dns.rdatatype.SOA):
        return name
    return zone.origin


def origin_mismatch(path: Path, origin: dns.name.Name) -> OriginMismatch | None:
    """An error naming both origins when the file is for another zone."""
    found = file_origin(path)
    if found is None or found == origin:
        return None
    return OriginMismatch(
        f"the file is for zone {found.to_text()} (its $ORIGIN/SOA owner), not"
        f" {origin.to_text()}: give the file of {origin.to_text()} or fix its $ORIGIN"
    )


def explain(line_text: str, detail: str) -> str:
    """`detail` with the token at fault and why, for a record's line if we can tell."""
    text = line_text.split(";", 1)[0].replace("(", " ").replace(")", " ")
    words = text.split()
    # A line that does not start with a blank starts with the owner (which
    # may look like a type: a host called "a").
    first = 0 if line_text[:1].isspace() else 1
    for i, word in enumerate(words):
        if i < first or word.upper() in ("IN", "CH", "HS") or word.isdigit():
            continue
        try:
            rdtype = dns.rdatatype.from_text(word)
        except dns.exception.DNSException:
            continue
        data = words[i + 1 :]
        why = _why(rdtype, data)
        if why:
            return why
        return f"{word.upper()} data {' '.join(data)!r}: {detail}"
    return detail


def _why(rdtype: dns.rdatatype.RdataType, data: list[str]) -> str | None:
    if rdtype == dns.rdatatype.A and len(data) == 1:
        try:
            ipaddress.IPv4Address(data[0])
        except ValueError as e:
            return f"{data[0]!r} is not an IPv4 address for an A record: {e}"
    if rdtype == dns.rdatatype.AAAA and len(data) == 1:
        try:
            ipaddress.IPv6Address(data[0])
        except ValueError as e:
            return f"{data[0]!r} is not an IPv6 address for an AAAA record: {e}"
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) and len(data) != 1:
        return f"an {dns.rdatatype.to_text(rdtype)} record takes one address, not {data!r}"
    try:
        dns.rdata.from_text(dns.rdataclass.IN, rdtype, " ".join(data), dns.name.root)
    except dns.exception.DNSException as e:
        return f"{dns.rdatatype.to_text(rdtype)} data {' '.join(data)!r}: {e}"
    except Exception:  # noqa: BLE001 - dnspython may raise ValueError and kin
        return None
    return None


def explain_line(path: Path, line: int, detail: str) -> str:
    """`detail` explained from line `line` (1-based) of the file at `path`."""
    try:
        with open(path, encoding="utf-8") as f:
            for number, text in enumerate(f, 1):
                if number == line:
                    return explain(text, detail)
    except (OSError, UnicodeDecodeError):
        pass
    return detail
