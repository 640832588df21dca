"""The `mirrors:` section of the config file -> MirrorSpec values.

Validated without calling any provider (check-config runs this): the provider
is known and its library importable (the message names the extra to
install), the zone is served, names and types are valid and lie in the
upstream zone, option keys are known for the provider, and secrets come
inline, from `*_file` or from `*_env`, exactly one of them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.name
import dns.rdatatype
import yaml

from ddns_server.config.reader import Reader
from ddns_server.mirrors.spec import DEFAULT_NAMES, DEFAULT_TYPES, MirrorSpec, absolute, below

if TYPE_CHECKING:  # the providers' code is imported only for a config with mirrors
    from ddns_server.mirrors.options import Option

MIRROR_KEYS = (
    "name",
    "provider",
    "zone",
    "upstream_zone",
    "names",
    "types",
    "adopt",
    "calls_per_second",
    "resync_interval",
    "max_change_share",
    "options",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_NEVER_TYPES = {"SOA", "ANY", "AXFR", "IXFR", "OPT", "TSIG", "TKEY"}


def read_mirrors(reader: Reader, node: yaml.Node | None) -> tuple[MirrorSpec, ...]:
    """Every mirror (needs the `keys` and `zones` sections read first)."""
    if node is None:
        return ()
    out: list[MirrorSpec] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(reader.sequence(node, "mirrors")):
        spec = _mirror(reader, item, f"mirrors[{index}]", seen)
        if spec is not None:
            out.append(spec)
    return tuple(out)


def _mirror(reader: Any, node: yaml.Node, path: str, seen: dict[str, int]) -> MirrorSpec | None:
    values = reader.mapping(node, path, MIRROR_KEYS)
    if not values and not isinstance(node, yaml.MappingNode):
        return None
    ok = True
    for required in ("name", "provider", "zone"):
        if required not in values:
            reader.problem(node, path, f"{required} is required")
            ok = False
    name = reader.string(values["name"], f"{path}.name") if "name" in values else None
    if name is not None:
        if not _NAME.match(name):
            reader.problem(
                values["name"], f"{path}.name", f"bad mirror name {name!r} (letters, digits, . _ -)"
            )
            ok = False
        elif name in seen:
            reader.problem(
                values["name"],
                f"{path}.name",
                f"duplicate mirror name (first at line {seen[name]})",
            )
            ok = False
        else:
            seen[name] = values["name"].start_mark.line + 1
    provider = (
        reader.string(values["provider"], f"{path}.provider") if "provider" in values else None
    )
    if provider is not None:
        from ddns_server.mirrors import registry

        problem = registry.check(provider)
        if problem is not None:
            reader.problem(values["provider"], f"{path}.provider", problem)
            ok = False
    zone = reader.dns_name(values["zone"], f"{path}.zone") if "zone" in values else None
    if zone is not None and zone not in reader.zone_names:
        served = ", ".join(z.to_text() for z in reader.zone_names) or "none"
        reader.problem(
            values["zone"], f"{path}.zone", f"{zone} is not a served zone (zones: {served})"
        )
        ok = False
    upstream = zone
    if "upstream_zone" in values:
        upstream = reader.dns_name(values["upstream_zone"], f"{path}.upstream_zone")
    if zone is None or upstream is None or name is None or provider is None:
        return None
    zone_text, upstream_text = zone.to_text().lower(), upstream.to_text().lower()
    names: tuple[str, ...] = DEFAULT_NAMES
    if "names" in values:
        names = _names(reader, values["names"], f"{path}.names", zone)
    for pattern in names:
        top = zone_text if pattern == "*" else absolute(pattern.removeprefix("*."), zone_text)
        if not below(top, upstream_text):
            reader.problem(
                values.get("names", values.get("upstream_zone", node)),
                f"{path}.names",
                f"{pattern!r} ({top}) is not inside upstream_zone {upstream_text}",
            )
            ok = False
    types: tuple[str, ...] = DEFAULT_TYPES
    if "types" in values:
        types = _types(reader, values["types"], f"{path}.types")
    kwargs: dict[str, Any] = {}
    if "adopt" in values:
        kwargs["adopt"] = reader.boolean(values["adopt"], f"{path}.adopt")
    if "calls_per_second" in values:
        kwargs["calls_per_second"] = reader.number(
            values["calls_per_second"], f"{path}.calls_per_second", 0, 10000
        )
    if "resync_interval" in values:
        kwargs["resync_interval"] = reader.number(
            values["resync_interval"], f"{path}.resync_interval", 0, 10**9
        )
    if "max_change_share" in values:
        kwargs["max_change_share"] = reader.number(
            values["max_change_share"], f"{path}.max_change_share", 0, 1
        )
    if any(v is None for v in kwargs.values()):
        ok = False
    options = _options(reader, values.get("options"), f"{path}.options", provider, node)
    if options is None or not ok:
        return None
    return MirrorSpec(
        name=name,
        provider=provider,
        zone=zone_text,
        upstream_zone=upstream_text,
        names=names,
        types=types,
        options=options,
        **kwargs,
    )


def _names(reader: Any, node: yaml.Node, path: str, zone: dns.name.Name) -> tuple[str, ...]:
    out = []
    for index, item in enumerate(reader.sequence(node, path)):
        text = reader.string(item, f"{path}[{index}]")
        if text is None:
            continue
        rest = text[2:] if text.startswith("*.") else text
        if text in ("@", "*"):
            out.append(text)
            continue
        try:
            if not rest or "*" in rest or rest.endswith(".") or any(c.isspace() for c in rest):
                raise dns.exception.SyntaxError(
                    "expected @, *, NAME or *.NAME relative to the zone"
                )
            dns.name.from_text(rest, zone)
        except dns.exception.DNSException as e:
            reader.problem(item, f"{path}[{index}]", f"bad name {text!r}: {e}")
            continue
        out.append(text.lower())
    if not out:
        reader.problem(node, path, "no valid names")
    return tuple(out)


def _types(reader: Any, node: yaml.Node, path: str) -> tuple[str, ...]:
    out = []
    for index, item in enumerate(reader.sequence(node, path)):
        text = reader.string(item, f"{path}[{index}]")
        if text is None:
            continue
        try:
            rdtype = dns.rdatatype.to_text(dns.rdatatype.from_text(text))
        except dns.exception.DNSException:
            reader.problem(item, f"{path}[{index}]", f"unknown record type {text!r}")
            continue
        if rdtype in _NEVER_TYPES:
            reader.problem(item, f"{path}[{index}]", f"{rdtype} cannot be mirrored")
            continue
        out.append(rdtype)
    if not out:
        reader.problem(node, path, "no valid types")
    return tuple(out)


def _options(
    reader: Reader, node: yaml.Node | None, path: str, provider: str, parent: yaml.Node
) -> dict[str, Any] | None:
    """The options, checked against the provider module's own description
    (mirrors/options.py), secrets resolved from *_file / *_env."""
    from ddns_server.mirrors import registry

    try:
        info = registry.describe(provider)
    except LookupError:
        return None  # reported with the provider
    described = info.options
    secrets = {name for name, option in described.items() if option.secret}
    if node is None:
        values: dict[str, yaml.Node] = {}
    elif not isinstance(node, yaml.MappingNode):
        reader.problem(node, path, "expected a mapping")
        return None
    else:
        allowed: tuple[str, ...]
        if info.passthrough:  # octodns: the provider class's own keyword options
            allowed = tuple(str(k.value) for k, _v in node.value if isinstance(k, yaml.ScalarNode))
        else:
            allowed = tuple(described) + tuple(
                f"{stem}{suffix}" for stem in sorted(secrets) for suffix in ("_file", "_env")
            )
        values = reader.mapping(node, path, allowed)
    before = len(reader.problems)
    out: dict[str, Any] = {}
    stems: dict[str, str] = {}
    for key, value_node in values.items():
        stem = key
        for suffix in ("_file", "_env"):
            if key.endswith(suffix) and (info.passthrough or key[: -len(suffix)] in secrets):
                stem = key[: -len(suffix)]
        if stem in stems:
            reader.problem(value_node, f"{path}.{key}", f"{stems[stem]} and {key} are exclusive")
            continue
        stems[stem] = key
        if key.endswith("_env") and stem != key:
            out[stem] = reader.environment(value_node, f"{path}.{key}")
        elif key.endswith("_file") and stem != key:
            text = reader.string(value_node, f"{path}.{key}")
            if text is not None:
                try:
                    out[stem] = reader.file_path(text).read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError) as e:
                    reader.problem(
                        value_node, f"{path}.{key}", f"cannot read {reader.shown(text)}: {e}"
                    )
        elif key in described:
            out[key] = _typed(reader, value_node, f"{path}.{key}", described[key])
        else:
            out[key] = reader.constructor.construct_object(value_node, deep=True)
    for name, option in described.items():
        if option.required and name not in stems:
            variants = f"{name}, {name}_file or {name}_env" if option.secret else name
            reader.problem(
                node if node is not None else parent,
                path,
                f"{variants} is required for provider {provider}",
            )
    if provider == "rfc2136":
        _check_rfc2136(reader, values, out, path)
    if len(reader.problems) != before:
        return None
    return out


def _typed(reader: Reader, node: yaml.Node, path: str, option: Option) -> Any:
    """A described option's value, of the YAML type it declares."""
    if option.kind is bool:
        return reader.boolean(node, path)
    if option.kind is int:
        return reader.integer(node, path, 0, None)
    if option.kind is float:
        return reader.number(node, path, 0, 10**9)
    if isinstance(node, yaml.ScalarNode) and node.tag in (_STR, _INT):
        return str(node.value)  # a zone id may look like a number
    reader.problem(node, path, "expected a string")
    return None


def _check_rfc2136(
    reader: Reader, values: dict[str, yaml.Node], out: dict[str, Any], path: str
) -> None:
    if "server" in out:
        from ddns_server.mirrors.rfc2136 import parse_server

        try:
            parse_server(str(out["server"]))
        except ValueError as e:
            reader.problem(values["server"], f"{path}.server", str(e))
    if "key" in out:
        try:
            key = dns.name.from_text(str(out["key"]))
        except dns.exception.DNSException as e:
            reader.problem(values["key"], f"{path}.key", f"bad key name: {e}")
            return
        if key not in reader.key_names:
            reader.problem(
                values["key"], f"{path}.key", f"unknown key {out['key']!r} (not in keys)"
            )
