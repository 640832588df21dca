"""What every upstream provider must do, checked through the Provider interface
against a real (or documented-double) peer. Each tests/integration/test_provider_*.py
builds its provider and peer and calls these.
"""

from __future__ import annotations

from ddns_server.mirrors.base import Change, Provider, RRset


def sample(zone: str) -> list[RRset]:
    """One RRset of every type the issue names, below dyn.ZONE (ZONE absolute)."""
    d = f"dyn.{zone}"
    return [
        RRset(f"home.{d}", "A", 60, ("192.0.2.1",)),
        RRset(f"home.{d}", "AAAA", 60, ("2001:db8::1",)),
        RRset(f"home.{d}", "TXT", 120, ('"v=spf1 -all"',)),
        RRset(f"www.{d}", "CNAME", 300, (f"home.{d}",)),
        RRset(f"{d}", "MX", 3600, (f"10 mail.{zone}", f"20 backup.{zone}")),
    ]


def replaced(zone: str) -> list[RRset]:
    """The same keys with other values, TTLs and value counts."""
    d = f"dyn.{zone}"
    return [
        RRset(f"home.{d}", "A", 30, ("192.0.2.2", "192.0.2.3")),
        RRset(f"home.{d}", "AAAA", 60, ("2001:db8::2",)),
        RRset(f"home.{d}", "TXT", 120, ('"hello world"', '"key=value; other"')),
        RRset(f"www.{d}", "CNAME", 300, (f"other.{zone}",)),
        RRset(f"{d}", "MX", 600, (f"5 mx.{zone}",)),
    ]


def keys(rrsets: list[RRset]) -> list[tuple[str, str]]:
    return [r.key for r in rrsets]


def put(rrsets: list[RRset]) -> list[Change]:
    return [Change(r.key, r) for r in rrsets]


def delete(rrsets: list[RRset]) -> list[Change]:
    return [Change(r.key, None) for r in rrsets]


def managed(provider: Provider, rrsets: list[RRset]) -> list[RRset]:
    """What the provider reads back for those keys, sorted."""
    return sorted(provider.read(keys(rrsets)))


def check_create_replace_delete(provider: Provider, zone: str) -> None:
    first, second = sample(zone), replaced(zone)
    assert managed(provider, first) == []

    provider.apply(put(first))
    assert managed(provider, first) == sorted(first)

    provider.apply(put(second))
    got = managed(provider, second)
    assert got == sorted(second), got

    # a delete of one type leaves the other types at the same name alone
    provider.apply(delete(second[:1]))
    assert managed(provider, second) == sorted(second[1:])

    provider.apply(delete(second))
    assert managed(provider, second) == []
    # deleting what is already gone is not an error (pushes are repeated after a crash)
    provider.apply(delete(second))


def check_a_becomes_cname(provider: Provider, zone: str) -> None:
    """One push that deletes the A and creates a CNAME at the same name, listed
    CNAME first: the provider must delete before it creates (CNAME stands alone)."""
    name = f"swap.dyn.{zone}"
    a = RRset(name, "A", 60, ("192.0.2.8",))
    cname = RRset(name, "CNAME", 60, (f"home.dyn.{zone}",))
    provider.apply(put([a]))
    provider.apply([Change(cname.key, cname), Change(a.key, None)])
    assert sorted(provider.read([a.key, cname.key])) == [cname]
    provider.apply([Change(a.key, a), Change(cname.key, None)])
    assert sorted(provider.read([a.key, cname.key])) == [a]
