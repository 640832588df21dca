"""The `zones` section -> model.Zone, with each zone's update_policy (model.PolicyRule)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dns.exception
import dns.name
import dns.rdatatype
import dns.zone
import yaml

from ddns_server.config.failover import read_failovers
from ddns_server.config.reader import Reader, join, kind, name_text, network_problem
from ddns_server.model import MATCHES, Endpoint, Failover, PolicyRule, Zone
from ddns_server.plan import DEFAULT_MAX_CHANGE_SHARE
from ddns_server.zonefile import read_zone_records

_NAME_REQUIRED = ("name", "subdomain", "wildcard")  # zonesub and self ignore `name`
_MAX_TTL = 2147483647  # RFC 2181 §8
_ZONE_KEYS = (
    "name",
    "file",
    "update_policy",
    "allow_transfer",
    "notify",
    "dyndns_ttl",
    "journal_max_versions",
    "journal_max_age_days",
    "max_change_share",
    "failover",
)
_RULE_KEYS = ("grant", "match", "name", "types")


def read_zones(reader: Reader, node: yaml.Node | None) -> tuple[Zone, ...]:
    result = []
    first_line: dict[dns.name.Name, int] = {}
    for i, item in enumerate(reader.sequence(node, "zones") if node is not None else []):
        path = join("zones", i)
        values = reader.mapping(item, path, _ZONE_KEYS)
        if not isinstance(item, yaml.MappingNode):
            continue
        before = len(reader.problems)
        origin: dns.name.Name | None = None
        if "name" not in values:
            reader.problem(item, path, "name is required")
        else:
            origin = reader.dns_name(values["name"], join(path, "name"))
        if origin is not None:
            if origin in first_line:
                reader.problem(
                    values["name"],
                    join(path, "name"),
                    f"duplicate zone '{name_text(origin)}' (first at line {first_line[origin]})",
                )
            else:
                first_line[origin] = values["name"].start_mark.line + 1
                reader.zone_names.append(origin)
        zone_file = _zone_file(reader, values.get("file"), join(path, "file"), origin)
        policy = []
        if "update_policy" in values:
            policy_path = join(path, "update_policy")
            for j, rule_node in enumerate(reader.sequence(values["update_policy"], policy_path)):
                rule = _rule(reader, rule_node, join(policy_path, j), origin)
                if rule is not None:
                    policy.append(rule)
        networks, transfer_keys = _allow_transfer(
            reader, values.get("allow_transfer"), join(path, "allow_transfer")
        )
        notify: tuple[Endpoint, ...] = ()
        if "notify" in values:
            notify = reader.endpoints(values["notify"], join(path, "notify"), 53)
        numbers = {"dyndns_ttl": 60, "journal_max_versions": 1000, "journal_max_age_days": 0}
        limits = {
            "dyndns_ttl": (0, _MAX_TTL),
            "journal_max_versions": (1, None),
            "journal_max_age_days": (0, None),
        }
        for key, (low, high) in limits.items():
            if key in values:
                number = reader.integer(values[key], join(path, key), low, high)
                if number is not None:
                    numbers[key] = number
        share: float | None = DEFAULT_MAX_CHANGE_SHARE
        if "max_change_share" in values:
            share = reader.number(values["max_change_share"], join(path, "max_change_share"), 0, 1)
        failover: tuple[Failover, ...] = ()
        if "failover" in values:
            failover = read_failovers(reader, values["failover"], join(path, "failover"), origin)
        if origin is None or share is None or len(reader.problems) != before:
            continue
        result.append(
            Zone(
                name=origin,
                file=zone_file,
                update_policy=tuple(policy),
                allow_transfer_networks=networks,
                allow_transfer_keys=transfer_keys,
                notify=notify,
                dyndns_ttl=numbers["dyndns_ttl"],
                journal_max_versions=numbers["journal_max_versions"],
                journal_max_age_days=numbers["journal_max_age_days"],
                max_change_share=share,
                failover=failover,
            )
        )
    return tuple(result)


def _zone_file(
    reader: Reader, node: yaml.Node | None, path: str, origin: dns.name.Name | None
) -> Path | None:
    if node is None:
        return None  # the zone's content comes from the journal
    text = reader.string(node, path)
    if text is None:
        return None
    file = reader.file_path(text)
    shown = reader.shown(text)
    if not file.is_file():
        reader.problem(node, path, f"no such file: {shown}")
        return file
    if not reader.check_zone_files or origin is None:
        return file
    line = node.start_mark.line + 1
    try:
        read_zone_records(file, origin, shown)
    except dns.exception.SyntaxError as e:
        # The message already starts with "FILE:LINE: ".
        reader.problems.append((line, str(e)))
    except dns.zone.NoSOA:
        reader.problem(node, path, f"{shown}: no SOA record at the zone apex '{name_text(origin)}'")
    except dns.zone.NoNS:
        reader.problem(node, path, f"{shown}: no NS records at the zone apex '{name_text(origin)}'")
    except dns.exception.DNSException as e:
        reader.problem(node, path, f"{shown}: {e}")
    except UnicodeDecodeError:
        reader.problem(node, path, f"{shown}: not UTF-8 text")
    except OSError as e:
        reader.problem(node, path, f"{shown}: cannot read: {e.strerror or e}")
    return file


def _rule(
    reader: Reader, node: yaml.Node, path: str, origin: dns.name.Name | None
) -> PolicyRule | None:
    values = reader.mapping(node, path, _RULE_KEYS)
    if not isinstance(node, yaml.MappingNode):
        return None
    before = len(reader.problems)
    grant: dns.name.Name | None = None
    if "grant" not in values:
        reader.problem(node, path, "grant is required (a key name)")
    else:
        grant = reader.dns_name(values["grant"], join(path, "grant"))
        if grant is not None and grant not in reader.key_names:
            known = ", ".join(sorted(name_text(k) for k in reader.key_names)) or "none"
            reader.problem(
                values["grant"],
                join(path, "grant"),
                f"unknown key '{name_text(grant)}' (configured keys: {known})",
            )
    match: str | None = None
    if "match" not in values:
        reader.problem(node, path, f"match is required (one of {', '.join(MATCHES)})")
    else:
        match = reader.string(values["match"], join(path, "match"))
        if match is not None and match not in MATCHES:
            reader.problem(
                values["match"],
                join(path, "match"),
                f"unknown match {match!r} (expected one of {', '.join(MATCHES)})",
            )
    name: dns.name.Name | None = None
    if "name" in values:
        name = reader.dns_name(values["name"], join(path, "name"))
    elif match in _NAME_REQUIRED:
        reader.problem(node, path, f"name is required for match {match}")
    if name is not None and match in _NAME_REQUIRED:
        _check_rule_name(reader, values["name"], join(path, "name"), name, match, origin)
    types = _types(reader, values["types"], join(path, "types")) if "types" in values else None
    if len(reader.problems) != before or grant is None or match is None:
        return None
    # Like BIND, zonesub and self ignore the name field.
    return PolicyRule(grant, match, name if match in _NAME_REQUIRED else None, types)


def _check_rule_name(
    reader: Reader,
    node: yaml.Node,
    path: str,
    name: dns.name.Name,
    match: str | None,
    origin: dns.name.Name | None,
) -> None:
    if match == "wildcard" and (not name.labels or name.labels[0] != b"*"):
        reader.problem(node, path, f"wildcard names start with '*.', got '{name_text(name)}'")
    elif origin is not None and not name.is_subdomain(origin):
        reader.problem(
            node, path, f"'{name_text(name)}' is not inside the zone '{name_text(origin)}'"
        )


def _types(reader: Reader, node: yaml.Node, path: str) -> frozenset[int] | None:
    result: set[int] = set()
    items = reader.sequence(node, path)
    if isinstance(node, yaml.SequenceNode) and not items:
        reader.problem(node, path, "empty list (omit types, or use [ANY], for every type)")
    any_type = False
    for i, item in enumerate(items):
        # Read the word as written: YAML would turn NULL (a type) into null.
        if not isinstance(item, yaml.ScalarNode) or not item.value:
            reader.problem(item, join(path, i), f"expected a record type, got {kind(item)}")
            continue
        word = str(item.value)
        try:
            rdtype = dns.rdatatype.from_text(word)
        except dns.exception.DNSException:
            reader.problem(item, join(path, i), f"unknown record type {word!r}")
            continue
        if rdtype == dns.rdatatype.ANY:
            any_type = True
        elif dns.rdatatype.is_metatype(rdtype):
            reader.problem(item, join(path, i), f"{word} is not a record type")
        else:
            result.add(rdtype)
    return None if any_type or not result else frozenset(result)


def _allow_transfer(
    reader: Reader, node: yaml.Node | None, path: str
) -> tuple[tuple[str, ...], tuple[dns.name.Name, ...]]:
    networks: list[str] = []
    keys: list[dns.name.Name] = []
    for i, item in enumerate(reader.sequence(node, path) if node is not None else []):
        item_path = join(path, i)
        text = reader.string(item, item_path)
        if text is None:
            continue
        if text.startswith("key:"):
            key_text = text[4:].strip()
            try:
                key = dns.name.from_text(key_text) if key_text else None
            except dns.exception.DNSException:
                key = None
            if key is None or key not in reader.key_names:
                known = ", ".join(sorted(name_text(k) for k in reader.key_names)) or "none"
                reader.problem(
                    item, item_path, f"unknown key {key_text!r} (configured keys: {known})"
                )
            else:
                keys.append(key)
            continue
        try:
            networks.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            reader.problem(
                item,
                item_path,
                f"invalid entry {text!r}: {network_problem(text)} (expected a network or key:NAME)",
            )
    return tuple(networks), tuple(keys)
