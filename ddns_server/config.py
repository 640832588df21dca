"""YAML configuration -> frozen dataclasses, validated strictly.

Every problem is collected (file:line, key, what is wrong) and raised together as
one ConfigError, so a typo is reported, never silently ignored.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path

import dns.exception
import dns.name
import dns.rdatatype
import dns.tsig
import dns.zone
import yaml

from ddns_server.errors import ConfigError
from ddns_server.keys import ALGORITHMS, algorithm_from_text, decode_secret, read_key_file
from ddns_server.model import (
    DEFAULT_DNS_LISTEN,
    MATCHES,
    Config,
    Dyndns,
    Endpoint,
    PolicyRule,
    Tls,
    TsigKey,
    User,
    Zone,
)
from ddns_server.passwords import is_valid_hash
from ddns_server.zonefile import read_zone_file

# ---------------------------------------------------------------------------
# Loading and validation

_NAME_REQUIRED = ("name", "subdomain", "wildcard")  # zonesub and self ignore `name`
_MAX_TTL = 2147483647  # RFC 2181 §8

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_NULL = "tag:yaml.org,2002:null"
_KINDS = {
    _STR: "a string",
    _INT: "an integer",
    _NULL: "null",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:timestamp": "a date",
}

_TOP_KEYS = ("data_dir", "listen", "trusted_proxies", "tls", "dyndns", "keys", "users", "zones")
_LISTEN_KEYS = ("dns", "http", "https")
_TLS_KEYS = ("cert_file", "key_file", "client_ca_file")
_DYNDNS_LIMITS = {  # key -> (low, high)
    "max_failed_logins": (1, None),
    "failed_login_window": (1, 86400),
    "max_updates_per_minute": (1, None),
    "auth_cache_ttl": (0, 86400),
    "max_pending_logins": (1, 100000),
}
_KEY_KEYS = ("name", "algorithm", "secret", "secret_file", "secret_env")
_USER_KEYS = (
    "name",
    "password_hash",
    "password_hash_file",
    "password_hash_env",
    "hosts",
    "client_cert_cn",
)
_ZONE_KEYS = (
    "name",
    "file",
    "update_policy",
    "allow_transfer",
    "notify",
    "dyndns_ttl",
    "journal_max_versions",
    "journal_max_age_days",
)
_RULE_KEYS = ("grant", "match", "name", "types")


def default_config_path() -> Path:
    """The config file used when -c is not given: $DDNS_CONFIG, else conf/ddns.yaml."""
    return Path(os.environ.get("DDNS_CONFIG") or "conf/ddns.yaml")


def load_config(
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    check_zone_files: bool = True,
) -> Config:
    """Read and validate the config file at `path`; ConfigError lists every problem.

    `environ` (default os.environ) resolves `*_env` secrets. With `check_zone_files`
    false, zone files are only checked to exist, not parsed (parsing a big zone is slow).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f"{mark.line + 1}:" if mark is not None else ""
        detail = " ".join(part for part in (e.context, e.problem) if part)
        raise ConfigError([f"{path}:{line} YAML syntax error: {detail}"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: YAML error: {e}"]) from None
    reader = _Reader(path, os.environ if environ is None else environ, check_zone_files)
    config = reader.config(root)
    if reader.problems:
        reader.problems.sort(key=lambda item: item[0])  # stable: file order, then check order
        raise ConfigError([message for _, message in reader.problems])
    assert config is not None
    return config


def _parse_endpoint(text: str, default_port: int | None) -> Endpoint:
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
                raise ValueError("missing port") from None
            if ":" in host:
                raise ValueError("write IPv6 addresses in brackets, e.g. [::1]:53") from None
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not an IP address") from None
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


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _text(name: dns.name.Name) -> str:
    """A name as users write it in the config: without the final dot."""
    return name.to_text(omit_final_dot=True) if name != dns.name.root else "."


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _KINDS.get(node.tag, f"a value tagged {node.tag}")


class _Reader:
    """Walks the composed YAML node tree, building dataclasses and collecting problems."""

    def __init__(self, path: Path, environ: Mapping[str, str], check_zone_files: bool) -> None:
        self.path = path
        self.base = path.parent.absolute()
        self.environ = environ
        self.check_zone_files = check_zone_files
        self.problems: list[tuple[int, str]] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.key_names: set[dns.name.Name] = set()
        self.zone_names: list[dns.name.Name] = []
        self.client_ca = False  # tls.client_ca_file is given (users may name a client_cert_cn)

    # -- generic helpers ---------------------------------------------------

    def problem(self, node: yaml.Node, path: str, message: str) -> None:
        line = node.start_mark.line + 1
        where = f"{path}: " if path else ""
        self.problems.append((line, f"{self.path}:{line}: {where}{message}"))

    def mapping(self, node: yaml.Node, path: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        """The mapping's values by key, null values left out; unknown keys reported."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, f"expected a mapping, got {_kind(node)}")
            return {}
        values: dict[str, yaml.Node] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, f"expected a string key, got {_kind(key_node)}")
                continue
            key = str(key_node.value)
            if key in seen:
                self.problem(
                    key_node, _join(path, key), f"duplicate key (first at line {seen[key]})"
                )
                continue
            seen[key] = key_node.start_mark.line + 1
            if key not in allowed:
                expected = ", ".join(allowed)
                self.problem(
                    key_node, _join(path, key), f"unknown key (expected one of {expected})"
                )
                continue
            if value_node.tag != _NULL:
                values[key] = value_node
        return values

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, f"expected a list, got {_kind(node)}")
            return []
        return list(node.value)

    def string(self, node: yaml.Node, path: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
            self.problem(node, path, f"expected a string, got {_kind(node)}")
            return None
        return str(node.value)

    def integer(self, node: yaml.Node, path: str, low: int, high: int | None) -> int | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT:
            self.problem(node, path, f"expected an integer, got {_kind(node)}")
            return None
        value = self.constructor.construct_yaml_int(node)
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            self.problem(node, path, f"{value} is out of range (expected {bound})")
            return None
        return int(value)

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

    # -- sections ----------------------------------------------------------

    def config(self, root: yaml.Node | None) -> Config | None:
        top = self.mapping(root, "", _TOP_KEYS) if root is not None else {}
        data_dir = self.file_path("var")
        if "data_dir" in top:
            text = self.string(top["data_dir"], "data_dir")
            if text is not None:
                data_dir = self.file_path(text)
        listen = self.mapping(top["listen"], "listen", _LISTEN_KEYS) if "listen" in top else {}
        dns_listen = DEFAULT_DNS_LISTEN
        if "dns" in listen:
            dns_listen = self.endpoints(listen["dns"], "listen.dns", None)
        http = self.endpoints(listen["http"], "listen.http", None) if "http" in listen else ()
        https = self.endpoints(listen["https"], "listen.https", None) if "https" in listen else ()
        proxies = self.networks(top.get("trusted_proxies"), "trusted_proxies")
        tls = self.tls(top["tls"]) if "tls" in top else Tls()
        self.client_ca = tls.client_ca_file is not None
        dyndns = self.dyndns(top["dyndns"]) if "dyndns" in top else Dyndns()
        keys = self.keys(top.get("keys"))
        zones = self.zones(top.get("zones"))
        users = self.users(top.get("users"))
        if self.problems:
            return None
        return Config(
            path=self.path,
            data_dir=data_dir,
            dns=dns_listen,
            http=http,
            https=https,
            trusted_proxies=proxies,
            tls=tls,
            dyndns=dyndns,
            keys=keys,
            users=users,
            zones=zones,
        )

    def endpoints(
        self, node: yaml.Node, path: str, default_port: int | None
    ) -> tuple[Endpoint, ...]:
        result = []
        for i, item in enumerate(self.sequence(node, path)):
            item_path = _join(path, i)
            text = self.string(item, item_path)
            if text is None:
                continue
            try:
                result.append(_parse_endpoint(text, default_port))
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
            text = self.string(item, _join(path, i))
            if text is None:
                continue
            try:
                result.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError:
                self.problem(item, _join(path, i), f"invalid network {text!r}")
        return tuple(result)

    def tls(self, node: yaml.Node) -> Tls:
        values = self.mapping(node, "tls", _TLS_KEYS)
        # The files' content is checked when the https listeners start (edge/tls.py).
        files: dict[str, Path | None] = dict.fromkeys(_TLS_KEYS)
        for key, value in values.items():
            text = self.string(value, _join("tls", key))
            if text is None:
                continue
            file = self.file_path(text)
            files[key] = file
            if not file.is_file():
                self.problem(value, _join("tls", key), f"no such file: {self.shown(text)}")
        if ("cert_file" in values) != ("key_file" in values):
            self.problem(node, "tls", "give both cert_file and key_file, or neither")
        return Tls(
            cert_file=files["cert_file"],
            key_file=files["key_file"],
            client_ca_file=files["client_ca_file"],
        )

    def dyndns(self, node: yaml.Node) -> Dyndns:
        values = self.mapping(node, "dyndns", tuple(_DYNDNS_LIMITS))
        numbers: dict[str, int] = {}
        for key, (low, high) in _DYNDNS_LIMITS.items():
            if key in values:
                number = self.integer(values[key], _join("dyndns", key), low, high)
                if number is not None:
                    numbers[key] = number
        return Dyndns(**numbers)

    def keys(self, node: yaml.Node | None) -> tuple[TsigKey, ...]:
        result = []
        first_line: dict[dns.name.Name, int] = {}
        for i, item in enumerate(self.sequence(node, "keys") if node is not None else []):
            path = _join("keys", i)
            values = self.mapping(item, path, _KEY_KEYS)
            if not isinstance(item, yaml.MappingNode):
                continue
            name: dns.name.Name | None = None
            if "name" not in values:
                self.problem(item, path, "name is required")
            else:
                name = self.dns_name(values["name"], _join(path, "name"))
            if name is not None:
                if name in first_line:
                    self.problem(
                        values["name"],
                        _join(path, "name"),
                        f"duplicate key name '{_text(name)}' (first at line {first_line[name]})",
                    )
                else:
                    first_line[name] = values["name"].start_mark.line + 1
                    self.key_names.add(name)
            algorithm: str | None = None
            if "algorithm" in values:
                text = self.string(values["algorithm"], _join(path, "algorithm"))
                if text is not None:
                    try:
                        algorithm = algorithm_from_text(text)
                    except ValueError as e:
                        self.problem(values["algorithm"], _join(path, "algorithm"), str(e))
            secret = self.key_secret(item, values, path, name, algorithm)
            if secret is None or name is None:
                continue
            secret_bytes, file_algorithm = secret
            algorithm = algorithm or file_algorithm or "hmac-sha256"
            result.append(TsigKey(name, ALGORITHMS[algorithm], secret_bytes))
        return tuple(result)

    def key_secret(
        self,
        node: yaml.Node,
        values: dict[str, yaml.Node],
        path: str,
        name: dns.name.Name | None,
        algorithm: str | None,
    ) -> tuple[bytes, str | None] | None:
        """The key's decoded secret, and the algorithm its secret_file names (if any)."""
        source = self.secret_source(node, values, path, "secret")
        if source is None:
            return None
        key, value = source
        key_path = _join(path, key)
        text: str | None
        if key == "secret_file":
            file_text = self.string(value, key_path)
            if file_text is None:
                return None
            shown = self.shown(file_text)
            try:
                file_name, file_algorithm, secret = read_key_file(self.file_path(file_text))
            except ValueError as e:
                self.problem(value, key_path, f"{shown}: {e}")
                return None
            ok = True
            try:
                file_key_name = dns.name.from_text(file_name)
            except dns.exception.DNSException as e:
                self.problem(value, key_path, f"{shown}: invalid key name {file_name!r}: {e}")
                return None
            if name is not None and file_key_name != name:
                self.problem(
                    value, key_path, f"{shown}: key name '{file_name}' differs from '{_text(name)}'"
                )
                ok = False
            if algorithm is not None and file_algorithm != algorithm:
                self.problem(
                    value,
                    key_path,
                    f"{shown}: algorithm {file_algorithm} differs from {algorithm}",
                )
                ok = False
            return (secret, file_algorithm) if ok else None
        if key == "secret_env":
            text = self.environment(value, key_path)
        else:
            text = self.string(value, key_path)
        if text is None:
            return None
        try:
            return decode_secret(text), None
        except ValueError as e:
            self.problem(value, key_path, str(e))
            return None

    def users(self, node: yaml.Node | None) -> tuple[User, ...]:
        result = []
        first_line: dict[str, int] = {}
        first_cn: dict[str, int] = {}
        for i, item in enumerate(self.sequence(node, "users") if node is not None else []):
            path = _join("users", i)
            values = self.mapping(item, path, _USER_KEYS)
            if not isinstance(item, yaml.MappingNode):
                continue
            name: str | None = None
            if "name" not in values:
                self.problem(item, path, "name is required")
            else:
                name = self.string(values["name"], _join(path, "name"))
                if name is not None and (not name or ":" in name):
                    # HTTP Basic auth splits user:password at the first colon.
                    self.problem(values["name"], _join(path, "name"), f"invalid user name {name!r}")
                    name = None
            if name is not None:
                if name in first_line:
                    self.problem(
                        values["name"],
                        _join(path, "name"),
                        f"duplicate user name {name!r} (first at line {first_line[name]})",
                    )
                else:
                    first_line[name] = values["name"].start_mark.line + 1
            cert_cn: str | None = None
            if "client_cert_cn" in values:
                cert_cn = self.client_cert_cn(values["client_cert_cn"], path, first_cn)
            password_hash: str | None = ""  # a certificate-only user has no password
            password_keys = ("password_hash", "password_hash_file", "password_hash_env")
            if "client_cert_cn" not in values or any(key in values for key in password_keys):
                password_hash = self.password_hash(item, values, path)
            hosts = self.hosts(item, values.get("hosts"), _join(path, "hosts"))
            if name is not None and password_hash is not None and hosts is not None:
                result.append(User(name, password_hash, hosts, cert_cn))
        return tuple(result)

    def client_cert_cn(self, node: yaml.Node, path: str, first: dict[str, int]) -> str | None:
        """The subject CN of the client certificate that logs this user in (mutual TLS)."""
        key_path = _join(path, "client_cert_cn")
        cn = self.string(node, key_path)
        if cn is None:
            return None
        if not cn.strip():
            self.problem(node, key_path, "empty client_cert_cn")
            return None
        if not self.client_ca:
            self.problem(node, key_path, "needs tls.client_ca_file (the CA of the certificates)")
            return None
        if cn in first:
            self.problem(node, key_path, f"duplicate client_cert_cn (first at line {first[cn]})")
            return None
        first[cn] = node.start_mark.line + 1
        return cn

    def password_hash(self, node: yaml.Node, values: dict[str, yaml.Node], path: str) -> str | None:
        source = self.secret_source(node, values, path, "password_hash")
        if source is None:
            return None
        key, value = source
        key_path = _join(path, key)
        text: str | None
        where = ""
        if key == "password_hash_file":
            file_text = self.string(value, key_path)
            if file_text is None:
                return None
            where = f"{self.shown(file_text)}: "
            try:
                text = self.file_path(file_text).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
                self.problem(value, key_path, f"{where}cannot read: {reason}")
                return None
        elif key == "password_hash_env":
            text = self.environment(value, key_path)
        else:
            text = self.string(value, key_path)
        if text is None:
            return None
        text = text.strip()
        if not is_valid_hash(text):
            self.problem(
                value, key_path, f"{where}not a password hash (make one with `ddns-server passwd`)"
            )
            return None
        return text

    def hosts(
        self, node: yaml.Node, value: yaml.Node | None, path: str
    ) -> tuple[dns.name.Name, ...] | None:
        if value is None:
            self.problem(node, path, "hosts is required (the names this user may update)")
            return None
        result = []
        for i, item in enumerate(self.sequence(value, path)):
            host = self.dns_name(item, _join(path, i))
            if host is None:
                continue
            if b"*" in host.labels:
                self.problem(
                    item, _join(path, i), f"'{_text(host)}': hosts are exact names, not wildcards"
                )
            elif not any(host.is_subdomain(zone) for zone in self.zone_names):
                self.problem(
                    item, _join(path, i), f"'{_text(host)}' is not inside any configured zone"
                )
            else:
                result.append(host)
        return tuple(result)

    def zones(self, node: yaml.Node | None) -> tuple[Zone, ...]:
        result = []
        first_line: dict[dns.name.Name, int] = {}
        for i, item in enumerate(self.sequence(node, "zones") if node is not None else []):
            path = _join("zones", i)
            values = self.mapping(item, path, _ZONE_KEYS)
            if not isinstance(item, yaml.MappingNode):
                continue
            before = len(self.problems)
            origin: dns.name.Name | None = None
            if "name" not in values:
                self.problem(item, path, "name is required")
            else:
                origin = self.dns_name(values["name"], _join(path, "name"))
            if origin is not None:
                if origin in first_line:
                    self.problem(
                        values["name"],
                        _join(path, "name"),
                        f"duplicate zone '{_text(origin)}' (first at line {first_line[origin]})",
                    )
                else:
                    first_line[origin] = values["name"].start_mark.line + 1
                    self.zone_names.append(origin)
            zone_file = self.zone_file(values.get("file"), _join(path, "file"), origin)
            policy = []
            if "update_policy" in values:
                policy_path = _join(path, "update_policy")
                for j, rule_node in enumerate(self.sequence(values["update_policy"], policy_path)):
                    rule = self.rule(rule_node, _join(policy_path, j), origin)
                    if rule is not None:
                        policy.append(rule)
            networks, transfer_keys = self.allow_transfer(
                values.get("allow_transfer"), _join(path, "allow_transfer")
            )
            notify: tuple[Endpoint, ...] = ()
            if "notify" in values:
                notify = self.endpoints(values["notify"], _join(path, "notify"), 53)
            numbers = {"dyndns_ttl": 60, "journal_max_versions": 1000, "journal_max_age_days": 0}
            limits = {
                "dyndns_ttl": (0, _MAX_TTL),
                "journal_max_versions": (1, None),
                "journal_max_age_days": (0, None),
            }
            for key, (low, high) in limits.items():
                if key in values:
                    number = self.integer(values[key], _join(path, key), low, high)
                    if number is not None:
                        numbers[key] = number
            if origin is None or len(self.problems) != before:
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
                )
            )
        return tuple(result)

    def zone_file(
        self, node: yaml.Node | None, path: str, origin: dns.name.Name | None
    ) -> Path | None:
        if node is None:
            return None  # the zone's content comes from the journal
        text = self.string(node, path)
        if text is None:
            return None
        file = self.file_path(text)
        shown = self.shown(text)
        if not file.is_file():
            self.problem(node, path, f"no such file: {shown}")
            return file
        if not self.check_zone_files or origin is None:
            return file
        line = node.start_mark.line + 1
        try:
            read_zone_file(file, origin, shown)
        except dns.exception.SyntaxError as e:
            # The message already starts with "FILE:LINE: ".
            self.problems.append((line, str(e)))
        except dns.zone.NoSOA:
            self.problem(node, path, f"{shown}: no SOA record at the zone apex '{_text(origin)}'")
        except dns.zone.NoNS:
            self.problem(node, path, f"{shown}: no NS records at the zone apex '{_text(origin)}'")
        except dns.exception.DNSException as e:
            self.problem(node, path, f"{shown}: {e}")
        except UnicodeDecodeError:
            self.problem(node, path, f"{shown}: not UTF-8 text")
        except OSError as e:
            self.problem(node, path, f"{shown}: cannot read: {e.strerror or e}")
        return file

    def rule(self, node: yaml.Node, path: str, origin: dns.name.Name | None) -> PolicyRule | None:
        values = self.mapping(node, path, _RULE_KEYS)
        if not isinstance(node, yaml.MappingNode):
            return None
        before = len(self.problems)
        grant: dns.name.Name | None = None
        if "grant" not in values:
            self.problem(node, path, "grant is required (a key name)")
        else:
            grant = self.dns_name(values["grant"], _join(path, "grant"))
            if grant is not None and grant not in self.key_names:
                known = ", ".join(sorted(_text(k) for k in self.key_names)) or "none"
                self.problem(
                    values["grant"],
                    _join(path, "grant"),
                    f"unknown key '{_text(grant)}' (configured keys: {known})",
                )
        match: str | None = None
        if "match" not in values:
            self.problem(node, path, f"match is required (one of {', '.join(MATCHES)})")
        else:
            match = self.string(values["match"], _join(path, "match"))
            if match is not None and match not in MATCHES:
                self.problem(
                    values["match"],
                    _join(path, "match"),
                    f"unknown match {match!r} (expected one of {', '.join(MATCHES)})",
                )
        name: dns.name.Name | None = None
        if "name" in values:
            name = self.dns_name(values["name"], _join(path, "name"))
        elif match in _NAME_REQUIRED:
            self.problem(node, path, f"name is required for match {match}")
        if name is not None and match in _NAME_REQUIRED:
            self.check_rule_name(values["name"], _join(path, "name"), name, match, origin)
        types = self.types(values["types"], _join(path, "types")) if "types" in values else None
        if len(self.problems) != before or grant is None or match is None:
            return None
        # Like BIND, zonesub and self ignore the name field.
        return PolicyRule(grant, match, name if match in _NAME_REQUIRED else None, types)

    def check_rule_name(
        self,
        node: yaml.Node,
        path: str,
        name: dns.name.Name,
        match: str | None,
        origin: dns.name.Name | None,
    ) -> None:
        if match == "wildcard" and (not name.labels or name.labels[0] != b"*"):
            self.problem(node, path, f"wildcard names start with '*.', got '{_text(name)}'")
        elif origin is not None and not name.is_subdomain(origin):
            self.problem(node, path, f"'{_text(name)}' is not inside the zone '{_text(origin)}'")

    def types(self, node: yaml.Node, path: str) -> frozenset[int] | None:
        result: set[int] = set()
        items = self.sequence(node, path)
        if isinstance(node, yaml.SequenceNode) and not items:
            self.problem(node, path, "empty list (omit types, or use [ANY], for every type)")
        any_type = False
        for i, item in enumerate(items):
            # Read the word as written: YAML would turn NULL (a type) into null.
            if not isinstance(item, yaml.ScalarNode) or not item.value:
                self.problem(item, _join(path, i), f"expected a record type, got {_kind(item)}")
                continue
            word = str(item.value)
            try:
                rdtype = dns.rdatatype.from_text(word)
            except dns.exception.DNSException:
                self.problem(item, _join(path, i), f"unknown record type {word!r}")
                continue
            if rdtype == dns.rdatatype.ANY:
                any_type = True
            elif dns.rdatatype.is_metatype(rdtype):
                self.problem(item, _join(path, i), f"{word} is not a record type")
            else:
                result.add(rdtype)
        return None if any_type or not result else frozenset(result)

    def allow_transfer(
        self, node: yaml.Node | None, path: str
    ) -> tuple[tuple[str, ...], tuple[dns.name.Name, ...]]:
        networks: list[str] = []
        keys: list[dns.name.Name] = []
        for i, item in enumerate(self.sequence(node, path) if node is not None else []):
            item_path = _join(path, i)
            text = self.string(item, item_path)
            if text is None:
                continue
            if text.startswith("key:"):
                key_text = text[4:].strip()
                try:
                    key = dns.name.from_text(key_text) if key_text else None
                except dns.exception.DNSException:
                    key = None
                if key is None or key not in self.key_names:
                    known = ", ".join(sorted(_text(k) for k in self.key_names)) or "none"
                    self.problem(
                        item, item_path, f"unknown key {key_text!r} (configured keys: {known})"
                    )
                else:
                    keys.append(key)
                continue
            try:
                networks.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError:
                self.problem(
                    item, item_path, f"invalid entry {text!r} (expected a network or key:NAME)"
                )
        return tuple(networks), tuple(keys)
