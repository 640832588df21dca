"""Response rate limiting (RRL) for UDP answers, as BIND and Knot do it.

A server on the internet is an amplifier: a forged query of 40 bytes can
make it send 1,000 bytes to the victim whose address was forged. RRL counts
identical answers to one client prefix (an IPv4 /24, an IPv6 /56 by default)
and, beyond a rate, drops them, or every `slip`-th one answers truncated
(TC=1, no records), so a real client behind that address retries over TCP,
which cannot be forged and is never limited.

The accounting is BIND's (`lib/ns/rrl.c`): one token bucket per (client
prefix, response class); each second credits `rate` tokens, up to `rate`
(a burst of one second's worth); each answer takes one; below zero it is
limited, and the debt is capped at `window` seconds' worth, so a client that
stops recovers within `window` seconds. Response classes, also BIND's:

* a positive answer or NODATA: per query name and type
  (`responses_per_second`);
* NXDOMAIN: all of one prefix's NXDOMAINs together (`nxdomains_per_second`;
  BIND pools them per zone, and a ddns-server serves few zones), so random
  names do not escape the limit;
* REFUSED, FORMERR, SERVFAIL and other errors: all of one prefix's together
  (`errors_per_second`).

Pure and cheap: no Twisted, no logging, no allocation beyond a dict lookup
and a short slice for a client whose prefix and answer were seen before.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from ddns_server.model import RateLimit

SEND = 0
DROP = 1
SLIP = 2

_NXDOMAIN = 3
# Bounds on memory an attacker who forges sources can make us use (BIND's
# max-table-size defaults to 20,000 entries too).
MAX_ENTRIES = 20_000
_MAX_PREFIXES = 20_000


@dataclass
class RrlCounters:
    """Limited answers since start (kept across reloads, for /metrics)."""

    dropped: int = 0
    slipped: int = 0


class _Bucket:
    __slots__ = ("balance", "last", "slip")

    def __init__(self, balance: float, last: float) -> None:
        self.balance = balance
        self.last = last
        self.slip = 0


# What `aggregate` gives a host nothing limits: taking from it never empties it.
UNLIMITED = _Bucket(float("inf"), 0.0)


@dataclass
class RateLimiter:
    """Decides, per UDP answer, whether to send, drop or slip it."""

    settings: RateLimit
    counters: RrlCounters = field(default_factory=RrlCounters)

    def __post_init__(self) -> None:
        s = self.settings
        self.rate = float(s.responses_per_second)
        self.nx_rate = float(
            s.responses_per_second if s.nxdomains_per_second is None else s.nxdomains_per_second
        )
        self.err_rate = float(
            s.responses_per_second if s.errors_per_second is None else s.errors_per_second
        )
        self.window = float(s.window)
        # the lowest rate that limits anything (0: that class is not limited)
        self.agg_rate = min((r for r in (self.rate, self.nx_rate, self.err_rate) if r), default=0.0)
        self.slip = s.slip
        self._v4_mask = (0xFFFFFFFF << (32 - s.ipv4_prefix_length)) & 0xFFFFFFFF
        self._v6_mask = ((1 << 128) - 1) ^ ((1 << (128 - s.ipv6_prefix_length)) - 1)
        self._exempt: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = tuple(
            ipaddress.ip_network(text, strict=False) for text in s.exempt
        )
        # client address text -> its prefix's buckets (None: exempt); prefix -> buckets,
        # each keyed by the answer class: the question's wire, or NXDOMAIN, or error
        self._tables: dict[str, dict[bytes, _Bucket] | None] = {}
        self._by_prefix: dict[int, dict[bytes, _Bucket]] = {}
        self._count = 0  # buckets in all tables
        # the read loop's shortcut (see aggregate): host -> its prefix's aggregate bucket
        self.hosts: dict[str, _Bucket] = {}

    # -- the read loop's shortcut --------------------------------------------------

    def aggregate(self, host: str, now: float) -> _Bucket:
        """`host`'s prefix's aggregate bucket, refilled to `now` (`check`'s
        first steps), remembered in `hosts`; an inexhaustible one (never
        refilled) when nothing limits the host (exempt, not an address, or
        no class limited).

        Why: the read loop checks a whole pass of answers at one instant. At
        one instant a bucket's first check refills it and later ones only
        take from it, so the loop may take an answer itself: for a host in
        `hosts`, refill `b` once per new instant (`b.balance = min(b.balance
        + agg_rate * (now - b.last), agg_rate); b.last = now`, unless it is
        the inexhaustible one), then `if b.balance >= 1.0: b.balance -= 1.0`
        is exactly what `check` would do, and otherwise it calls `check`.
        The same arithmetic on the same state, minus a call and two lookups
        per answer (issue 14 item 17: RRL on within 5%). `hosts` is emptied
        in place whenever buckets are forgotten, so the loop looks them up again.
        """
        agg_rate = self.agg_rate
        table = self._tables.get(host)
        if table is None:
            table = self._table_of(host)
        if table is None or not agg_rate:
            agg = UNLIMITED
        else:
            found = table.get(b"")
            if found is None:
                agg = table[b""] = _Bucket(agg_rate, now)
                self._count += 1
            else:
                agg = found
                balance = agg.balance + agg_rate * (now - agg.last)
                agg.balance = balance if balance < agg_rate else agg_rate
                agg.last = now
        hosts = self.hosts
        if len(hosts) >= _MAX_PREFIXES:
            hosts.clear()
        hosts[host] = agg
        return agg

    # -- the per-answer check ----------------------------------------------------

    def check(self, host: str, query: bytes, response: bytes, now: float) -> int:
        """SEND, DROP or SLIP for `response` to `query` from `host` (UDP only)."""
        table = self._tables.get(host)
        if table is None:
            table = self._table_of(host)
            if table is None:
                return SEND  # exempt, or not an address
        agg_rate = self.agg_rate
        if agg_rate:
            # All of the prefix's answers together, at the lowest rate: while
            # they stay within it, no single answer can be over its own
            # limit, and the per-answer accounting is skipped (the cheap path
            # of every client below the limit). In debt (a flood), it stays
            # out of the way for up to `window` seconds after the flood ends.
            agg = table.get(b"")
            if agg is None:
                table[b""] = _Bucket(agg_rate - 1.0, now)
                self._count += 1
                return SEND
            if self._take(agg, agg_rate, now):
                return SEND
        rcode = response[3] & 0x0F
        if rcode == 0:
            # the question (name, type and class), case folded so 0x20 does not
            # evade; islower() is a scan where lower() is a copy (most are lower)
            key = query[12 : query.find(b"\x00", 12) + 5]
            if not key.islower():
                key = key.lower()
            rate = self.rate
        elif rcode == _NXDOMAIN:
            key = b"\x00nx"
            rate = self.nx_rate
        else:
            key = b"\x00err"
            rate = self.err_rate
        if not rate:
            return SEND  # 0: this class is not limited (as BIND)
        bucket = table.get(key)
        if bucket is None:
            if self._count >= MAX_ENTRIES:
                self._prune(now)
            table[key] = _Bucket(rate - 1.0, now)
            self._count += 1
            return SEND
        if self._take(bucket, rate, now):
            return SEND
        slip = self.slip
        if slip:
            bucket.slip += 1
            if bucket.slip >= slip:
                bucket.slip = 0
                self.counters.slipped += 1
                return SLIP
        self.counters.dropped += 1
        return DROP

    def _take(self, bucket: _Bucket, rate: float, now: float) -> bool:
        """One answer from `bucket` (credited `rate` per second, up to `rate`):
        True if it had one; else the debt grows, capped at `window` seconds' worth."""
        balance = bucket.balance + rate * (now - bucket.last)
        bucket.last = now
        if balance > rate:
            balance = rate
        balance -= 1.0
        if balance >= 0:
            bucket.balance = balance
            return True
        floor = -rate * self.window
        bucket.balance = balance if balance > floor else floor
        return False

    def _table_of(self, host: str) -> dict[bytes, _Bucket] | None:
        """The buckets of the host's prefix (shared by every host in it), or None if exempt."""
        if host in self._tables:
            return None  # known exempt
        prefix = self._prefix(host)
        table = None if prefix is None else self._by_prefix.setdefault(prefix, {})
        if len(self._tables) >= _MAX_PREFIXES:
            self._tables.clear()
        self._tables[host] = table
        return table

    def _prefix(self, host: str) -> int | None:
        """The client's prefix as an int (IPv6 offset past IPv4), or None if exempt."""
        try:
            if ":" in host:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET6, host), "big")
                ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv6Address(value)
                prefix: int | None = (value & self._v6_mask) | (1 << 128)
            else:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET, host), "big")
                ip = ipaddress.IPv4Address(value)
                prefix = value & self._v4_mask
        except (OSError, ValueError):
            prefix = None  # not an address we can key: never limited
        else:
            if any(ip in network for network in self._exempt):
                prefix = None
        return prefix

    def _prune(self, now: float) -> None:
        """Forget buckets idle for a window (full again); all of them if that is not enough."""
        self.hosts.clear()  # the read loop looks its buckets up again
        horizon = self.window + 1.0
        count = 0
        for prefix, table in list(self._by_prefix.items()):
            kept = {k: b for k, b in table.items() if now - b.last < horizon}
            table.clear()
            table.update(kept)  # the same dict: hosts of the prefix keep pointing at it
            count += len(kept)
            if not kept:
                del self._by_prefix[prefix]
        if count >= MAX_ENTRIES * 3 // 4:
            for table in self._by_prefix.values():
                table.clear()
            count = 0
        self._tables = {h: t for h, t in self._tables.items() if t is None or t}
        self._count = count


def truncated(response: bytes) -> bytes | None:
    """`response` cut to its header and question, with TC set (a slipped answer).

    None when the question cannot be walked (then the answer is dropped).
    """
    if len(response) < 12:
        return None
    qdcount = int.from_bytes(response[4:6], "big")
    pos = 12
    for _ in range(qdcount):
        while True:
            if pos >= len(response):
                return None
            length = response[pos]
            if length == 0:
                pos += 1
                break
            if length & 0xC0:  # a pointer ends the name
                pos += 2
                break
            pos += 1 + length
        pos += 4
    if pos > len(response):
        return None
    header = bytearray(response[:12])
    header[2] |= 0x02  # TC
    header[6:12] = b"\x00" * 6  # no answer, authority or additional records
    return bytes(header) + response[12:pos]
