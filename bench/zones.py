"""Benchmark inputs: zone files, the TSIG key, dnsperf query and update files.

Everything is generated from a seeded random generator, so two runs with the
same sizes query the same names in the same order.
"""

from __future__ import annotations

import base64
import random
import secrets
from dataclasses import dataclass
from pathlib import Path

SMALL_ORIGIN = "small.bench."
LARGE_ORIGIN = "large.bench."
KEY_NAME = "bench-key"
KEY_ALGORITHM = "hmac-sha256"

SOA_TEMPLATE = "@ 3600 IN SOA ns1.{origin} hostmaster.{origin} 1 3600 600 604800 300\n"


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: str
    secret: str  # base64

    def dnsperf_arg(self) -> str:
        """The `-y alg:name:secret` argument of dnsperf."""
        return f"{self.algorithm}:{self.name}:{self.secret}"


@dataclass(frozen=True)
class ZoneFile:
    origin: str  # absolute, with the trailing dot
    path: Path
    names: int  # owner names with an A record (the large zone's hosts)

    @property
    def name(self) -> str:
        """The zone name without the trailing dot, as config files want it."""
        return self.origin.rstrip(".")


@dataclass(frozen=True)
class Inputs:
    key: TsigKey
    small: ZoneFile
    large: ZoneFile
    small_queries: Path
    large_queries: Path
    # dnsperf -u input per number of updates in flight (1, 64): disjoint hosts,
    # so that no run replays another's updates (see write_updates).
    large_updates: dict[int, Path]
    update_blocks: int


def new_key() -> TsigKey:
    return TsigKey(KEY_NAME, KEY_ALGORITHM, base64.b64encode(secrets.token_bytes(32)).decode())


def host_address(i: int) -> str:
    """The original A record of the large zone's i-th host (10.0.0.0/8)."""
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def update_address(i: int) -> str:
    """The address an update sets on the i-th host (100.64.0.0/10), never the original."""
    return f"100.{64 + ((i >> 16) & 63)}.{(i >> 8) & 255}.{i & 255}"


def update_address_2(i: int) -> str:
    """The address of a second pass over the i-th host (172.16.0.0/12): differs from both."""
    return f"172.{16 + ((i >> 16) & 15)}.{(i >> 8) & 255}.{i & 255}"


def host_label(i: int) -> str:
    return f"h{i:07d}"


# The small zone: a realistic mix of types, ~100 names.
SMALL_HOSTS = 80


def write_small_zone(path: Path) -> ZoneFile:
    o = SMALL_ORIGIN
    lines = [f"$ORIGIN {o}\n", "$TTL 3600\n", SOA_TEMPLATE.format(origin=o)]
    lines += [
        "@ NS ns1\n",
        "@ NS ns2\n",
        "@ A 192.0.2.1\n",
        "@ AAAA 2001:db8::1\n",
        "@ MX 10 mail\n",
        "@ MX 20 mail2\n",
        '@ TXT "v=spf1 mx -all"\n',
        '@ TXT "bench zone for ddns-server"\n',
        "ns1 A 192.0.2.2\n",
        "ns1 AAAA 2001:db8::2\n",
        "ns2 A 192.0.2.3\n",
        "mail A 192.0.2.4\n",
        "mail AAAA 2001:db8::4\n",
        "mail2 A 192.0.2.5\n",
        "www CNAME @\n",
        "ftp CNAME www\n",
        "*.wild A 192.0.2.6\n",
        "*.wild AAAA 2001:db8::6\n",
        # A delegation with in-bailiwick glue: queries below it get a referral.
        "sub NS ns.sub\n",
        "sub NS ns2.sub\n",
        "ns.sub A 192.0.2.7\n",
        "ns2.sub A 192.0.2.8\n",
    ]
    for i in range(SMALL_HOSTS):
        lines.append(f"host{i:03d} 300 A 198.51.100.{i + 1}\n")
        if i % 2 == 0:
            lines.append(f"host{i:03d} 300 AAAA 2001:db8:100::{i + 1:x}\n")
        if i % 10 == 0:
            lines.append(f'host{i:03d} 300 TXT "host {i}"\n')
    path.write_text("".join(lines))
    return ZoneFile(o, path, SMALL_HOSTS)


def write_large_zone(path: Path, hosts: int) -> ZoneFile:
    o = LARGE_ORIGIN
    with path.open("w") as f:
        f.write(f"$ORIGIN {o}\n$TTL 3600\n")
        f.write(SOA_TEMPLATE.format(origin=o))
        f.write("@ NS ns1\nns1 A 192.0.2.53\n@ MX 10 mail\nmail A 192.0.2.25\n")
        f.write('@ TXT "large bench zone"\n')
        chunk: list[str] = []
        for i in range(hosts):
            chunk.append(f"{host_label(i)} 300 A {host_address(i)}\n")
            if len(chunk) == 10000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    return ZoneFile(o, path, hosts)


def _nx_label(rng: random.Random) -> str:
    return "nx-" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))


def write_small_queries(path: Path, count: int, rng: random.Random) -> None:
    """80% existing names (A/AAAA), 10% NXDOMAIN, 10% MX/TXT/SOA/NODATA."""
    o = SMALL_ORIGIN
    existing = [f"host{i:03d}.{o} A" for i in range(SMALL_HOSTS)]
    existing += [f"host{i:03d}.{o} AAAA" for i in range(0, SMALL_HOSTS, 2)]
    existing += [
        f"{o} A",
        f"{o} AAAA",
        f"www.{o} A",  # CNAME to the apex
        f"ftp.{o} A",  # CNAME chain
        f"mail.{o} AAAA",
        f"anything.wild.{o} A",  # wildcard
        f"x{rng.randrange(1000)}.wild.{o} AAAA",
        f"host.sub.{o} A",  # referral
    ]
    other = [
        f"{o} MX",
        f"{o} TXT",
        f"{o} SOA",
        f"host010.{o} TXT",
        f"host001.{o} MX",  # NODATA
        f"host001.{o} AAAA",  # NODATA (odd hosts have no AAAA)
        f"www.{o} MX",  # CNAME, other type
    ]
    _write_mix(path, count, rng, existing, other, o)


def write_large_queries(path: Path, count: int, hosts: int, rng: random.Random) -> None:
    """80% existing names (A), 10% NXDOMAIN, 10% MX/TXT/SOA/NODATA."""
    o = LARGE_ORIGIN
    n_existing = count * 8 // 10
    existing = [f"{host_label(rng.randrange(hosts))}.{o} A" for _ in range(n_existing)]
    other = [f"{o} MX", f"{o} TXT", f"{o} SOA"]
    other += [f"{host_label(rng.randrange(hosts))}.{o} AAAA" for _ in range(100)]  # NODATA
    _write_mix(path, count, rng, existing, other, o)


def _write_mix(
    path: Path,
    count: int,
    rng: random.Random,
    existing: list[str],
    other: list[str],
    origin: str,
) -> None:
    n_existing = count * 8 // 10
    n_nx = count // 10
    n_other = count - n_existing - n_nx
    lines = [rng.choice(existing) for _ in range(n_existing)]
    lines += [f"{_nx_label(rng)}.{origin} A" for _ in range(n_nx)]
    lines += [rng.choice(other) for _ in range(n_other)]
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n")


def write_updates(path: Path, zone: ZoneFile, hosts: list[int]) -> int:
    """dnsperf -u input: each message replaces the A record of one host.

    Format (man dnsperf): a block starts with the zone name, then `delete`/`add`
    lines with names relative to the zone, and ends with `send`. Two passes over
    `hosts`, the second with other addresses: dnsperf starts over at the top when
    it reaches the end, and then every update still changes the record (a replay
    of the same address would be a cheaper no-change update). Returns the blocks.
    """
    with path.open("w") as f:
        for address in (update_address, update_address_2):
            for i in hosts:
                label = host_label(i)
                f.write(f"{zone.name}\ndelete {label} A\nadd {label} 300 A {address(i)}\nsend\n")
    return 2 * len(hosts)


def generate(workdir: Path, large_hosts: int, seed: int = 2136) -> Inputs:
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    small = write_small_zone(workdir / "small.bench.zone")
    large = write_large_zone(workdir / "large.bench.zone", large_hosts)
    small_q = workdir / "small.queries"
    large_q = workdir / "large.queries"
    write_small_queries(small_q, 10_000, rng)
    write_large_queries(large_q, min(large_hosts, 200_000), large_hosts, rng)
    # Each update run (1 and 64 in flight) gets its own half of the hosts: the
    # 64-in-flight run does not start over on the hosts the first run set.
    order = rng.sample(range(large.names), min(large.names, 200_000))
    half = len(order) // 2
    updates: dict[int, Path] = {}
    blocks = 0
    for q, hosts in ((1, order[:half]), (64, order[half:])):
        updates[q] = workdir / f"large.updates.q{q}"
        blocks += write_updates(updates[q], large, hosts)
    return Inputs(new_key(), small, large, small_q, large_q, updates, blocks)
