"""Update policy: BIND's grant match kinds, the type filter, first match, default deny."""

from __future__ import annotations

import random

import dns.name
import dns.rdatatype
import pytest

from ddns_server.config import PolicyRule
from ddns_server.policy import NOT_BY_DEFAULT, KeyPolicy, allowed, granted_keys

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
    # case never matters, in the rule's name, the key's or the owner's
    ([rule("k", "name", "WwW")], "k", "wWw", A, True),
    ([rule("k", "subdomain", "Dyn")], "k", "a.DYN", A, True),
    ([rule("k", "subdomain", "Dyn")], "k", "xDYN", A, False),
    ([rule("k", "wildcard", "*.W")], "k", "A.w", A, True),
    ([rule("k", "wildcard", "*.W")], "k", "w", A, False),
    ([rule("Host1", "self")], "hOST1", "HOST1", A, True),
    # label boundaries: a name that ends with the rule's octets is not below it
    ([rule("k", "subdomain", "b.c")], "k", "ab.c", A, False),
    ([rule("k", "wildcard", "*.b.c")], "k", "ab.c", A, False),
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


def _reference(
    rules: list[PolicyRule], key: dns.name.Name, owner: dns.name.Name, rdtype: int
) -> bool:
    """The rules as dnspython's Name comparisons state them (BIND's ssu.c)."""
    for r in rules:
        if r.grant != key:
            continue
        if r.match == "zonesub":
            hit = owner.is_subdomain(ORIGIN)
        elif r.match == "self":
            hit = owner == key
        elif r.name is None:
            hit = False
        elif r.match == "name":
            hit = owner == r.name
        elif r.match == "subdomain":
            hit = owner.is_subdomain(r.name)
        else:
            base = r.name.parent()
            hit = owner.is_subdomain(base) and len(owner) > len(base)
        if hit and (rdtype in r.types if r.types is not None else rdtype not in NOT_BY_DEFAULT):
            return True
    return False


def test_wire_matching_agrees_with_name_comparisons() -> None:
    """KeyPolicy compares lower-cased wire names: the same answers as Names,
    over generated rules, keys and owners (case mixed, labels that share
    octets without a label boundary)."""
    rng = random.Random(14)
    labels = ["a", "A", "b", "ab", "Ab", "*", "x-y", "\\.", "\\065"]

    def name() -> str:
        return ".".join(rng.choice(labels) for _ in range(rng.randrange(1, 4)))

    checked = 0
    for _ in range(400):
        rules = []
        for _ in range(rng.randrange(1, 4)):
            match = rng.choice(["name", "subdomain", "zonesub", "self", "wildcard"])
            target = "*." + name() if match == "wildcard" else name()
            types = rng.choice([None, [A], [A, TXT, NS]])
            rules.append(rule(rng.choice(["k", "K", "j"]), match, target, types))
        key = n(rng.choice(["k", "K", "j", name()]))
        policy = KeyPolicy(rules, ORIGIN, key)
        for _ in range(10):
            owner = n(name()) if rng.random() < 0.9 else ORIGIN
            rdtype = rng.choice([A, TXT, NS, MX])
            want = _reference(rules, key, owner, rdtype)
            assert policy.allows(owner.to_wire().lower(), rdtype) is want
            assert allowed(rules, ORIGIN, key, owner, rdtype) is want
            checked += want
    assert checked > 200  # both answers are common


def test_granted_keys() -> None:
    rules = [rule("a", "zonesub"), rule("b", "self"), rule("a", "name", "www")]
    assert granted_keys(rules) == {n("a"), n("b")}
    assert granted_keys([]) == frozenset()
