"""Update policy: BIND's grant match kinds, the type filter, first match, default deny."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import pytest

from ddns_server.config import PolicyRule
from ddns_server.policy import allowed, granted_keys

ORIGIN = dns.name.from_text("example.test")
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
TXT = dns.rdatatype.TXT
NS = dns.rdatatype.NS
SOA = dns.rdatatype.SOA
MX = dns.rdatatype.MX


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text, ORIGIN)


def rule(
    key: str, match: str, name: str | None = None, types: list[int] | None = None
) -> PolicyRule:
    return PolicyRule(n(key), match, n(name) if name else None, frozenset(types) if types else None)


CASES = [
    # (rules, key, owner, type, allowed?)
    # name: exactly the rule's name
    ([rule("k", "name", "www")], "k", "www", A, True),
    ([rule("k", "name", "www")], "k", "WWW", A, True),  # names compare case-insensitively
    ([rule("k", "name", "www")], "k", "a.www", A, False),
    ([rule("k", "name", "www")], "k", "ww", A, False),
    ([rule("k", "name", "www")], "other", "www", A, False),
    # subdomain: the name and below
    ([rule("k", "subdomain", "dyn")], "k", "dyn", A, True),
    ([rule("k", "subdomain", "dyn")], "k", "a.b.dyn", A, True),
    ([rule("k", "subdomain", "dyn")], "k", "xdyn", A, False),
    ([rule("k", "subdomain", "dyn")], "k", "@", A, False),
    ([rule("k", "subdomain", "dyn")], "other", "a.dyn", A, False),
    # zonesub: anywhere in the zone, the rule's name unused
    ([rule("k", "zonesub")], "k", "@", TXT, True),
    ([rule("k", "zonesub")], "k", "deep.down.there", A, True),
    ([rule("k", "zonesub")], "other", "www", A, False),
    # self: the owner is the key's name
    ([rule("host1", "self")], "host1", "host1", A, True),
    ([rule("host1", "self")], "host1", "host2", A, False),
    ([rule("host1", "self")], "host1", "a.host1", A, False),
    ([rule("host1", "self"), rule("host2", "self")], "host2", "host2", A, True),
    # wildcard: *.x covers names strictly below x
    ([rule("k", "wildcard", "*.w")], "k", "a.w", A, True),
    ([rule("k", "wildcard", "*.w")], "k", "b.a.w", A, True),
    ([rule("k", "wildcard", "*.w")], "k", "*.w", A, True),
    ([rule("k", "wildcard", "*.w")], "k", "w", A, False),
    ([rule("k", "wildcard", "*.w")], "k", "a.x", A, False),
    ([rule("k", "wildcard", "*.w")], "other", "a.w", A, False),
    # types: the list, or (omitted) everything but SOA, apex NS and DNSSEC types
    ([rule("k", "zonesub", types=[A, AAAA])], "k", "www", A, True),
    ([rule("k", "zonesub", types=[A, AAAA])], "k", "www", TXT, False),
    ([rule("k", "zonesub")], "k", "www", MX, True),
    ([rule("k", "zonesub")], "k", "@", SOA, False),
    ([rule("k", "zonesub")], "k", "@", NS, False),
    # BIND: no NS without listing it, below the apex too (no hijacking by referral)
    ([rule("k", "zonesub")], "k", "sub", NS, False),
    ([rule("k", "zonesub")], "k", "sub", dns.rdatatype.DS, False),
    ([rule("k", "zonesub")], "k", "sub", dns.rdatatype.DNAME, False),
    ([rule("k", "zonesub")], "k", "www", dns.rdatatype.RRSIG, False),
    ([rule("k", "zonesub")], "k", "www", dns.rdatatype.NSEC3, False),
    ([rule("k", "zonesub", types=[NS, dns.rdatatype.DNAME])], "k", "sub", NS, True),
    (
        [rule("k", "zonesub", types=[NS, dns.rdatatype.DNAME])],
        "k",
        "sub",
        dns.rdatatype.DNAME,
        True,
    ),
    ([rule("k", "zonesub")], "k", "www", dns.rdatatype.RRSIG, False),
    ([rule("k", "zonesub")], "k", "www", dns.rdatatype.NSEC, False),
    ([rule("k", "zonesub", types=[SOA, NS])], "k", "@", SOA, True),
    ([rule("k", "zonesub", types=[SOA, NS])], "k", "@", NS, True),
    # first match wins; a rule that does not match (name or type) passes to the next
    ([rule("k", "name", "www", [A]), rule("k", "zonesub", types=[TXT])], "k", "www", TXT, True),
    ([rule("k", "name", "www", [A]), rule("k", "zonesub", types=[TXT])], "k", "www", MX, False),
    # no rules: deny
    ([], "k", "www", A, False),
]


@pytest.mark.parametrize(("rules", "key", "owner", "rdtype", "expected"), CASES)
def test_allowed(
    rules: list[PolicyRule], key: str, owner: str, rdtype: int, expected: bool
) -> None:
    assert allowed(rules, ORIGIN, n(key), n(owner), rdtype) is expected


@pytest.mark.parametrize("match", ["name", "subdomain", "zonesub", "self", "wildcard"])
def test_unsigned_is_never_allowed(match: str) -> None:
    name = {"name": "www", "subdomain": "www", "wildcard": "*.www"}.get(match)
    assert not allowed([rule("www", match, name)], ORIGIN, None, n("www"), A)
    assert not allowed([rule("www", match, name)], ORIGIN, None, n("a.www"), A)


def test_granted_keys() -> None:
    rules = [rule("a", "zonesub"), rule("b", "self"), rule("a", "name", "www")]
    assert granted_keys(rules) == {n("a"), n("b")}
    assert granted_keys([]) == frozenset()
