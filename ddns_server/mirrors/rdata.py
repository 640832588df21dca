"""Conversions every HTTP provider needs between its record model and `RRset`.

Providers store names and values in their own dialects (relative host names,
"@" for the apex, MX priority in a separate field, TXT without quotes, targets
without the trailing dot). Everything here goes through dnspython, so that what
a provider reads back compares equal to what the engine computed from the
zone: values in canonical master-file text (absolute names, lower-case names
inside rdata as RFC 4034 6.2 lower-cases them), sorted and unique.
"""

from __future__ import annotations

from collections.abc import Iterable

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT

from .base import PermanentError, RRset


def zone_name(name: str) -> str:
    """An upstream zone name made absolute and lower case ("example.test.")."""
    try:
        return dns.name.from_text(name.strip()).to_text().lower()
    except dns.exception.DNSException as exc:
        raise PermanentError(f"bad upstream zone name {name!r}: {exc}") from exc


def owner(name: str) -> str:
    """A provider's record name as `RRset.name` wants it: absolute, lower case
    (master-file escapes, which are decimal, undone where they are plain characters)."""
    return dns.name.from_text(name).to_text().lower()


def relative(name: str, zone: str) -> str:
    """home.dyn.example.test. in example.test. -> "home.dyn"; the apex -> "@"."""
    if name == zone:
        return "@"
    suffix = "." + zone
    if zone == "." or not name.endswith(suffix):
        raise PermanentError(f"{name} is not in the upstream zone {zone}")
    return name[: -len(suffix)]


def absolute(host: str, zone: str) -> str:
    """The inverse of `relative`: "@" or "" is the apex."""
    if host in ("@", ""):
        return zone
    return owner(f"{host}.{zone}")


def canonical(rdtype: str, text: str) -> str:
    """One value in canonical master-file text; relative names are taken as absolute
    (Cloudflare writes "mail.example.test" for "mail.example.test.")."""
    try:
        rd = dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.from_text(rdtype),
            text,
            origin=dns.name.root,
            relativize=False,
        )
        wire = rd.to_digestable()
        rd = dns.rdata.from_wire(dns.rdataclass.IN, rd.rdtype, wire, 0, len(wire))
    except (dns.exception.DNSException, ValueError) as exc:
        raise PermanentError(f"bad {rdtype} value {text!r}: {exc}") from exc
    return rd.to_text()


def make_rrset(name: str, rdtype: str, ttl: int, values: Iterable[str]) -> RRset:
    """An RRset from a provider's values (canonicalized, sorted, unique)."""
    return RRset(
        owner(name), rdtype.upper(), int(ttl), tuple(sorted({canonical(rdtype, v) for v in values}))
    )


def txt_text(value: str) -> str:
    """A TXT value (master-file text, quoted strings) as one unquoted string, the way
    providers without string boundaries store it; bytes that are not UTF-8 are kept
    as escapes."""
    rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, value)
    assert isinstance(rd, dns.rdtypes.ANY.TXT.TXT)
    return b"".join(rd.strings).decode("utf-8", "backslashreplace")


def txt_from_plain(content: str) -> str:
    """A provider's TXT content as canonical master-file text. Quoted content is read
    as master-file text; anything else is one string (split into 255-byte pieces)."""
    stripped = content.strip()
    if stripped.startswith('"') and stripped.endswith('"') and len(stripped) >= 2:
        return canonical("TXT", stripped)
    data = content.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    rd = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
    return rd.to_text()


def split_priority(rdtype: str, value: str) -> tuple[int, str]:
    """MX "10 mail.example.test." -> (10, "mail.example.test.")."""
    preference, _, rest = value.partition(" ")
    try:
        return int(preference), rest.strip()
    except ValueError as exc:
        raise PermanentError(f"bad {rdtype} value {value!r}") from exc
