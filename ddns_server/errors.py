"""The exception family of ddns-server, and the one table from errors to rcodes."""

from __future__ import annotations

import dns.rcode


class DdnsError(Exception):
    """Root of every ddns-server error."""


class ConfigError(DdnsError):
    """The configuration is invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class UserError(DdnsError):
    """A command-line user error (unknown zone, bad serial, ...): one line, exit 1."""


class DnsError(DdnsError):
    """An error that is answered with a DNS rcode."""

    rcode: dns.rcode.Rcode = dns.rcode.SERVFAIL


class FormErr(DnsError):
    """Malformed message."""

    rcode = dns.rcode.FORMERR


class ServFail(DnsError):
    """Server failure."""

    rcode = dns.rcode.SERVFAIL


class Refused(DnsError):
    """Refused by policy."""

    rcode = dns.rcode.REFUSED


class NotAuth(DnsError):
    """Not authoritative for the zone (or TSIG failure)."""

    rcode = dns.rcode.NOTAUTH


class NotZone(DnsError):
    """Name outside the zone named in the zone section."""

    rcode = dns.rcode.NOTZONE


class PrerequisiteFailed(DnsError):
    """An RFC 2136 prerequisite did not hold; carries its own rcode."""

    def __init__(self, rcode: dns.rcode.Rcode, message: str = "") -> None:
        self.rcode = rcode
        super().__init__(message or dns.rcode.to_text(rcode))
