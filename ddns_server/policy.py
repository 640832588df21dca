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
    match = rule.match
    if match == "zonesub":
        return rr_name.is_subdomain(origin)
    if match == "self":
        return rr_name == key_name
    if rule.name is None:
        return False
    if match == "name":
        return rr_name == rule.name
    if match == "subdomain":
        return rr_name.is_subdomain(rule.name)
    if match == "wildcard":
        # `*.x` matches names strictly below x (dns_name_matcheswildcard).
        base = rule.name.parent()
        return rr_name.is_subdomain(base) and len(rr_name) > len(base)
    return False


def type_matches(
    rule: PolicyRule, origin: dns.name.Name, rr_name: dns.name.Name, rdtype: int
) -> bool:
    """Does the rule's type list cover `rdtype` at `rr_name`?"""
    if rule.types is not None:
        return rdtype in rule.types
    return rdtype not in NOT_BY_DEFAULT


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
    if key_name is None:
        return False
    for rule in rules:
        if rule.grant != key_name:
            continue
        if not name_matches(rule, origin, key_name, rr_name):
            continue
        if not type_matches(rule, origin, rr_name, rdtype):
            continue
        return True
    return False


def granted_keys(rules: Iterable[PolicyRule]) -> frozenset[dns.name.Name]:
    """The keys some rule grants something to.

    An update signed by any other key (or by none) is refused before its
    prerequisites are looked at, so it cannot probe the zone's content.
    """
    return frozenset(rule.grant for rule in rules)
