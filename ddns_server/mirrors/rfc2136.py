"""The `rfc2136` provider: another primary (BIND, Knot, PowerDNS...) that takes UPDATE.

dnspython builds and signs the messages. Each push is one UPDATE message over
TCP without prerequisites: for every RRset, delete it, then add its records
(RFC 2136 §2.5.2 then §2.5.1), so a repeated push does no harm. Reads are a
TSIG-signed AXFR of the upstream zone (or, for a few RRsets, queries).

Options: `server` ("host:port", "[v6]:port"; port 53 by default), `key`
(one of the config's `keys`, resolved to a dns.tsig.Key by the config
reader), `timeout` (seconds, default 10).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr

from ddns_server.mirrors.base import Change, PermanentError, RRset, TransientError
from ddns_server.mirrors.options import Option, seconds

EXTRA = None  # dnspython is a dependency of ddns-server itself
LIBRARY = "dns"
OPTIONS = {
    "server": Option(required=True, help='the upstream primary, "HOST:PORT" (port 53 by default)'),
    "key": Option(help="the name of one of the config's `keys` (signs UPDATE and AXFR)"),
    "timeout": Option(kind=float, help="seconds per message, default 10"),
}

# Answers that mean the configuration is wrong, not the moment (BIND's and
# Knot's update clients treat them the same way): stop the mirror.
_PERMANENT = {
    dns.rcode.REFUSED,
    dns.rcode.NOTAUTH,
    dns.rcode.NOTZONE,
    dns.rcode.FORMERR,
    dns.rcode.NOTIMP,
    dns.rcode.YXDOMAIN,
    dns.rcode.YXRRSET,
    dns.rcode.NXRRSET,
    dns.rcode.NXDOMAIN,
    dns.rcode.BADKEY,
    dns.rcode.BADSIG,
    dns.rcode.BADTIME,
}


# Reading more RRsets than this takes one AXFR instead of one query each.
QUERY_LIMIT = 4


def parse_server(text: str) -> tuple[str, int]:
    """ "192.0.2.1:53", "[2001:db8::1]:53", "192.0.2.1" -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    number = int(port) if port else 53
    if not host or not 0 < number < 65536:
        raise ValueError(f"bad server address {text!r} (expected HOST:PORT)")
    return host, number


def tsig_error(what: str, e: dns.tsig.PeerError) -> PermanentError:
    """A TSIG rejection by the server: the key or the clock is wrong (permanent)."""
    if isinstance(e, dns.tsig.PeerBadKey):
        return PermanentError(f"{what}: the server does not know our key (BADKEY)")
    if isinstance(e, dns.tsig.PeerBadSignature):
        return PermanentError(f"{what}: the server rejected our key's signature (BADSIG)")
    if isinstance(e, dns.tsig.PeerBadTime):
        return PermanentError(f"{what}: our clocks differ too much (BADTIME)")
    return PermanentError(f"{what}: TSIG error {type(e).__name__}: {e}")


class Rfc2136Provider:
    """Pushes RRsets to a primary with TSIG-signed UPDATE messages."""

    def __init__(self, options: Mapping[str, Any], upstream_zone: str) -> None:
        self.host, self.port = parse_server(str(options["server"]))
        key = options.get("key")
        self.key: dns.tsig.Key | None = key if isinstance(key, dns.tsig.Key) else None
        self.timeout = seconds(options, "timeout", 10.0, "rfc2136")
        self.zone = dns.name.from_text(upstream_zone)

    def _sign(self, message: dns.message.Message) -> None:
        if self.key is not None:
            message.use_tsig(self.key)

    def _exchange(
        self, message: dns.message.Message, what: str, also_ok: int = dns.rcode.NOERROR
    ) -> dns.message.Message:
        try:
            response = dns.query.tcp(message, self.host, port=self.port, timeout=self.timeout)
        except dns.tsig.PeerError as e:
            raise tsig_error(what, e) from None
        except (dns.exception.Timeout, TimeoutError):
            raise TransientError(f"{what}: no answer from {self.host}:{self.port}") from None
        except OSError as e:
            raise TransientError(f"{what}: {self.host}:{self.port}: {e.strerror or e}") from None
        except dns.exception.DNSException as e:
            raise TransientError(f"{what}: {e}") from None
        rcode = response.rcode()
        if rcode in (dns.rcode.NOERROR, also_ok):
            return response
        text = dns.rcode.to_text(rcode)
        if rcode in _PERMANENT:
            raise PermanentError(f"{what}: {self.host}:{self.port} answered {text}")
        raise TransientError(f"{what}: {self.host}:{self.port} answered {text}")

    def read(self, keys: Iterable[tuple[str, str]] | None = None) -> list[RRset]:
        wanted = None if keys is None else list(keys)
        if wanted is not None and len(wanted) <= QUERY_LIMIT:
            out = []
            for name, rdtype in wanted:
                query = dns.message.make_query(name, rdtype)
                self._sign(query)
                response = self._exchange(query, f"query {name} {rdtype}", dns.rcode.NXDOMAIN)
                for rrset in response.answer:
                    if rrset.name == dns.name.from_text(name) and (
                        dns.rdatatype.to_text(rrset.rdtype) == rdtype
                    ):
                        out.append(_rrset(rrset))
            return out
        everything = self._axfr()
        if wanted is None:
            return everything
        keep = set(wanted)
        return [rr for rr in everything if rr.key in keep]

    def _axfr(self) -> list[RRset]:
        what = f"AXFR {self.zone}"
        kwargs: dict[str, Any] = {}
        if self.key is not None:
            kwargs = {
                "keyring": self.key,
                "keyname": self.key.name,
                "keyalgorithm": self.key.algorithm,
            }
        merged: dict[tuple[str, str], RRset] = {}
        try:
            for message in dns.query.xfr(
                self.host,
                self.zone,
                port=self.port,
                timeout=self.timeout,
                lifetime=self.timeout * 6,
                relativize=False,
                **kwargs,
            ):
                for rrset in message.answer:
                    if rrset.rdtype == dns.rdatatype.SOA:
                        continue
                    rr = _rrset(rrset)
                    old = merged.get(rr.key)
                    if old is not None:  # an RRset may span messages
                        rr = RRset(
                            rr.name,
                            rr.rdtype,
                            min(rr.ttl, old.ttl),
                            tuple(sorted({*old.values, *rr.values})),
                        )
                    merged[rr.key] = rr
        except dns.xfr.TransferError as e:
            code = dns.rcode.to_text(e.rcode)
            error = PermanentError if e.rcode in _PERMANENT else TransientError
            raise error(f"{what}: {self.host}:{self.port} answered {code}") from None
        except dns.tsig.PeerError as e:
            raise tsig_error(what, e) from None
        except (dns.exception.Timeout, TimeoutError, EOFError):
            raise TransientError(
                f"{what}: no (complete) answer from {self.host}:{self.port}"
            ) from None
        except OSError as e:
            raise TransientError(f"{what}: {self.host}:{self.port}: {e.strerror or e}") from None
        except dns.exception.DNSException as e:
            raise TransientError(f"{what}: {e}") from None
        return list(merged.values())

    def apply(self, changes: list[Change]) -> None:
        if not changes:
            return
        update = dns.update.UpdateMessage(self.zone)
        # Every delete before any add: an A replaced by a CNAME (or back) in
        # one push must not meet the CNAME rule half-way (RFC 2136 §3.4.2.2
        # says to ignore such an add silently).
        keys = [
            (dns.name.from_text(c.key[0]), dns.rdatatype.from_text(c.key[1]), c.new)
            for c in changes
        ]
        for name, rdtype, _new in keys:
            update.delete(name, rdtype)
        for name, rdtype, new in keys:
            if new is not None:
                update.add(name, new.ttl, rdtype, *new.values)
        self._sign(update)
        self._exchange(update, f"UPDATE of {len(changes)} RRsets")

    def close(self) -> None:
        pass


def _rrset(rrset: Any) -> RRset:
    return RRset(
        rrset.name.to_text().lower(),
        dns.rdatatype.to_text(rrset.rdtype),
        int(rrset.ttl),
        tuple(sorted({rd.to_text() for rd in rrset})),
    )
