"""The shared YAML node reader of the config sections: typed values, file:line problems.

Every section reader (config/keys.py, users.py, zones.py, server.py, ...) gets one
Reader. Its helpers check a node's kind and return the value, or record a problem
("FILE:LINE: PATH: what is wrong") and return None/empty, so one run of the loader
reports every mistake in the file, never only the first.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path

import dns.exception
import dns.name
import yaml

from ddns_server.errors import ConfigError
from ddns_server.model import Endpoint

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
NULL = "tag:yaml.org,2002:null"
BOOL = "tag:yaml.org,2002:bool"
FLOAT = "tag:yaml.org,2002:float"
_KINDS = {
    STR: "a string",
    INT: "an integer",
    NULL: "null",
    BOOL: "a boolean",
    FLOAT: "a number",
    "tag:yaml.org,2002:timestamp": "a date",
}


def compose_file(path: Path) -> yaml.Node | None:
    """The YAML node tree of the file at `path` (None when empty); ConfigError with
    file:line for a missing, unreadable or malformed file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        raise ConfigError([yaml_problem(path, text, e)]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: YAML error: {e}"]) from None


def yaml_problem(path: Path, text: str, e: yaml.MarkedYAMLError) -> str:
    """One line for a YAML syntax error; tabs and indentation said as such.

    PyYAML's own words ("expected <block end>, but found '<block mapping
    start>'") name parser states, not what to fix; the common causes in a
    hand-edited config are a tab and a key indented more or less than its
    neighbours, so those are said plainly, with line and column.
    """
    mark = e.problem_mark or e.context_mark
    if mark is None:
        return f"{path}: YAML syntax error: {e.problem or e}"
    where = f"{path}:{mark.line + 1}:{mark.column + 1}:"
    problem = e.problem or ""
    lines = text.splitlines()
    line_text = lines[mark.line] if mark.line < len(lines) else ""
    indent = line_text[: len(line_text) - len(line_text.lstrip())]
    if "\t" in problem or "\t" in indent:
        return (
            f"{where} a tab character: YAML indents with spaces only (replace the tab with spaces)"
        )
    if (
        "expected <block end>" in problem
        or "mapping values are not allowed" in problem
        or "could not find expected ':'" in problem
        or "did not find expected key" in problem
        or "did not find expected '-' indicator" in problem
    ):
        # the line's first character, where the misplaced indentation ends
        where = f"{path}:{mark.line + 1}:{len(indent) + 1}:"
        return (
            f"{where} indentation: this line is indented differently from the keys"
            f" around it (each level of a mapping lines up; YAML syntax error: {problem})"
        )
    detail = " ".join(part for part in (e.context, problem) if part)
    return f"{path}:{mark.line + 1}: YAML syntax error: {detail}"


_HOST_NAME = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")
_DOTTED = re.compile(r"[0-9]+(\.[0-9]+)*")


def address_problem(text: str) -> str:
    """Why `text` is not an IP address, in words (the octet or group at fault)."""
    try:
        if _DOTTED.fullmatch(text):
            ipaddress.IPv4Address(text)
        elif ":" in text:
            ipaddress.IPv6Address(text)
        else:
            ipaddress.ip_address(text)
    except ValueError as e:
        return f"{text!r} is not an IP address: {e}"
    return f"{text!r} is not an IP address"


def network_problem(text: str) -> str:
    """Why `text` is not a network ("ADDRESS/PREFIX" or an address), in words."""
    address, sep, prefix = text.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        if _HOST_NAME.fullmatch(address) and not _DOTTED.fullmatch(address):
            return "a host name is not allowed, give an IP address or network"
        return address_problem(address)
    if sep:
        if not prefix.isdigit():
            return f"the prefix length {prefix!r} is not a number"
        if int(prefix) > ip.max_prefixlen:
            return f"the prefix length {prefix} is over {ip.max_prefixlen} for IPv{ip.version}"
    return "not a network (expected ADDRESS/PREFIX, e.g. 192.0.2.0/24)"


def parse_endpoint(text: str, default_port: int | None) -> Endpoint:
    """Parse "IP:PORT" or "[IPv6]:PORT" into an Endpoint; ValueError says what is wrong.

    With `default_port`, a bare IP ("192.0.2.1", "::1", "[::1]") is accepted too.
    """
    port_text: str | None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError("missing ']'")
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':PORT' after ']'")
        port_text = rest[1:] if rest else None
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address") from None
        if ip.version != 6:
            raise ValueError("brackets are only for IPv6 addresses")
    else:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            host, sep, port_text = text.rpartition(":")
            if not sep:
                host = text
            if _HOST_NAME.fullmatch(host) and not _DOTTED.fullmatch(host):
                # BIND's also-notify and listen-on take addresses too: a name
                # would need a resolver, and change under the server's feet.
                raise ValueError("a host name is not allowed, give an IP address") from None
            if not sep:
                if _DOTTED.fullmatch(text):
                    raise ValueError(address_problem(text)) from None
                raise ValueError("missing port") from None
            if ":" in host:
                raise ValueError("write IPv6 addresses in brackets, e.g. [::1]:53") from None
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(address_problem(host)) from None
        else:
            port_text = None
            if default_port is None and ip.version == 6:
                raise ValueError("missing port (write IPv6 addresses in brackets, e.g. [::1]:53)")
    if port_text is None:
        if default_port is None:
            raise ValueError("missing port")
        return Endpoint(str(ip), default_port)
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"bad port {port_text!r} (expected 1-65535)")
    return Endpoint(str(ip), int(port_text))


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def name_text(name: dns.name.Name) -> str:
    """A name as users write it in the config: without the final dot."""
    return name.to_text(omit_final_dot=True) if name != dns.name.root else "."


def kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _KINDS.get(node.tag, f"a value tagged {node.tag}")


class Reader:
    """Reads YAML nodes into values, collecting problems; also holds the facts that
    later sections check against (key names, zone names, whether mTLS is set up)."""

    def __init__(self, path: Path, environ: Mapping[str, str], check_zone_files: bool) -> None:
        self.path = path
        self.base = path.parent.absolute()
        self.environ = environ
        self.check_zone_files = check_zone_files
        self.problems: list[tuple[int, str]] = []  # (line, message)
        self.constructor = yaml.constructor.SafeConstructor()
        # Facts sections leave for the ones read after them (see config.SECTIONS `needs`):
        self.key_names: set[dns.name.Name] = set()  # keys: names policy/transfer may grant
        self.zone_names: list[dns.name.Name] = []  # zones: where users' hosts may be
        self.client_ca = False  # tls: client_ca_file given (users may name a client_cert_cn)

    def problem(self, node: yaml.Node, path: str, message: str) -> None:
        line = node.start_mark.line + 1
        where = f"{path}: " if path else ""
        self.problems.append((line, f"{self.path}:{line}: {where}{message}"))

    def mapping(
        self, node: yaml.Node, path: str, allowed: tuple[str, ...], keep_null: bool = False
    ) -> dict[str, yaml.Node]:
        """The mapping's values by key, null values left out (unless `keep_null`);
        unknown and duplicate keys reported."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, f"expected a mapping, got {kind(node)}")
            return {}
        values: dict[str, yaml.Node] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, f"expected a string key, got {kind(key_node)}")
                continue
            key = str(key_node.value)
            if key in seen:
                self.problem(
                    key_node, join(path, key), f"duplicate key (first at line {seen[key]})"
                )
                continue
            seen[key] = key_node.start_mark.line + 1
            if key not in allowed:
                expected = ", ".join(allowed)
                self.problem(key_node, join(path, key), f"unknown key (expected one of {expected})")
                continue
            if keep_null or value_node.tag != NULL:
                values[key] = value_node
        return values

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, f"expected a list, got {kind(node)}")
            return []
        return list(node.value)

    def string(self, node: yaml.Node, path: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != STR:
            self.problem(node, path, f"expected a string, got {kind(node)}")
            return None
        return str(node.value)

    def integer(self, node: yaml.Node, path: str, low: int, high: int | None) -> int | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != INT:
            self.problem(node, path, f"expected an integer, got {kind(node)}")
            return None
        value = self.constructor.construct_yaml_int(node)
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            self.problem(node, path, f"{value} is out of range (expected {bound})")
            return None
        return int(value)

    def number(self, node: yaml.Node, path: str, low: float, high: float) -> float | None:
        """An integer or a decimal number within [low, high] (seconds, shares)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (INT, FLOAT):
            self.problem(node, path, f"expected a number, got {kind(node)}")
            return None
        if node.tag == INT:
            value = float(self.constructor.construct_yaml_int(node))
        else:
            value = float(self.constructor.construct_yaml_float(node))
        if not low <= value <= high:  # NaN too
            self.problem(node, path, f"{node.value} is out of range (expected {low:g}..{high:g})")
            return None
        return value

    def boolean(self, node: yaml.Node, path: str) -> bool | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != BOOL:
            self.problem(node, path, f"expected a boolean, got {kind(node)}")
            return None
        return bool(self.constructor.construct_yaml_bool(node))

    def file_path(self, text: str) -> Path:
        """An absolute path; relative ones are relative to the config file's folder."""
        return (self.base / text).resolve()

    def shown(self, text: str) -> str:
        """A path as the user would write it from here, for messages."""
        return os.path.normpath(self.path.parent / text)

    def dns_name(self, node: yaml.Node, path: str) -> dns.name.Name | None:
        text = self.string(node, path)
        if text is None:
            return None
        if not text.strip(".") or any(c.isspace() for c in text):
            self.problem(node, path, f"invalid DNS name {text!r}")
            return None
        try:
            return dns.name.from_text(text)
        except dns.exception.DNSException as e:
            self.problem(node, path, f"invalid DNS name {text!r}: {e}")
            return None

    def secret_source(
        self, node: yaml.Node, values: dict[str, yaml.Node], path: str, stem: str
    ) -> tuple[str, yaml.Node] | None:
        """Which of STEM, STEM_file, STEM_env is given; exactly one must be."""
        options = (stem, f"{stem}_file", f"{stem}_env")
        given = [key for key in options if key in values]
        if len(given) != 1:
            what = "is required" if not given else "are exclusive"
            self.problem(node, path, f"one of {', '.join(options)} {what}")
            return None
        return given[0], values[given[0]]

    def environment(self, node: yaml.Node, path: str) -> str | None:
        variable = self.string(node, path)
        if variable is None:
            return None
        value = self.environ.get(variable)
        if value is None:
            self.problem(node, path, f"environment variable {variable} is not set")
        return value

    def endpoints(
        self, node: yaml.Node, path: str, default_port: int | None
    ) -> tuple[Endpoint, ...]:
        result = []
        for i, item in enumerate(self.sequence(node, path)):
            item_path = join(path, i)
            text = self.string(item, item_path)
            if text is None:
                continue
            try:
                result.append(parse_endpoint(text, default_port))
            except ValueError as e:
                expected = "IP:PORT or [IPv6]:PORT"
                if default_port is not None:
                    expected = f"IP, IP:PORT or [IPv6]:PORT; the port defaults to {default_port}"
                self.problem(
                    item, item_path, f"invalid address {text!r}: {e} (expected {expected})"
                )
        return tuple(result)

    def networks(self, node: yaml.Node | None, path: str) -> tuple[str, ...]:
        result = []
        for i, item in enumerate(self.sequence(node, path) if node is not None else []):
            text = self.string(item, join(path, i))
            if text is None:
                continue
            try:
                result.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError:
                self.problem(
                    item, join(path, i), f"invalid network {text!r}: {network_problem(text)}"
                )
        return tuple(result)
