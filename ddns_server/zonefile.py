"""Reading master files (RFC 1035 zone files) with errors that name the right line."""

from __future__ import annotations

from pathlib import Path

import dns.exception
import dns.name
import dns.zone

from ddns_server.masterfile import read_records
from ddns_server.zonedata import Record, name_to_wire
from ddns_server.zonefile_hints import explain_line, origin_mismatch


def read_zone_records(path: Path, origin: dns.name.Name, shown: str) -> list[Record]:
    """The records of a master file: the fast reader for the common forms,
    dnspython (`read_zone_file`) for the rest and for every error."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    records = read_records(text, name_to_wire(origin))
    if records is not None:
        return records
    return records_from_zone(read_zone_file(path, origin, shown))


def records_from_zone(zone: dns.zone.Zone) -> list[Record]:
    """A dnspython zone's records in the store's form (wire owner and rdata)."""
    out: list[Record] = []
    for name, rdataset in zone.iterate_rdatasets():
        owner = name_to_wire(name)
        for rdata in rdataset:
            out.append((owner, rdataset.rdtype, rdataset.ttl, rdata.to_wire()))
    return out


def read_zone_file(path: Path, origin: dns.name.Name, shown: str) -> dns.zone.Zone:
    """Parse a master file; a SyntaxError says "SHOWN:LINE: what is wrong".

    dnspython counts a newline as soon as its tokenizer reads one, even one it
    hands back, so an error in a record's data is reported a line late. Only
    when parsing fails, the file is read again through a wrapper that sees the
    last character read, to name the record's own line.
    """
    with open(path, encoding="utf-8") as f:
        try:
            return dns.zone.from_file(
                f, origin, relativize=False, check_origin=True, filename=shown
            )
        except dns.exception.SyntaxError as first:
            message = str(first)
        except dns.zone.NoSOA:
            mismatch = origin_mismatch(path, origin)
            if mismatch is not None:
                raise mismatch from None
            raise
        f.seek(0)
        tracked = _LastChar(f)
        try:
            dns.zone.from_file(
                tracked,  # type: ignore[arg-type]
                origin,
                relativize=False,
                check_origin=True,
                filename=shown,
            )
        except dns.exception.SyntaxError as e:
            message = str(e)
        number, _, detail = message.removeprefix(f"{shown}:").partition(": ")
        if not message.startswith(f"{shown}:") or not number.isdigit():
            raise dns.exception.SyntaxError(message)  # e.g. in an $INCLUDEd file
        line = int(number)
        if tracked.last in ("\n", "\r") and line > 1:
            line -= 1
        raise dns.exception.SyntaxError(f"{shown}:{line}: {explain_line(path, line, detail)}")


class _LastChar:
    """A text file that remembers the last character read from it."""

    def __init__(self, f: object) -> None:
        self.f = f
        self.last = ""

    def read(self, size: int = -1) -> str:
        data: str = self.f.read(size)  # type: ignore[attr-defined]
        if data:
            self.last = data[-1]
        return data
