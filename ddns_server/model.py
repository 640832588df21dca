"""The values the core works with: plain frozen dataclasses, no YAML, no I/O.

config/ fills them from the YAML file (validated); the pure core (policy, update,
xfr, dyndns2, store, ...) imports only this module, so loading the RFC 2136 logic
never loads PyYAML or the config readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dns.name

from ddns_server.mirrors.spec import MirrorSpec
from ddns_server.plan import DEFAULT_MAX_CHANGE_SHARE


@dataclass(frozen=True)
class Endpoint:
    host: str  # "127.0.0.1" or "::1" (no brackets)
    port: int


@dataclass(frozen=True)
class TsigKey:
    name: dns.name.Name
    algorithm: dns.name.Name  # e.g. dns.tsig.HMAC_SHA256
    secret: bytes  # decoded


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str  # "" = no password login (client certificate only)
    hosts: tuple[dns.name.Name, ...]
    client_cert_cn: str | None = None  # a verified client certificate with this CN logs in


# The match types of an update_policy rule (BIND's update-policy names).
MATCHES = ("name", "subdomain", "zonesub", "self", "wildcard")


@dataclass(frozen=True)
class PolicyRule:
    grant: dns.name.Name  # key name
    match: str  # one of MATCHES
    name: dns.name.Name | None
    types: frozenset[int] | None  # None = every type except policy.NOT_BY_DEFAULT


# Failover RRsets (zones[].failover, docs/failover.md).
FAILOVER_POLICIES = ("first", "all")
FAILOVER_PROTOCOLS = ("tcp", "http", "https")
FAILOVER_ALL_DOWN = ("all", "none")


@dataclass(frozen=True)
class FailoverCheck:
    """How each target of a failover RRset is probed."""

    protocol: str = "tcp"  # one of FAILOVER_PROTOCOLS
    port: int = 80
    path: str = "/"  # http(s)
    expect_status: tuple[int, ...] = ()  # http(s); () = any 2xx or 3xx (as Route 53)
    host: str | None = None  # http(s): Host header (and TLS SNI)


@dataclass(frozen=True)
class Failover:
    """A health-checked RRset: the checker owns `name`/`rdtype` in its zone."""

    name: dns.name.Name  # absolute
    rdtype: int  # A or AAAA
    # Literal addresses (text, as ipaddress prints them) and/or names of the zone
    # (absolute) whose current records of `rdtype` are candidates, in order.
    targets: tuple[str | dns.name.Name, ...]
    check: FailoverCheck = field(default_factory=FailoverCheck)
    policy: str = "first"  # one of FAILOVER_POLICIES
    interval: float = 10.0
    timeout: float = 2.0
    rise: int = 2
    fall: int = 3
    ttl: int = 30
    on_all_down: str = "all"  # one of FAILOVER_ALL_DOWN


@dataclass(frozen=True)
class Zone:
    name: dns.name.Name
    file: Path | None
    update_policy: tuple[PolicyRule, ...] = ()
    allow_transfer_networks: tuple[str, ...] = ()  # ipaddress network strings
    allow_transfer_keys: tuple[dns.name.Name, ...] = ()
    notify: tuple[Endpoint, ...] = ()
    dyndns_ttl: int = 60
    journal_max_versions: int = 1000
    journal_max_age_days: int = 0  # 0 = no age limit
    # import/rollback/undo deleting more than this share of the zone need --force
    max_change_share: float = DEFAULT_MAX_CHANGE_SHARE
    failover: tuple[Failover, ...] = ()


@dataclass(frozen=True)
class Listen:
    """The `listen` section: where the server accepts DNS, HTTP and HTTPS."""

    dns: tuple[Endpoint, ...] = (Endpoint("127.0.0.1", 5353),)
    http: tuple[Endpoint, ...] = ()
    https: tuple[Endpoint, ...] = ()


@dataclass(frozen=True)
class Tls:
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None  # CAs whose client certificates are checked (mTLS)


@dataclass(frozen=True)
class Dyndns:
    """Abuse limits of the DynDNS2 endpoint (docs/configuration.md)."""

    max_failed_logins: int = 10  # per (user, source address) and per source ...
    failed_login_window: int = 600  # ... within this many seconds, then `abuse`
    max_updates_per_minute: int = 30  # per user; beyond it `abuse`
    auth_cache_ttl: int = 600  # seconds a verified password stays cached (0: never)
    max_pending_logins: int = 64  # password checks in progress or queued; beyond: `911`
    allow_private_addresses: bool = True  # publish loopback/RFC 1918/ULA addresses (LAN names)


@dataclass(frozen=True)
class Log:
    """The `log:` section: line format and the lowest level written (docs/operations.md)."""

    format: str = "text"  # text | json
    level: str = "info"  # debug | info | warning | error


DEFAULT_DNS_LISTEN: tuple[Endpoint, ...] = Listen().dns


@dataclass(frozen=True)
class UpdateLimits:
    """What one change may make a zone hold (ddns_server.limits; 0 = unlimited).

    `update_limits:` in the config. The first two are BIND's
    max-records-per-type and max-types-per-name with BIND 9.20's defaults.
    """

    max_records_per_type: int = 100
    max_types_per_name: int = 100
    max_rdata_size: int = 4096  # octets of one record's data
    max_rrset_size: int = 32768  # octets of one RRset on the wire (half a TCP message)


# The largest TSIG fudge honoured in a request (seconds): RFC 8945 §10's 300,
# BIND's own fudge. `tsig_max_fudge:` in the config.
TSIG_MAX_FUDGE = 300


@dataclass(frozen=True)
class HttpLimits:
    """The `http:` section: what one HTTP client may make the server hold."""

    max_request_line: int = 8192  # bytes; longer: 414
    max_header_bytes: int = 16384  # request line and headers; more: 431
    max_headers: int = 100  # more: 431
    max_body_bytes: int = 65536  # more: 413 (a chunk size beyond it: 400)
    header_timeout: float = 10.0  # seconds for a whole request to arrive; then 408
    idle_timeout: float = 60.0  # seconds a kept-alive connection may idle
    max_connections_per_source: int = 32  # open connections per address (proxies excepted)


@dataclass(frozen=True)
class RateLimit:
    """The `rate_limit:` section (INTERFACE.md): response rate limiting of UDP answers."""

    responses_per_second: int = 20  # 0: not limited (as BIND)
    nxdomains_per_second: int | None = None  # default: responses_per_second
    errors_per_second: int | None = None  # default: responses_per_second
    window: int = 15
    slip: int = 2
    ipv4_prefix_length: int = 24
    ipv6_prefix_length: int = 56
    exempt: tuple[str, ...] = ()  # networks, as text


@dataclass(frozen=True)
class Config:
    path: Path
    data_dir: Path
    dns: tuple[Endpoint, ...] = ()
    http: tuple[Endpoint, ...] = ()
    https: tuple[Endpoint, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    tls: Tls = field(default_factory=Tls)
    dyndns: Dyndns = field(default_factory=Dyndns)
    keys: tuple[TsigKey, ...] = ()
    users: tuple[User, ...] = ()
    zones: tuple[Zone, ...] = ()
    update_limits: UpdateLimits = field(default_factory=UpdateLimits)
    tsig_max_fudge: int = TSIG_MAX_FUDGE
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    rate_limit: RateLimit | None = None  # response rate limiting; None: off
    mirrors: tuple[MirrorSpec, ...] = ()
    log: Log = field(default_factory=Log)

    @property
    def journal_path(self) -> Path:
        """The SQLite journal of every zone (the server and the CLI open the same file)."""
        return self.data_dir / "journal.sqlite3"
