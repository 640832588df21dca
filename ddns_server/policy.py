"""RFC 2136 update policy: which key may change which names and types.

The rules are a zone's `update_policy` (model.PolicyRule), with the
semantics of BIND's `update-policy` grant rules of the same name
(lib/dns/ssu.c, dns_ssutable_checkrules):

* `name`: the record's owner is exactly the rule's name;
* `subdomain`: the owner is the rule's name or below it;
* `zonesub`: the owner is anywhere in the zone (BIND: `subdomain` of the
  zone's origin; the rule's name is not used);
* `self`: the owner is the key's own name;
* `wildcard`: the rule's name is `*.x` and the owner is strictly below `x`
  (BIND's dns_name_matcheswildcard).

The first rule whose key, name and types match grants; no match denies.
Unsigned updates match no rule (BIND: grant rules for key identities need a
signer), so they are always refused: there is no config syntax for an
unsigned grant.
"""

from __future__ import annotations

from collections.abc import Iterable

import dns.name
import dns.rdatatype

from ddns_server.model import PolicyRule
from ddns_server.zonedata import is_subdomain

# A rule without `types` (or with [ANY]) covers every type except these.
# BIND's update-policy (ARM, "update-policy"; lib/dns/ssu.c): "If the type
# is omitted, it matches all types except RRSIG, NS, SOA, NSEC and NSEC3".
# NS anywhere (not only at the apex): a key for a name must not be able to
# delegate the names below it to another server (issue 14, item 11). Also
# DS and DNAME, which redirect or secure whole subtrees the same way: a
# deliberate step beyond BIND's list, as the issue asks. A rule that lists
# a type grants it.
NOT_BY_DEFAULT = frozenset(
    {
        dns.rdatatype.SOA,
        dns.rdatatype.NS,
        dns.rdatatype.RRSIG,
        dns.rdatatype.NSEC,
        dns.rdatatype.NSEC3,
        dns.rdatatype.DS,
        dns.rdatatype.DNAME,
    }
)


def name_matches(
    rule: PolicyRule,
    origin: dns.name.Name,
    key_name: dns.name.Name,
    rr_name: dns.name.Name,
) -> bool:
    """Does the rule's match kind cover `rr_name` (for this key)?"""
    return _NameMatcher(rule, _low(origin), key_name).matches(_low(rr_name))


def type_matches(
    rule: PolicyRule, origin: dns.name.Name, rr_name: dns.name.Name, rdtype: int
) -> bool:
    """Does the rule's type list cover `rdtype` at `rr_name`?"""
    if rule.types is not None:
        return rdtype in rule.types
    return rdtype not in NOT_BY_DEFAULT


class _NameMatcher:
    """One rule's match kind on lower-cased wire names.

    DNS names compare case-insensitively (ASCII only), and `bytes.lower()`
    only touches A-Z, so a lower-cased wire name equals another exactly when
    the Names are equal, and is below another exactly when its wire ends
    with the other's at a label boundary (zonedata.is_subdomain): the same
    answers as dnspython's Name comparisons, without a Name per record (a
    64 KB UPDATE holds thousands of owners, issue 14 item 9).
    """

    __slots__ = ("kind", "wire")

    def __init__(self, rule: PolicyRule, origin: bytes, key_name: dns.name.Name) -> None:
        match = rule.match
        self.kind = match
        self.wire = b""
        if match == "zonesub":
            self.wire = origin
        elif match == "self":
            self.wire = _low(key_name)
        elif rule.name is None or match not in ("name", "subdomain", "wildcard"):
            self.kind = ""  # matches nothing
        elif match == "wildcard":
            # `*.x` matches names strictly below x (dns_name_matcheswildcard).
            self.wire = _low(rule.name.parent())
        else:
            self.wire = _low(rule.name)

    def matches(self, low: bytes) -> bool:
        kind = self.kind
        if kind == "zonesub" or kind == "subdomain":
            return is_subdomain(low, self.wire)
        if kind == "self" or kind == "name":
            return low == self.wire
        if kind == "wildcard":
            return low != self.wire and is_subdomain(low, self.wire)
        return False


class KeyPolicy:
    """What one key may change in one zone: its rules, matched on wire names.

    Built once per UPDATE; `allows` then costs no Name object per record.
    The one implementation of `allowed` below, so both answer alike.
    """

    __slots__ = ("_rules",)

    def __init__(
        self, rules: Iterable[PolicyRule], origin: dns.name.Name, key_name: dns.name.Name | None
    ) -> None:
        origin_low = _low(origin)
        # Unsigned updates match no rule; other keys' rules never apply.
        self._rules = (
            [
                (_NameMatcher(rule, origin_low, key_name), rule.types)
                for rule in rules
                if rule.grant == key_name
            ]
            if key_name is not None
            else []
        )

    def allows(self, low: bytes, rdtype: int) -> bool:
        """May the key change the `rdtype` RRset at lower-cased wire owner `low`?

        Rules only grant: the first rule whose name and types match grants,
        none denies (BIND's first match, where every rule is a grant).
        """
        for matcher, types in self._rules:
            if not matcher.matches(low):
                continue
            if types is not None:
                if rdtype in types:
                    return True
            elif rdtype not in NOT_BY_DEFAULT:
                return True
        return False


def allowed(
    rules: Iterable[PolicyRule],
    origin: dns.name.Name,
    key_name: dns.name.Name | None,
    rr_name: dns.name.Name,
    rdtype: int,
) -> bool:
    """May `key_name` (None: unsigned) change the `rdtype` RRset at `rr_name`?

    First match wins; no match denies (BIND: the same, and our rules only
    grant).
    """
    return KeyPolicy(rules, origin, key_name).allows(_low(rr_name), rdtype)


def _low(name: dns.name.Name) -> bytes:
    wire = name.to_wire()
    assert wire is not None  # None only when writing into a file
    return wire.lower()


def granted_keys(rules: Iterable[PolicyRule]) -> frozenset[dns.name.Name]:
    """The keys some rule grants something to.

    An update signed by any other key (or by none) is refused before its
    prerequisites are looked at, so it cannot probe the zone's content.
    """
    return frozenset(rule.grant for rule in rules)
