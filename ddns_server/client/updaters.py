"""Sending one address for one hostname: RFC 2136 with TSIG, or DynDNS2 over HTTP(S).

Each failure is classified once, here: `UpdateError.permanent` is true for
what a retry cannot fix (bad key or signature, REFUSED/NOTAUTH/NOTZONE,
`badauth`, `nohost`, `abuse`...), false for what may pass (timeouts, refused
connections, SERVFAIL, `dnserr`, `911`).
"""

from __future__ import annotations

import base64
import socket
import ssl
import urllib.parse
from typing import Protocol

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsig
import dns.update

from ddns_server.client.addresses import IPAddress, SourceError, http_get
from ddns_server.client.config import Dyndns2, Rfc2136


class UpdateError(Exception):
    """An update failed; the message is one line for the log."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Updater(Protocol):
    def update(self, host: dns.name.Name, rdtype: str, address: IPAddress) -> str:
        """Send the address; return the server's answer in words, or raise UpdateError."""
        ...


# RFC 8945 §5.2: the key or signature is wrong; sending again will not help.
_PERMANENT_TSIG = (dns.tsig.PeerBadKey, dns.tsig.PeerBadSignature, dns.tsig.PeerBadTruncation)
_PERMANENT_RCODES = (dns.rcode.REFUSED, dns.rcode.NOTAUTH, dns.rcode.NOTZONE, dns.rcode.YXDOMAIN)


class Rfc2136Updater:
    """One UPDATE per host and type, replacing the RRset (as `nsupdate`'s `update delete`
    then `update add` in one message), signed with the TSIG key."""

    def __init__(self, config: Rfc2136, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self.key = dns.tsig.Key(config.key_name, config.secret, config.algorithm)

    def update(self, host: dns.name.Name, rdtype: str, address: IPAddress) -> str:
        zone = self.config.zone or host.parent()
        message = dns.update.UpdateMessage(zone, keyring=self.key)
        message.replace(host, self.config.ttl, rdtype, str(address))
        where = self._server_address()
        try:
            response, _tcp = dns.query.udp_with_fallback(
                message, where, port=self.config.port, timeout=self.timeout
            )
        except _PERMANENT_TSIG as e:
            raise UpdateError(
                f"TSIG key {self.config.key_name} rejected: {_tsig_error(e)}", permanent=True
            ) from None
        except dns.tsig.PeerBadTime:
            raise UpdateError("TSIG BADTIME: check this machine's clock", permanent=False) from None
        except dns.exception.Timeout:
            raise UpdateError(f"no answer from {self._shown()}", permanent=False) from None
        except OSError as e:
            raise UpdateError(f"{self._shown()}: {e.strerror or e}", permanent=False) from None
        except dns.exception.DNSException as e:
            raise UpdateError(f"bad answer from {self._shown()}: {e}", permanent=False) from None
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return "NOERROR"
        text = dns.rcode.to_text(rcode)
        if rcode in _PERMANENT_RCODES:
            raise UpdateError(
                f"{self._shown()} answered {text} for {host} {rdtype} (zone {zone}, key "
                f"{self.config.key_name})",
                permanent=True,
            )
        raise UpdateError(f"{self._shown()} answered {text}", permanent=False)

    def _shown(self) -> str:
        return f"{self.config.host}#{self.config.port}"

    def _server_address(self) -> str:
        try:
            infos = socket.getaddrinfo(self.config.host, self.config.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise UpdateError(f"cannot resolve {self.config.host}: {e.strerror}", False) from None
        return str(infos[0][4][0])


def _tsig_error(e: Exception) -> str:
    names: dict[type[Exception], str] = {
        dns.tsig.PeerBadKey: "BADKEY (the server does not know this key name/algorithm)",
        dns.tsig.PeerBadSignature: "BADSIG (wrong secret)",
        dns.tsig.PeerBadTruncation: "BADTRUNC",
    }
    return names.get(type(e), str(e))


# DynDNS2 reply words (dyn.com's return codes)
_GOOD = ("good", "nochg")
_TRANSIENT = ("dnserr", "911")
_AUTH_WORDS = {
    "badauth": "bad user name or password",
    "nohost": "the host does not exist or this user may not update it",
    "notfqdn": "not a fully qualified host name",
    "numhost": "too many hosts in one request",
    "abuse": "the server blocked this user for abuse",
    "badagent": "the server refused this client",
    "!donator": "a feature the account does not have",
}


class Dyndns2Updater:
    """GET URL?hostname=H&myip=V4 (or &myipv6=V6) with HTTP Basic auth.

    The families are sent apart (`myip` for A, `myipv6` for AAAA), so a v6-only
    change never touches the A record."""

    def __init__(self, config: Dyndns2, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self.context: ssl.SSLContext | None = None
        if config.url.startswith("https:"):
            # Verify the certificate: against the pinned CA file if given, else the system's.
            cafile = str(config.ca_file) if config.ca_file else None
            self.context = ssl.create_default_context(cafile=cafile)
        token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def update(self, host: dns.name.Name, rdtype: str, address: IPAddress) -> str:
        name = host.to_text(omit_final_dot=True)
        parameter = "myip" if rdtype == "A" else "myipv6"
        query = urllib.parse.urlencode({"hostname": name, parameter: str(address)})
        separator = "&" if "?" in self.config.url else "?"
        url = f"{self.config.url}{separator}{query}"
        shown = self.config.url
        try:
            status, body = http_get(url, self.timeout, self.context, headers=self.headers)
        except ssl.SSLCertVerificationError as e:
            raise UpdateError(
                f"{shown}: certificate not trusted ({e.verify_message}); "
                "set dyndns2.ca_file to pin the server's CA",
                permanent=True,
            ) from None
        except TimeoutError:
            raise UpdateError(f"{shown}: no answer within {self.timeout:g} s", False) from None
        except (OSError, SourceError) as e:
            text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise UpdateError(f"{shown}: {text}", permanent=False) from None
        return dyndns2_reply(status, body, shown, self.config.username, name)


def dyndns2_reply(status: int, body: str, shown: str, username: str, host: str) -> str:
    """The reply's first line (`good IP`, `nochg IP`); UpdateError for anything else,
    permanent when sending again cannot help."""
    words = body.strip().split()
    word = words[0] if words else ""
    if status == 401 or word == "badauth":
        raise UpdateError(
            f"{shown}: badauth: {_AUTH_WORDS['badauth']} (user {username})", permanent=True
        )
    if status != 200:
        raise UpdateError(f"{shown}: HTTP status {status}", permanent=status < 500)
    if word in _GOOD:
        return " ".join(words[:2])
    if word in _AUTH_WORDS:
        raise UpdateError(f"{shown}: {word}: {_AUTH_WORDS[word]} ({host})", permanent=True)
    if word in _TRANSIENT:
        raise UpdateError(f"{shown}: {word}: the server could not update now", False)
    raise UpdateError(f"{shown}: unexpected answer {body.strip()[:80]!r}", permanent=False)


def make_updater(config: Rfc2136 | Dyndns2, timeout: float) -> Updater:
    if isinstance(config, Rfc2136):
        return Rfc2136Updater(config, timeout)
    return Dyndns2Updater(config, timeout)
