"""DynDNS2 (`/nic/update`): a request -> per-host A/AAAA changes and reply words.

The protocol is the one dyn.com defined and routers, ddclient and inadyn speak:
HTTP Basic auth, `hostname=H1,H2` (at most 20), `myip=` (IPv4, IPv6 or the
`IPV4,IPV6` pair), one reply line per host in request order, and account-wide
failures (`badauth`, `badagent`, `abuse`) answered once.

Pure: no Twisted. The edge decides the client's address (`client_address`
below, with the trusted proxies), runs the slow scrypt check in a thread when
`Dyndns2.start` asks for it (`Verify`), and writes the `UpdateResponse`. Everything
else runs on the reactor thread, the journal commit included. Time is a
parameter (`now`), so tests control it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import logging
import secrets
from base64 import b64decode, b64encode
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdatatype

from ddns_server import model
from ddns_server.errors import DdnsError
from ddns_server.passwords import is_valid_hash, verify_password
from ddns_server.store import Store
from ddns_server.zonedata import CNAME, Changeset, Record, ZoneData, find_zone, name_to_wire

log = logging.getLogger("ddns_server.dyndns2")

A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
CHANNEL = "dyndns2"
MAX_HOSTS = 20  # dyn.com: more than 20 hosts in one request is `numhost`
FLOOD_WINDOW = 60.0  # seconds; dyndns.max_updates_per_minute counts within it
# Bounds on the memory the abuse counters may take (an attacker picks the keys).
_PRUNE_AT = 10_000
_CACHE_PER_USER = 8

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Reply(enum.Enum):
    """The DynDNS2 reply words (dyn.com's return codes)."""

    GOOD = "good"
    NOCHG = "nochg"
    BADAUTH = "badauth"
    NOHOST = "nohost"
    NOTFQDN = "notfqdn"
    NUMHOST = "numhost"
    ABUSE = "abuse"
    BADAGENT = "badagent"
    DNSERR = "dnserr"
    SERVER_ERROR = "911"


@dataclass(frozen=True)
class UpdateRequest:
    """One /nic/update request, as the edge saw it."""

    args: Mapping[str, Sequence[str]]  # query (and form) arguments, decoded
    authorization: str | None = None  # the Authorization header
    user_agent: str | None = None
    client: str = ""  # the client's address, trusted proxies already applied
    cert_cn: str | None = None  # subject CN of a verified client certificate (mTLS)


@dataclass(frozen=True)
class UpdateResponse:
    """The reply: one line per host, or one for an account-wide failure."""

    lines: tuple[str, ...]
    status: int = 200
    challenge: bool = False  # 401 with `WWW-Authenticate: Basic`

    def body(self) -> bytes:
        return "".join(line + "\n" for line in self.lines).encode()


@dataclass(frozen=True)
class Verify:
    """A password the edge must check with `passwords.verify_password` (slow: scrypt),
    in a thread, then hand back to `Dyndns2.finish`."""

    request: UpdateRequest
    user_name: str
    password: str
    password_hash: str  # for an unknown user: a dummy of the same cost, so timing tells nothing
    source: str  # the rate-limit key of the client's address


# ---------------------------------------------------------------------------
# parsing


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header (RFC 7617), or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        raw = b64decode(token.strip(), validate=True)
    except ValueError:
        return None
    # RFC 7617 §2.1: UTF-8 is what clients send today; Latin-1 never fails.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, sep, password = text.partition(":")
    if not sep or not user:
        return None
    return user, password


def parse_hostnames(args: Mapping[str, Sequence[str]]) -> list[str]:
    """The `hostname` list, in request order (empty entries dropped)."""
    names: list[str] = []
    for value in args.get("hostname", ()):
        names.extend(part.strip() for part in value.split(","))
    return [name for name in names if name]


def parse_address(text: str) -> IPAddress | None:
    """An IPv4 or IPv6 address (IPv4-mapped IPv6 as IPv4); None if malformed or scoped."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None:
            return None  # fe80::1%eth0 means nothing to anyone else
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
    return ip


def parse_addresses(
    args: Mapping[str, Sequence[str]], client: str
) -> tuple[ipaddress.IPv4Address | None, ipaddress.IPv6Address | None]:
    """The addresses to set: (IPv4 or None, IPv6 or None).

    `myip` holds one address or the `IPV4,IPV6` pair (ddclient, FritzBox);
    `myipv6` an IPv6 address. Malformed values are skipped here; the caller
    refuses them first (`malformed_addresses`).
    With no usable address the client's own is used, in its family only:
    the families are independent, so an IPv4-only request never touches AAAA.
    """
    v4: ipaddress.IPv4Address | None = None
    v6: ipaddress.IPv6Address | None = None
    candidates = [part for value in args.get("myip", ()) for part in value.split(",")]
    candidates += [part for value in args.get("myipv6", ()) for part in value.split(",")]
    for text in candidates:
        ip = parse_address(text) if text.strip() else None
        if isinstance(ip, ipaddress.IPv4Address):
            v4 = v4 or ip
        elif isinstance(ip, ipaddress.IPv6Address):
            v6 = v6 or ip
    if v4 is None and v6 is None:
        ip = parse_address(client)
        if isinstance(ip, ipaddress.IPv4Address):
            v4 = ip
        elif isinstance(ip, ipaddress.IPv6Address):
            v6 = ip
    return v4, v6


# Addresses that can never be a host's public address (what ddns providers
# refuse): unspecified, "this network", multicast, class E and the limited
# broadcast. Documentation ranges (RFC 5737, RFC 3849) are let through: they
# are what examples and tests use, and route nowhere either way.
_NEVER_PUBLIC = tuple(
    ipaddress.ip_network(text)
    for text in ("0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "::/128", "ff00::/8")
)
# Loopback, RFC 1918, shared (RFC 6598), link-local and unique-local: real
# on a LAN, so published only while `dyndns.allow_private_addresses` is on.
_PRIVATE = tuple(
    ipaddress.ip_network(text)
    for text in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def address_problem(ip: IPAddress, allow_private: bool) -> str | None:
    """Why `ip` must not be published, or None when it may be."""
    if any(ip in network for network in _NEVER_PUBLIC):
        return "can never be a host's address"
    if not allow_private and any(ip in network for network in _PRIVATE):
        return "is private or loopback (dyndns.allow_private_addresses is off)"
    return None


def malformed_addresses(args: Mapping[str, Sequence[str]]) -> list[str]:
    """The non-empty `myip`/`myipv6` entries that are no usable address."""
    texts = [
        part
        for key in ("myip", "myipv6")
        for value in args.get(key, ())
        for part in value.split(",")
    ]
    return [text for text in texts if text.strip() and parse_address(text) is None]


def parse_fqdn(text: str) -> dns.name.Name | None:
    """A fully qualified host name (two labels or more), or None (`notfqdn`)."""
    text = text.strip()
    if not text or any(c.isspace() for c in text):
        return None
    try:
        name = dns.name.from_text(text)
    except dns.exception.DNSException:
        return None
    return name if len(name.labels) >= 3 else None  # two labels + the root


def _hop_address(text: str) -> IPAddress | None:
    """One X-Forwarded-For entry: `IP`, `IP:PORT` or `[IPv6]:PORT`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return parse_address(text)


def client_address(peer: str, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy.

    Then `X-Forwarded-For` is read from the right (each proxy appends the
    address it saw): the rightmost entry that is not itself a trusted proxy
    is the client. A malformed entry ends the walk at the last good hop, so a
    client can never choose its address by sending the header itself.
    """
    ip = parse_address(peer)
    if ip is None:
        return peer
    if not trusted:
        return str(ip)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    while hops and any(ip in network for network in trusted):
        hop = _hop_address(hops.pop())
        if hop is None:
            break
        ip = hop
    return str(ip)


def networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """config.trusted_proxies as network objects."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


def source_key(client: str) -> str:
    """What failed logins are counted by: the address, or its /64 for IPv6
    (one subscriber usually holds a whole /64)."""
    ip = parse_address(client)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip) if ip is not None else client


# ---------------------------------------------------------------------------
# abuse protection


class FailedLogins:
    """Failed logins per key (user name, source address) in a sliding window."""

    def __init__(self) -> None:
        self._events: dict[str, deque[float]] = {}
        self._prune_at = _PRUNE_AT

    def blocked(self, key: str, now: float, limit: int, window: float) -> bool:
        events = self._events.get(key)
        if not events:
            return False
        while events and events[0] <= now - window:
            events.popleft()
        return len(events) >= limit

    def record(self, key: str, now: float, limit: int, window: float) -> None:
        events = self._events.setdefault(key, deque())
        events.append(now)
        while len(events) > limit:
            events.popleft()  # only the last `limit` matter
        if len(self._events) > self._prune_at:
            self._prune(now, window)

    def _prune(self, now: float, window: float) -> None:
        self._events = {k: v for k, v in self._events.items() if v and v[-1] > now - window}
        self._prune_at = max(_PRUNE_AT, 2 * len(self._events))  # amortised O(1) per record


class Flood:
    """Accepted requests per user in the last minute; far beyond any router's schedule
    is a flood (`abuse`)."""

    def __init__(self) -> None:
        self._times: dict[str, deque[float]] = {}

    def allow(self, user: str, now: float, limit: int) -> bool:
        times = self._times.setdefault(user, deque())
        while times and times[0] <= now - FLOOD_WINDOW:
            times.popleft()
        if len(times) >= limit:
            return False
        times.append(now)
        return True


class AuthCache:
    """Passwords verified recently, so routers polling often cost no scrypt.

    Kept per (user, password hash) as SHA-256 digests, compared in constant
    time; a changed hash in the config is a new key, so an old password stops
    working at once. A hit extends the entry's life.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], list[tuple[bytes, float]]] = {}

    @staticmethod
    def _digest(password: str) -> bytes:
        return hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()

    def hit(self, user: model.User, password: str, now: float, ttl: float) -> bool:
        entries = self._entries.get((user.name, user.password_hash))
        if not entries:
            return False
        digest = self._digest(password)
        found = False
        kept = []
        for cached, expires in entries:
            if expires <= now:
                continue
            if hmac.compare_digest(cached, digest):
                found = True
                expires = now + ttl
            kept.append((cached, expires))
        entries[:] = kept
        return found

    def add(self, user: model.User, password: str, now: float, ttl: float) -> None:
        if ttl <= 0:
            return
        entries = self._entries.setdefault((user.name, user.password_hash), [])
        digest = self._digest(password)
        entries[:] = [(d, e) for d, e in entries if e > now and d != digest]
        entries.append((digest, now + ttl))
        del entries[:-_CACHE_PER_USER]

    def clear(self) -> None:
        self._entries.clear()


def dummy_hash(like: str | None) -> str:
    """A well-formed hash no password matches, with the cost parameters of `like`
    (checking it takes as long as checking a real user's password)."""
    params = like.split("$")[2] if like and is_valid_hash(like) else "ln=15,r=8,p=1"

    def b64(data: bytes) -> str:
        return b64encode(data).decode().rstrip("=")

    encoded = f"$scrypt${params}${b64(secrets.token_bytes(16))}${b64(secrets.token_bytes(32))}"
    assert is_valid_hash(encoded)
    return encoded


# ---------------------------------------------------------------------------
# the service


@dataclass
class _ZonePlan:
    """The changes one request makes to one zone (one commit, one version)."""

    zone: ZoneData
    entries: list[tuple[int, dns.name.Name, bytes]] = field(default_factory=list)  # reply line,
    # host name, its lower-case wire form
    hosts: list[int] = field(default_factory=list)  # indices of reply lines that changed it
    log: list[str] = field(default_factory=list)


class Dyndns2:
    """DynDNS2 updates of the store, for the users of the config.

    `config` is a getter, so a reload (SIGHUP) takes effect at once; `count`
    is called with each reply word (metrics).
    """

    def __init__(
        self,
        store: Store,
        config: Callable[[], model.Config],
        count: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self._config_getter = config
        self._count = count
        self._config: model.Config | None = None
        self._users: dict[str, model.User] = {}
        self._users_by_cn: dict[str, model.User] = {}
        self._hosts: dict[str, dict[bytes, dns.name.Name]] = {}  # user -> low wire -> name
        self._ttls: dict[bytes, int] = {}  # zone apex (low wire) -> dyndns_ttl
        self._dummy = dummy_hash(None)
        self.failures = FailedLogins()
        self.flood = Flood()
        self.cache = AuthCache()
        # (owner as lower-cased wire, rdtype) -> True when the health checker owns
        # that RRset (zones[].failover): such a host is answered `nohost`.
        self.owned: Callable[[bytes, int], bool] = lambda low, rdtype: False

    # -- the two steps ---------------------------------------------------------

    def start(self, request: UpdateRequest, now: float) -> UpdateResponse | Verify:
        """Answer the request, or ask for a password check first (`Verify`)."""
        try:
            step = self._start(request, now)
        except Exception:
            log.exception("request failed")
            step = UpdateResponse((Reply.SERVER_ERROR.value,))
        if isinstance(step, UpdateResponse):
            self._counted(step)
        return step

    def finish(self, verify: Verify, ok: bool, now: float) -> UpdateResponse:
        """Continue after the password check: `ok` is verify_password's result."""
        try:
            answer = self._finish(verify, ok, now)
        except Exception:
            log.exception("request failed")
            answer = UpdateResponse((Reply.SERVER_ERROR.value,))
        return self._counted(answer)

    def server_error(self) -> UpdateResponse:
        """`911`, for a failure outside the core (the password check's thread)."""
        return self._counted(UpdateResponse((Reply.SERVER_ERROR.value,)))

    def handle(self, request: UpdateRequest, now: float) -> UpdateResponse:
        """Both steps in one call, the password checked inline (tests, tools)."""
        step = self.start(request, now)
        if isinstance(step, UpdateResponse):
            return step
        return self.finish(step, verify_password(step.password, step.password_hash), now)

    # -- internals -------------------------------------------------------------

    def _counted(self, answer: UpdateResponse) -> UpdateResponse:
        if self._count is not None:
            for line in answer.lines:
                self._count(line.partition(" ")[0])
        return answer

    def _refresh(self) -> model.Config:
        """Index the config's users and zones again when it was reloaded."""
        config = self._config_getter()
        if config is not self._config:
            self._config = config
            self._users = {user.name: user for user in config.users}
            self._users_by_cn = {u.client_cert_cn: u for u in config.users if u.client_cert_cn}
            self._hosts = {
                user.name: {name_to_wire(h).lower(): h for h in user.hosts} for user in config.users
            }
            self._ttls = {name_to_wire(z.name).lower(): z.dyndns_ttl for z in config.zones}
            real = next((u.password_hash for u in config.users if u.password_hash), None)
            self._dummy = dummy_hash(real)
            self.cache.clear()
        return config

    def _start(self, request: UpdateRequest, now: float) -> UpdateResponse | Verify:
        if not (request.user_agent or "").strip():
            return UpdateResponse((Reply.BADAGENT.value,))
        config = self._refresh()
        credentials = parse_basic_auth(request.authorization)
        if credentials is None:
            user = self._users_by_cn.get(request.cert_cn or "")
            if user is not None and not request.authorization:
                return self._update(request, user, config, now)
            # No (usable) credentials: challenge, so wget-style clients retry with them.
            return UpdateResponse((Reply.BADAUTH.value,), status=401, challenge=True)
        name, password = credentials
        user = self._users.get(name)
        limits = config.dyndns
        if user is not None and self.cache.hit(user, password, now, limits.auth_cache_ttl):
            return self._update(request, user, config, now)
        source = source_key(request.client)
        window = limits.failed_login_window
        # Per (user, source) and per source, never per user alone: failures
        # from elsewhere must not lock a user out of her own address.
        if self.failures.blocked(
            _user_source(name, source), now, limits.max_failed_logins, window
        ) or self.failures.blocked("source:" + source, now, limits.max_failed_logins, window):
            log.warning("login of %r from %s refused: too many failures", name, source)
            return UpdateResponse((Reply.ABUSE.value,))
        password_hash = user.password_hash if user is not None and user.password_hash else ""
        return Verify(request, name, password, password_hash or self._dummy, source)

    def _finish(self, verify: Verify, ok: bool, now: float) -> UpdateResponse:
        config = self._refresh()
        user = self._users.get(verify.user_name)
        limits = config.dyndns
        # The config may have been reloaded while the check ran: the hash must still be the one.
        if not ok or user is None or user.password_hash != verify.password_hash:
            for key in (_user_source(verify.user_name, verify.source), "source:" + verify.source):
                self.failures.record(key, now, limits.max_failed_logins, limits.failed_login_window)
            log.warning("bad credentials for %r from %s", verify.user_name, verify.request.client)
            return UpdateResponse((Reply.BADAUTH.value,))
        self.cache.add(user, verify.password, now, limits.auth_cache_ttl)
        return self._update(verify.request, user, config, now)

    def _update(
        self, request: UpdateRequest, user: model.User, config: model.Config, now: float
    ) -> UpdateResponse:
        if not self.flood.allow(user.name, now, config.dyndns.max_updates_per_minute):
            log.warning("%s sends too many requests (from %s)", user.name, request.client)
            return UpdateResponse((Reply.ABUSE.value,))
        hostnames = parse_hostnames(request.args)
        if not hostnames:
            return UpdateResponse((Reply.NOTFQDN.value,))  # dyn.com: no host at all is one notfqdn
        if len(hostnames) > MAX_HOSTS:
            return UpdateResponse((Reply.NUMHOST.value,))
        bad = malformed_addresses(request.args)
        if bad:
            log.warning("%s sent an unusable myip %r: refused", user.name, bad[0][:64])
            return UpdateResponse((Reply.DNSERR.value,) * len(hostnames))
        v4, v6 = parse_addresses(request.args, request.client)
        if v4 is None and v6 is None:
            log.error("no address for %s (client %r)", user.name, request.client)
            return UpdateResponse((Reply.SERVER_ERROR.value,))
        for ip in (v4, v6):
            problem = address_problem(ip, config.dyndns.allow_private_addresses) if ip else None
            if problem is not None:
                log.warning("%s: address %s %s: refused", user.name, ip, problem)
                return UpdateResponse((Reply.DNSERR.value,) * len(hostnames))
        shown = ",".join(str(ip) for ip in (v4, v6) if ip is not None)
        lines: list[str] = [""] * len(hostnames)
        plans: dict[bytes, _ZonePlan] = {}
        own_hosts = self._hosts.get(user.name, {})
        for index, text in enumerate(hostnames):
            name = parse_fqdn(text)
            if name is None:
                lines[index] = Reply.NOTFQDN.value
                continue
            low = name_to_wire(name).lower()
            host = own_hosts.get(low)
            zone = find_zone(self.store.zones, low) if host is not None else None
            if host is None or zone is None:
                lines[index] = Reply.NOHOST.value
                continue
            if (v4 is not None and self.owned(low, A)) or (
                v6 is not None and self.owned(low, AAAA)
            ):
                # A failover RRset: the health checker's, not the user's (nothing
                # of this host changes, not even the other family).
                log.warning("%s: %s is a failover RRset; refused", user.name, host)
                lines[index] = Reply.NOHOST.value
                continue
            plans.setdefault(zone.apex, _ZonePlan(zone)).entries.append((index, host, low))
        for plan in plans.values():
            self._write(plan, user, request, lines, v4, v6, shown)
        return UpdateResponse(tuple(lines))

    def _write(
        self,
        plan: _ZonePlan,
        user: model.User,
        request: UpdateRequest,
        lines: list[str],
        v4: ipaddress.IPv4Address | None,
        v6: ipaddress.IPv6Address | None,
        shown: str,
    ) -> None:
        """One journaled version for the request's changes to one zone, through
        the store's writer (which retries against a newer version); the reply
        line of every host, `dnserr` for the changes that could not be made."""
        ttl = self._ttls.get(plan.zone.apex, 60)

        def compute(zone: ZoneData) -> Changeset:
            # Called again if another process journaled first: start afresh.
            plan.hosts.clear()
            plan.log.clear()
            changeset = Changeset()
            planned: set[tuple[bytes, int]] = set()  # a host named twice changes once
            for index, host, low in plan.entries:
                if not self._can_hold_address(zone, low):
                    log.warning("%s: a CNAME or a delegation is in the way", host)
                    lines[index] = Reply.DNSERR.value
                    continue
                changed = False
                for rdtype, ip in ((A, v4), (AAAA, v6)):
                    if ip is None or (low, rdtype) in planned:
                        continue
                    existing = zone.records_at(low, rdtype)
                    rdata = ip.packed
                    if [rr[3] for rr in existing] == [rdata]:
                        continue  # already the zone's address: nochg, no new version
                    changeset.removed.extend(existing)
                    changeset.added.append((name_to_wire(host), rdtype, ttl, rdata))
                    planned.add((low, rdtype))
                    plan.log.append(
                        f"{host.to_text(omit_final_dot=True)} {dns.rdatatype.to_text(rdtype)} "
                        f"{_addresses(existing, rdtype)} -> {ip}"
                    )
                    changed = True
                if changed:
                    plan.hosts.append(index)
                lines[index] = f"{(Reply.GOOD if changed else Reply.NOCHG).value} {shown}"
            return changeset

        try:
            version = self.store.write(
                plan.zone.origin, compute, who=user.name, source=request.client, channel=CHANNEL
            )
        except DdnsError as e:  # a pre-commit check refused the change
            log.warning("change of %s for %s refused: %s", plan.zone.origin, user.name, e)
            version = None
        except Exception:
            log.exception("committing %s for %s failed", plan.zone.origin, user.name)
            version = None
        if version is None:
            # Nothing journaled: the hosts it would have changed get `dnserr`
            # (none when there was nothing to change).
            for index in plan.hosts:
                lines[index] = Reply.DNSERR.value
            return
        for change in plan.log:
            log.info(
                "%s from %s: %s (zone %s serial %d)",
                user.name,
                request.client,
                change,
                plan.zone.origin.to_text(omit_final_dot=True),
                version.serial,
            )

    @staticmethod
    def _can_hold_address(zone: ZoneData, low: bytes) -> bool:
        """False when an A/AAAA here would break the zone: RFC 1034 §3.6.2 (nothing
        beside a CNAME), or the name is at or below a delegation (RFC 1034 §4.2.1:
        the data there is not ours to serve)."""
        node = zone.nodes.get(low)
        if node is not None and CNAME in node:
            return False
        return zone.delegation(low) is None


def _user_source(user: str, source: str) -> str:
    """The failed-login key of one user from one source (the user name may hold any text)."""
    return f"user:{source} {user}"


def _addresses(records: list[Record], rdtype: int) -> str:
    """The addresses of A/AAAA records as text, for the log ("-" when none)."""
    if not records:
        return "-"
    if rdtype == A:
        return ",".join(str(ipaddress.IPv4Address(rr[3])) for rr in records)
    return ",".join(str(ipaddress.IPv6Address(rr[3])) for rr in records)
