"""Where the public address comes from, which addresses count as public, and consensus.

Three kinds of source, each asked for one family (4 or 6):

- ``checkip``: an HTTP(S) URL answering ``Current IP Address: X`` (this
  server's ``/nic/checkip``, dyndns' checkip) or a bare address. The
  connection is made in the family asked for, so a dual-stack service tells
  the v4 and the v6 address apart.
- ``interface``: an address of a named local interface (for a machine that
  holds the public address itself: a router, a PC on a public IPv6 prefix).
- ``route``: the source address the OS picks to reach a public address (a UDP
  socket is connected, which sends no packet).

Every source is asked concurrently; `decide` applies the policy (`first`: the
first source in the listed order that answers; `majority`: an address more than
half of the listed sources report). Only the standard library (plus psutil,
optional, for interfaces off Linux): this runs unchanged on Windows.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import re
import socket
import ssl
import sys
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

POLICIES = ("first", "majority")
SOURCE_KINDS = ("checkip", "interface", "route")
# Where the route source "connects": public anycast resolvers. A connected UDP
# socket sends nothing; the kernel only picks the route and the source address.
DEFAULT_ROUTE_TARGETS = {4: "1.1.1.1", 6: "2606:4700:4700::1111"}
MAX_BODY = 4096  # a check-IP answer is one short line
USER_AGENT = "ddns-server-client/0.1"

_CHECKIP_RE = re.compile(r"Current IP Address:\s*([0-9A-Fa-f:.]+)", re.I)


class SourceError(Exception):
    """A source gave no usable answer; the message says why (one line)."""


@dataclass(frozen=True)
class Source:
    kind: str  # checkip | interface | route
    value: str  # the URL, the interface name, or the route target address
    line: int = 0  # where the config declares it (for messages)
    ca_file: str | None = None  # a pinned CA (PEM) for an https checkip URL

    @property
    def label(self) -> str:
        return f"{self.kind} {self.value}"


@dataclass(frozen=True)
class Answer:
    """One source's answer: an address, or the reason it has none."""

    source: Source
    address: IPAddress | None
    error: str | None = None

    def __str__(self) -> str:
        return f"{self.source.label}: {self.address if self.address else self.error}"


@dataclass(frozen=True)
class Decision:
    """The address a family takes (None: no update this round) and why."""

    family: int
    address: IPAddress | None
    reason: str
    answers: tuple[Answer, ...] = ()


# ---------------------------------------------------------------------------
# classification


def not_public_reason(ip: IPAddress) -> str | None:
    """Why `ip` is not a public address (None when it is globally routable).

    Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
    2001:db8::/32) are not public either: nothing routes them.
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_global:
        return None
    if ip.is_private:
        return "a private or reserved address (RFC 1918, ULA, documentation, ...)"
    return "not a globally routable address"


def rejection(ip: IPAddress, allow_private: bool) -> str | None:
    """Why `ip` may not be sent (None when it may).

    Never an address that names no host (unspecified, multicast); private,
    loopback and link-local ones only with `allow_private`.
    """
    if ip.is_unspecified or ip.is_multicast:
        return f"{ip} is {'unspecified' if ip.is_unspecified else 'multicast'}"
    if allow_private:
        return None
    reason = not_public_reason(ip)
    return f"{ip} is {reason} (set allow_private: true to send it)" if reason else None


def parse_address(text: str, family: int) -> IPAddress:
    """An address of `family` from text; SourceError otherwise."""
    text = text.strip()
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise SourceError(f"not an IP address: {shown!r}") from None
    if ip.version != family:
        raise SourceError(f"{ip} is not an IPv{family} address")
    return ip


def parse_checkip(body: str, family: int) -> IPAddress:
    """The address in a check-IP answer: `Current IP Address: X` (also inside HTML) or bare."""
    match = _CHECKIP_RE.search(body)
    return parse_address(match.group(1) if match else body, family)


# ---------------------------------------------------------------------------
# sources


def _connector(family: int) -> Callable[..., socket.socket]:
    """socket.create_connection, resolving and connecting in one address family only."""
    af = socket.AF_INET if family == 4 else socket.AF_INET6

    def connect(
        address: tuple[str, int],
        timeout: float | None = None,
        _source_address: tuple[str, int] | None = None,  # as socket.create_connection
    ) -> socket.socket:
        host, port = address
        try:
            infos = socket.getaddrinfo(host, port, af, socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise SourceError(f"no IPv{family} address for {host}: {e.strerror}") from None
        error: OSError | None = None
        for _af, kind, proto, _name, sockaddr in infos:
            sock = socket.socket(af, kind, proto)
            try:
                sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as e:
                error = e
                sock.close()
        raise error or SourceError(f"no IPv{family} address for {host}")

    return connect


def http_connection(
    url: str, timeout: float, context: ssl.SSLContext | None, family: int | None = None
) -> tuple[http.client.HTTPConnection, str]:
    """A connection for `url` (and the request target), optionally in one family."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"not an http(s) URL: {url}")
    try:
        port = parts.port
    except ValueError:
        raise SourceError(f"bad port in {url}") from None
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=timeout, context=context or ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    if family is not None:
        # http.client's own hook for making the socket (an instance attribute, set
        # in __init__ to socket.create_connection): the one way to pick the family.
        connection._create_connection = _connector(family)  # type: ignore[attr-defined]
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return connection, target


def http_get(
    url: str,
    timeout: float,
    context: ssl.SSLContext | None = None,
    family: int | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """GET `url`: (status, body text, at most MAX_BODY bytes). OSError/SourceError on failure."""
    connection, target = http_connection(url, timeout, context, family)
    try:
        connection.request("GET", target, headers={"User-Agent": USER_AGENT, **(headers or {})})
        response = connection.getresponse()
        body = response.read(MAX_BODY)
        return response.status, body.decode("utf-8", errors="replace")
    except http.client.HTTPException as e:
        raise SourceError(f"bad HTTP answer: {e.__class__.__name__}") from None
    finally:
        connection.close()


def checkip(url: str, family: int, timeout: float, context: ssl.SSLContext | None) -> IPAddress:
    """The address a check-IP URL sees when reached over IPv`family`."""
    try:
        status, body = http_get(url, timeout, context, family)
    except ssl.SSLCertVerificationError as e:
        raise SourceError(f"certificate not trusted: {e.verify_message}") from None
    except TimeoutError:
        raise SourceError(f"no answer within {timeout:g} s") from None
    except OSError as e:
        raise SourceError(str(e.strerror or e)) from None
    if status != 200:
        raise SourceError(f"HTTP status {status}")
    return parse_checkip(body, family)


def route_source(target: str, family: int) -> IPAddress:
    """The source address the OS would use towards `target` (no packet is sent)."""
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    try:
        with socket.socket(af, socket.SOCK_DGRAM) as sock:
            sock.connect((target, 53))
            address = sock.getsockname()[0]
    except OSError as e:
        raise SourceError(f"no IPv{family} route to {target}: {e.strerror or e}") from None
    return parse_address(str(address), family)


def interface_addresses(name: str, family: int) -> list[IPAddress]:
    """The addresses of interface `name` in `family`, best first (stable before temporary).

    Linux: the kernel's own view through the standard library (/proc for IPv6,
    the SIOCGIFADDR ioctl for IPv4). Elsewhere (Windows, macOS, BSD): psutil,
    an optional dependency (``pip install 'ddns-server[client]'``).
    """
    if sys.platform.startswith("linux"):
        return _linux_addresses(name, family)
    return psutil_addresses(name, family)


def psutil_addresses(name: str, family: int) -> list[IPAddress]:
    try:
        import psutil
    except ImportError:
        raise SourceError(
            f"reading an interface's address on {sys.platform} needs psutil: "
            "pip install 'ddns-server[client]' (or use a checkip or route source)"
        ) from None
    interfaces = psutil.net_if_addrs()
    if name not in interfaces:
        raise SourceError(f"no interface named {name!r} (have: {', '.join(sorted(interfaces))})")
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    found = []
    for item in interfaces[name]:
        if item.family == af:
            try:
                found.append(parse_address(item.address, family))
            except SourceError:
                continue
    return found


# /proc/net/if_inet6 flags (linux/if_addr.h)
_IFA_F_TEMPORARY = 0x01
_IFA_F_DADFAILED = 0x08
_IFA_F_DEPRECATED = 0x20
_IFA_F_TENTATIVE = 0x40
_SIOCGIFADDR = 0x8915


def _linux_addresses(name: str, family: int) -> list[IPAddress]:
    if not name or len(name) > 15 or "/" in name:
        raise SourceError(f"bad interface name {name!r}")
    if family == 6:
        try:
            with open("/proc/net/if_inet6", encoding="ascii") as f:
                rows = [line.split() for line in f]
        except OSError:
            return []  # IPv6 disabled
        stable: list[IPAddress] = []
        temporary: list[IPAddress] = []
        for row in rows:
            if len(row) != 6 or row[5] != name:
                continue
            flags = int(row[4], 16)
            if flags & (_IFA_F_DADFAILED | _IFA_F_DEPRECATED | _IFA_F_TENTATIVE):
                continue
            ip = ipaddress.IPv6Address(int(row[0], 16))
            (temporary if flags & _IFA_F_TEMPORARY else stable).append(ip)
        if not stable and not temporary and not _linux_interface_exists(name):
            raise SourceError(f"no interface named {name!r}")
        return stable + temporary
    import fcntl  # Linux only: this branch never runs on Windows
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(
                sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15])
            )
        except OSError as e:
            if not _linux_interface_exists(name):
                raise SourceError(f"no interface named {name!r}") from None
            if e.errno == 99:  # EADDRNOTAVAIL: the interface has no IPv4 address
                return []
            raise SourceError(f"cannot read {name}'s address: {e.strerror}") from None
    return [ipaddress.IPv4Address(packed[20:24])]


def _linux_interface_exists(name: str) -> bool:
    return any(name == n for _, n in socket.if_nameindex())


def interface_source(name: str, family: int, allow_private: bool) -> IPAddress:
    """The interface's first address that may be sent; else SourceError saying why not."""
    addresses = interface_addresses(name, family)
    if not addresses:
        raise SourceError(f"{name} has no IPv{family} address")
    for ip in addresses:
        if rejection(ip, allow_private) is None:
            return ip
    return addresses[0]  # rejected by `ask`, with its reason


# ---------------------------------------------------------------------------
# asking and deciding


def ask(
    source: Source,
    family: int,
    *,
    timeout: float,
    allow_private: bool,
) -> Answer:
    """One source's answer; errors and rejected addresses become the answer's error."""
    try:
        if source.kind == "checkip":
            context = None
            if source.ca_file is not None:
                context = ssl.create_default_context(cafile=source.ca_file)
            ip = checkip(source.value, family, timeout, context)
        elif source.kind == "interface":
            ip = interface_source(source.value, family, allow_private)
        elif source.kind == "route":
            ip = route_source(source.value or DEFAULT_ROUTE_TARGETS[family], family)
        else:
            raise SourceError(f"unknown source kind {source.kind!r}")
    except SourceError as e:
        return Answer(source, None, str(e))
    except Exception as e:  # a source must never stop the others
        return Answer(source, None, f"{e.__class__.__name__}: {e}")
    reason = rejection(ip, allow_private)
    if reason is not None:
        return Answer(source, None, f"rejected: {reason}")
    return Answer(source, ip)


def decide(family: int, policy: str, answers: Sequence[Answer]) -> Decision:
    """The address the sources agree on, by `policy`, or None with the reason.

    `first`: the first source in the listed order that has a usable address.
    `majority`: an address reported by more than half of ALL listed sources
    (a source that is down counts against every address, so two sources
    out of three must agree even when the third is down).
    """
    shown = "; ".join(str(a) for a in answers)
    usable = [a for a in answers if a.address is not None]
    if not usable:
        return Decision(family, None, f"no source gave an address ({shown})", tuple(answers))
    if policy == "first":
        chosen = usable[0]
        return Decision(
            family, chosen.address, f"first answer, from {chosen.source.label}", tuple(answers)
        )
    counts = Counter(a.address for a in usable)
    (best, votes), *rest = counts.most_common()
    if votes * 2 > len(answers) and not (rest and rest[0][1] == votes):
        return Decision(
            family, best, f"{votes} of {len(answers)} sources agree ({shown})", tuple(answers)
        )
    return Decision(
        family, None, f"no majority of {len(answers)} sources ({shown})", tuple(answers)
    )


def detect(
    families: dict[int, tuple[str, Sequence[Source]]],
    *,
    timeout: float,
    allow_private: bool,
) -> dict[int, Decision]:
    """Ask every source of every family at once; a Decision per family.

    `families` maps 4/6 to (policy, sources). Threads, not asyncio: the
    sources block (sockets, ioctl), and a pool works the same on every OS.
    """
    jobs = [(family, source) for family, (_, sources) in families.items() for source in sources]
    results: dict[tuple[int, int], Answer] = {}
    if jobs:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
            futures = {
                pool.submit(
                    ask,
                    source,
                    family,
                    timeout=timeout,
                    allow_private=allow_private,
                ): (family, index)
                for index, (family, source) in enumerate(jobs)
            }
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
    decisions = {}
    for family, (policy, _sources) in families.items():
        answers = [results[key] for key in sorted(results) if key[0] == family]
        decisions[family] = decide(family, policy, answers)
    return decisions
