"""`zones[].failover` -> model.Failover: health-checked RRsets (docs/failover.md).

Called by config/zones.py for each zone; every problem carries file:line.
Defaults: type A, policy first, check port by protocol (tcp has none: required;
http 80, https 443), path "/", expect_status any 2xx/3xx (Route 53's rule),
interval 10, timeout 2, rise 2, fall 3, ttl 30, on_all_down all.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.rdatatype
import yaml

from ddns_server.config.reader import Reader, join, name_text
from ddns_server.model import (
    FAILOVER_ALL_DOWN,
    FAILOVER_POLICIES,
    FAILOVER_PROTOCOLS,
    Failover,
    FailoverCheck,
)

_KEYS = (
    "name",
    "type",
    "targets",
    "policy",
    "check",
    "interval",
    "timeout",
    "rise",
    "fall",
    "ttl",
    "on_all_down",
)
_CHECK_KEYS = ("protocol", "port", "path", "expect_status", "host")
_TYPES = {"A": dns.rdatatype.A, "AAAA": dns.rdatatype.AAAA}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_TTL = 2147483647
MIN_INTERVAL = 0.1  # seconds; a shorter interval is a load test, not a health check
MAX_INTERVAL = 86400.0
MIN_TIMEOUT = 0.05
MAX_TIMEOUT = 60.0


def read_failovers(
    reader: Reader, node: yaml.Node, path: str, origin: dns.name.Name | None
) -> tuple[Failover, ...]:
    """Every failover RRset of one zone; duplicates (same name and type) refused."""
    result: list[Failover] = []
    seen: dict[tuple[dns.name.Name, int], int] = {}
    for i, item in enumerate(reader.sequence(node, path)):
        item_path = join(path, i)
        failover = _failover(reader, item, item_path, origin)
        if failover is None:
            continue
        key = (failover.name, failover.rdtype)
        if key in seen:
            reader.problem(
                item,
                item_path,
                f"duplicate failover {name_text(failover.name)} "
                f"{_type_text(failover.rdtype)} (first at line {seen[key]})",
            )
            continue
        seen[key] = item.start_mark.line + 1
        result.append(failover)
    return tuple(result)


def _relative_name(
    reader: Reader, node: yaml.Node, path: str, origin: dns.name.Name | None
) -> dns.name.Name | None:
    """A name relative to the zone ("www", "@" the apex, or absolute with a final dot)."""
    text = reader.string(node, path)
    if text is None or origin is None:
        return None
    if not text or any(c.isspace() for c in text) or text.startswith("."):
        reader.problem(node, path, f"invalid DNS name {text!r}")
        return None
    try:
        name = origin if text == "@" else dns.name.from_text(text, origin)
    except dns.exception.DNSException as e:
        reader.problem(node, path, f"invalid DNS name {text!r}: {e}")
        return None
    if not name.is_subdomain(origin):
        reader.problem(
            node, path, f"'{name_text(name)}' is not inside the zone '{name_text(origin)}'"
        )
        return None
    return name


def _failover(
    reader: Reader, node: yaml.Node, path: str, origin: dns.name.Name | None
) -> Failover | None:
    values = reader.mapping(node, path, _KEYS)
    if not isinstance(node, yaml.MappingNode):
        return None
    before = len(reader.problems)
    name = None
    if "name" not in values:
        reader.problem(node, path, "name is required (relative to the zone, '@' for the apex)")
    else:
        name = _relative_name(reader, values["name"], join(path, "name"), origin)
    rdtype = dns.rdatatype.A
    if "type" in values:
        word = reader.string(values["type"], join(path, "type"))
        if word is not None:
            if word.upper() not in _TYPES:
                reader.problem(
                    values["type"], join(path, "type"), f"expected A or AAAA, got {word!r}"
                )
            else:
                rdtype = _TYPES[word.upper()]
    targets: list[str | dns.name.Name] = []
    if "targets" not in values:
        reader.problem(node, path, "targets is required (addresses and/or names of the zone)")
    else:
        tpath = join(path, "targets")
        items = reader.sequence(values["targets"], tpath)
        if isinstance(values["targets"], yaml.SequenceNode) and not items:
            reader.problem(values["targets"], tpath, "empty list (give at least one target)")
        for j, item in enumerate(items):
            target = _target(reader, item, join(tpath, j), origin, rdtype, name)
            if target is None:
                continue
            if target in targets:
                reader.problem(item, join(tpath, j), f"duplicate target {_shown(target)}")
                continue
            targets.append(target)
    policy = _word(reader, values, path, "policy", FAILOVER_POLICIES, "first")
    on_all_down = _word(reader, values, path, "on_all_down", FAILOVER_ALL_DOWN, "all")
    check = None
    if "check" not in values:
        reader.problem(node, path, "check is required, e.g. {protocol: tcp, port: 443}")
    else:
        check = _check(reader, values["check"], join(path, "check"))
    interval = _number(reader, values, path, "interval", 10.0, MIN_INTERVAL, MAX_INTERVAL)
    timeout = _number(reader, values, path, "timeout", 2.0, MIN_TIMEOUT, MAX_TIMEOUT)
    if interval is not None and timeout is not None and timeout > interval:
        reader.problem(
            values.get("timeout", node),
            join(path, "timeout"),
            f"timeout {timeout:g} is longer than the interval {interval:g}",
        )
    counts = {}
    for key, default in (("rise", 2), ("fall", 3)):
        counts[key] = default
        if key in values:
            counts[key] = reader.integer(values[key], join(path, key), 1, 100) or default
    ttl = 30
    if "ttl" in values:
        ttl = reader.integer(values["ttl"], join(path, "ttl"), 0, _MAX_TTL) or 0
    if (
        len(reader.problems) != before
        or name is None
        or check is None
        or policy is None
        or on_all_down is None
        or interval is None
        or timeout is None
    ):
        return None
    return Failover(
        name=name,
        rdtype=rdtype,
        targets=tuple(targets),
        check=check,
        policy=policy,
        interval=interval,
        timeout=timeout,
        rise=counts["rise"],
        fall=counts["fall"],
        ttl=ttl,
        on_all_down=on_all_down,
    )


def _type_text(rdtype: int) -> str:
    return "A" if rdtype == dns.rdatatype.A else "AAAA"


def _shown(target: str | dns.name.Name) -> str:
    return target if isinstance(target, str) else name_text(target)


def _target(
    reader: Reader,
    node: yaml.Node,
    path: str,
    origin: dns.name.Name | None,
    rdtype: int,
    owner: dns.name.Name | None,
) -> str | dns.name.Name | None:
    text = reader.string(node, path)
    if text is None:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is not None:
        want = 4 if rdtype == dns.rdatatype.A else 6
        if ip.version != want:
            reader.problem(
                node,
                path,
                f"{text} is not an IPv{want} address (type {_type_text(rdtype)})",
            )
            return None
        return str(ip)
    name = _relative_name(reader, node, path, origin)
    if name is not None and name == owner:
        reader.problem(node, path, "a failover RRset cannot be its own target")
        return None
    return name


def _word(
    reader: Reader,
    values: dict[str, yaml.Node],
    path: str,
    key: str,
    allowed: tuple[str, ...],
    default: str,
) -> str | None:
    if key not in values:
        return default
    word = reader.string(values[key], join(path, key))
    if word is not None and word not in allowed:
        reader.problem(
            values[key],
            join(path, key),
            f"unknown {key} {word!r} (expected one of {', '.join(allowed)})",
        )
        return None
    return word


def _number(
    reader: Reader,
    values: dict[str, yaml.Node],
    path: str,
    key: str,
    default: float,
    low: float,
    high: float,
) -> float | None:
    if key not in values:
        return default
    return reader.number(values[key], join(path, key), low, high)


def _check(reader: Reader, node: yaml.Node, path: str) -> FailoverCheck | None:
    values = reader.mapping(node, path, _CHECK_KEYS)
    if not isinstance(node, yaml.MappingNode):
        return None
    before = len(reader.problems)
    protocol = None
    if "protocol" not in values:
        reader.problem(node, path, f"protocol is required (one of {', '.join(FAILOVER_PROTOCOLS)})")
    else:
        protocol = _word(reader, values, path, "protocol", FAILOVER_PROTOCOLS, "tcp")
    port = _DEFAULT_PORTS.get(protocol or "", 0)
    if "port" in values:
        port = reader.integer(values["port"], join(path, "port"), 1, 65535) or 0
    elif protocol == "tcp":
        reader.problem(node, path, "port is required for protocol tcp")
    web = protocol in ("http", "https")
    for key in ("path", "expect_status", "host"):
        if key in values and protocol == "tcp":
            reader.problem(
                values[key], join(path, key), f"{key} is only for protocol http or https"
            )
    check_path = "/"
    if "path" in values:
        text = reader.string(values["path"], join(path, "path"))
        if text is not None:
            if not text.startswith("/") or any(ord(c) <= 32 or ord(c) >= 127 for c in text):
                reader.problem(
                    values["path"],
                    join(path, "path"),
                    f"invalid path {text!r} (expected /..., printable ASCII, no spaces)",
                )
            else:
                check_path = text
    expect: list[int] = []
    if "expect_status" in values:
        snode = values["expect_status"]
        spath = join(path, "expect_status")
        items = reader.sequence(snode, spath) if isinstance(snode, yaml.SequenceNode) else [snode]
        if isinstance(snode, yaml.SequenceNode) and not items:
            reader.problem(snode, spath, "empty list (omit it for any 2xx or 3xx)")
        for j, item in enumerate(items):
            code = reader.integer(item, join(spath, j) if item is not snode else spath, 100, 599)
            if code is not None:
                expect.append(code)
    host = None
    if "host" in values:
        host = reader.string(values["host"], join(path, "host"))
        if host is not None and (not host or any(ord(c) <= 32 or ord(c) >= 127 for c in host)):
            reader.problem(values["host"], join(path, "host"), f"invalid host {host!r}")
            host = None
    if len(reader.problems) != before or protocol is None:
        return None
    return FailoverCheck(
        protocol=protocol,
        port=port,
        path=check_path if web else "/",
        expect_status=tuple(expect),
        host=host if web else None,
    )
