"""The client's YAML file -> a frozen ClientConfig, read as strictly as the server's.

Every problem is collected with file:line and raised together as one
ConfigError: unknown keys, wrong types, missing secrets. Reference:
docs/client.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.name
import yaml

from ddns_server.client.addresses import DEFAULT_ROUTE_TARGETS, POLICIES, SOURCE_KINDS, Source
from ddns_server.config.reader import BOOL, Reader, compose_file, join
from ddns_server.errors import ConfigError
from ddns_server.keys import algorithm_from_text, read_key_file


@dataclass(frozen=True)
class Family:
    """Where one family's address comes from, and how the sources must agree."""

    version: int  # 4 or 6
    policy: str  # first | majority
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class Rfc2136:
    host: str
    port: int
    zone: dns.name.Name | None  # None: each hostname's parent
    ttl: int
    key_name: dns.name.Name
    algorithm: str  # e.g. "hmac-sha256"
    secret: bytes


@dataclass(frozen=True)
class Dyndns2:
    url: str  # .../nic/update
    username: str
    password: str
    ca_file: Path | None  # pinned CA (PEM); None: the system's CAs


@dataclass(frozen=True)
class ClientConfig:
    path: Path
    hostnames: tuple[dns.name.Name, ...]
    families: tuple[Family, ...]
    state_file: Path
    interval: float = 300.0
    timeout: float = 10.0
    retries: int = 3
    retry_delay: float = 5.0
    allow_private: bool = False
    rfc2136: Rfc2136 | None = None
    dyndns2: Dyndns2 | None = None

    @property
    def method(self) -> str:
        return "rfc2136" if self.rfc2136 is not None else "dyndns2"

    def fingerprint(self) -> str:
        """A digest of how updates are sent (server, credentials): a change clears an
        auth block. Only the digest is stored, never the secret."""
        digest = hashlib.sha256(repr((self.rfc2136, self.dyndns2)).encode())
        return digest.hexdigest()[:32]


_TOP_KEYS = (
    "hostnames",
    "ipv4",
    "ipv6",
    "allow_private",
    "interval",
    "timeout",
    "retries",
    "retry_delay",
    "state_file",
    "rfc2136",
    "dyndns2",
)
_FAMILY_KEYS = ("policy", "sources")
_SOURCE_KEYS = ("checkip", "interface", "route", "ca_file")
_RFC2136_KEYS = ("server", "zone", "ttl", "key", "algorithm", "secret", "secret_file", "secret_env")
_DYNDNS2_KEYS = ("url", "username", "password", "password_file", "password_env", "ca_file")


def default_client_config_path() -> Path:
    """$DDNS_CLIENT_CONFIG, else conf/client.yaml (as the server's conf/ddns.yaml)."""
    return Path(os.environ.get("DDNS_CLIENT_CONFIG") or "conf/client.yaml")


def load_client_config(path: Path, *, environ: Mapping[str, str] | None = None) -> ClientConfig:
    """Read and validate the client config at `path`; ConfigError lists every problem."""
    path = Path(path)
    root = compose_file(path)
    reader = _Reader(path, os.environ if environ is None else environ)
    config = reader.config(root)
    if reader.problems or config is None:
        reader.problems.sort(key=lambda item: item[0])
        raise ConfigError([message for _, message in reader.problems] or [f"{path}: empty"])
    return config


class _Reader(Reader):
    """The shared config node reader (typed values, file:line problems), plus the
    client's sections."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        super().__init__(path, environ, check_zone_files=False)

    def nonempty(self, node: yaml.Node, path: str) -> str | None:
        text = self.string(node, path)
        if text is not None and not text.strip():
            self.problem(node, path, "may not be empty")
            return None
        return text

    def existing_file(self, node: yaml.Node, path: str) -> Path | None:
        text = self.nonempty(node, path)
        if text is None:
            return None
        result = self.file_path(text)
        if not result.is_file():
            self.problem(node, path, f"{text}: no such file")
            return None
        return result

    def secret(
        self, node: yaml.Node, values: dict[str, yaml.Node], path: str, stem: str
    ) -> tuple[str, str | Path] | None:
        """(which key, value): the inline text, the file's path, or the variable's value."""
        source = self.secret_source(node, values, path, stem)
        if source is None:
            return None
        key, value = source
        if key.endswith("_file"):
            file = self.existing_file(value, join(path, key))
            return (key, file) if file is not None else None
        if key.endswith("_env"):
            text = self.environment(value, join(path, key))
        else:
            text = self.nonempty(value, join(path, key))
        return (key, text) if text is not None else None

    # -- sections ------------------------------------------------------------

    def config(self, root: yaml.Node | None) -> ClientConfig | None:
        if root is None:
            self.problems.append((0, f"{self.path}: the file is empty"))
            return None
        top = self.mapping(root, "", _TOP_KEYS)
        hostnames = self.hostnames(root, top.get("hostnames"))
        families = tuple(
            family
            for version in (4, 6)
            if f"ipv{version}" in top
            and (family := self.family(top[f"ipv{version}"], version)) is not None
        )
        if "ipv4" not in top and "ipv6" not in top and isinstance(root, yaml.MappingNode):
            self.problem(root, "", "one of ipv4, ipv6 is required (where the addresses come from)")
        options: dict[str, object] = {}
        for key, low, high in (
            ("interval", 1.0, 86400.0),
            ("timeout", 0.1, 300.0),
            ("retry_delay", 0.0, 3600.0),
        ):
            if key in top:
                value = self.number(top[key], key, low, high)
                if value is not None:
                    options[key] = value
        if "retries" in top:
            retries = self.integer(top["retries"], "retries", 0, 20)
            if retries is not None:
                options["retries"] = retries
        if "allow_private" in top:
            allow = self.boolean(top["allow_private"], "allow_private")
            if allow is not None:
                options["allow_private"] = allow
        state_file = self.file_path("client-state.json")
        if "state_file" in top:
            text = self.nonempty(top["state_file"], "state_file")
            if text is not None:
                state_file = self.file_path(text)
        rfc2136 = self.rfc2136(top["rfc2136"]) if "rfc2136" in top else None
        dyndns2 = self.dyndns2(top["dyndns2"]) if "dyndns2" in top else None
        if ("rfc2136" in top) == ("dyndns2" in top) and isinstance(root, yaml.MappingNode):
            self.problem(root, "", "exactly one of rfc2136, dyndns2 is required (how to update)")
        if self.problems:
            return None
        return ClientConfig(
            path=self.path,
            hostnames=hostnames,
            families=families,
            state_file=state_file,
            rfc2136=rfc2136,
            dyndns2=dyndns2,
            **options,  # type: ignore[arg-type]
        )

    def hostnames(self, root: yaml.Node, node: yaml.Node | None) -> tuple[dns.name.Name, ...]:
        if node is None:
            self.problem(root, "hostnames", "is required (a list of names to update)")
            return ()
        items = node.value if isinstance(node, yaml.SequenceNode) else None
        if not items:
            self.problem(node, "hostnames", "expected a non-empty list of host names")
            return ()
        result: list[dns.name.Name] = []
        for i, item in enumerate(items):
            path = join("hostnames", i)
            text = self.nonempty(item, path)
            if text is None:
                continue
            try:
                name = dns.name.from_text(text)
            except dns.exception.DNSException as e:
                self.problem(item, path, f"invalid host name {text!r}: {e}")
                continue
            if len(name.labels) < 3 or any(c.isspace() for c in text):
                self.problem(item, path, f"{text!r} is not a fully qualified host name")
            elif name in result:
                self.problem(item, path, f"{text} is listed twice")
            else:
                result.append(name)
        return tuple(result)

    def family(self, node: yaml.Node, version: int) -> Family | None:
        path = f"ipv{version}"
        values = self.mapping(node, path, _FAMILY_KEYS)
        policy = "first"
        if "policy" in values:
            text = self.nonempty(values["policy"], join(path, "policy"))
            if text is not None and text not in POLICIES:
                self.problem(
                    values["policy"],
                    join(path, "policy"),
                    f"expected one of {', '.join(POLICIES)}",
                )
            elif text is not None:
                policy = text
        sources_node = values.get("sources")
        if not isinstance(sources_node, yaml.SequenceNode) or not sources_node.value:
            self.problem(
                sources_node or node, join(path, "sources"), "expected a non-empty list of sources"
            )
            return None
        sources: list[Source] = []
        for i, item in enumerate(sources_node.value):
            item_path = join(join(path, "sources"), i)
            entry = self.mapping(item, item_path, _SOURCE_KEYS)
            kinds = [kind for kind in SOURCE_KINDS if kind in entry]
            if len(kinds) != 1:
                if isinstance(item, yaml.MappingNode):
                    self.problem(item, item_path, f"exactly one of {', '.join(SOURCE_KINDS)}")
                continue
            kind = kinds[0]
            value = self.source_value(entry[kind], join(item_path, kind), kind, version)
            ca_file = None
            if "ca_file" in entry:
                if kind != "checkip" or not (value or "").startswith("https:"):
                    self.problem(entry["ca_file"], item_path, "ca_file is for https checkip URLs")
                else:
                    ca_file = self.existing_file(entry["ca_file"], join(item_path, "ca_file"))
            if value is not None:
                line = item.start_mark.line + 1
                sources.append(Source(kind, value, line, str(ca_file) if ca_file else None))
        return Family(version, policy, tuple(sources))

    def source_value(self, node: yaml.Node, path: str, kind: str, version: int) -> str | None:
        if kind == "route" and node.tag == BOOL:  # `route: true`: the default target
            return DEFAULT_ROUTE_TARGETS[version] if self.boolean(node, path) else None
        text = self.nonempty(node, path)
        if text is None:
            return None
        if kind == "checkip":
            parts = urllib.parse.urlsplit(text)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                self.problem(node, path, f"{text!r} is not an http:// or https:// URL")
                return None
        elif kind == "route":
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                self.problem(node, path, f"{text!r} is not an IP address")
                return None
            if ip.version != version:
                self.problem(node, path, f"{text} is not an IPv{version} address")
                return None
        elif not re.fullmatch(r"[^\s/]{1,256}", text):
            self.problem(node, path, f"bad interface name {text!r}")
            return None
        return text

    def rfc2136(self, node: yaml.Node) -> Rfc2136 | None:
        values = self.mapping(node, "rfc2136", _RFC2136_KEYS)
        if not isinstance(node, yaml.MappingNode):
            return None
        host_port: tuple[str, int] | None = None
        if "server" not in values:
            self.problem(node, "rfc2136.server", "is required (HOST or HOST:PORT)")
        else:
            text = self.nonempty(values["server"], "rfc2136.server")
            if text is not None:
                host_port = _host_port(text)
                if host_port is None:
                    self.problem(
                        values["server"],
                        "rfc2136.server",
                        f"bad server {text!r} (expected HOST, HOST:PORT or [IPv6]:PORT)",
                    )
        zone = None
        if "zone" in values:
            text = self.nonempty(values["zone"], "rfc2136.zone")
            if text is not None:
                try:
                    zone = dns.name.from_text(text)
                except dns.exception.DNSException as e:
                    self.problem(values["zone"], "rfc2136.zone", f"invalid zone name: {e}")
        ttl = 60
        if "ttl" in values:
            ttl = self.integer(values["ttl"], "rfc2136.ttl", 0, 2147483647) or 0
        algorithm = None
        if "algorithm" in values:
            text = self.nonempty(values["algorithm"], "rfc2136.algorithm")
            if text is not None:
                try:
                    algorithm = algorithm_from_text(text)
                except ValueError as e:
                    self.problem(values["algorithm"], "rfc2136.algorithm", str(e))
        key_name = self.nonempty(values["key"], "rfc2136.key") if "key" in values else None
        secret = self.secret(node, values, "rfc2136", "secret")
        if secret is None or host_port is None:
            return None
        which, value = secret
        if which == "secret_file":
            try:
                file_name, file_algorithm, key_bytes = read_key_file(Path(value))
            except ValueError as e:
                self.problem(values[which], "rfc2136.secret_file", f"{value}: {e}")
                return None
            if key_name is not None and dns.name.from_text(key_name) != dns.name.from_text(
                file_name
            ):
                self.problem(
                    values["key"], "rfc2136.key", f"differs from the key file's name {file_name!r}"
                )
            if algorithm is not None and algorithm != file_algorithm:
                self.problem(
                    values["algorithm"],
                    "rfc2136.algorithm",
                    f"differs from the key file's {file_algorithm}",
                )
            key_name, algorithm = file_name, file_algorithm
        else:
            try:
                key_bytes = base64.b64decode("".join(str(value).split()), validate=True)
            except binascii.Error:
                key_bytes = b""
            if not key_bytes:
                self.problem(values[which], f"rfc2136.{which}", "the secret is not valid base64")
            if key_name is None:
                self.problem(node, "rfc2136.key", "is required (the TSIG key's name)")
        if key_name is None or not key_bytes:
            return None
        try:
            name = dns.name.from_text(key_name)
        except dns.exception.DNSException as e:
            self.problem(node, "rfc2136.key", f"invalid key name {key_name!r}: {e}")
            return None
        return Rfc2136(
            host_port[0], host_port[1], zone, ttl, name, algorithm or "hmac-sha256", key_bytes
        )

    def dyndns2(self, node: yaml.Node) -> Dyndns2 | None:
        values = self.mapping(node, "dyndns2", _DYNDNS2_KEYS)
        if not isinstance(node, yaml.MappingNode):
            return None
        url = username = None
        if "url" not in values:
            self.problem(node, "dyndns2.url", "is required (e.g. https://HOST/nic/update)")
        else:
            url = self.nonempty(values["url"], "dyndns2.url")
            parts = urllib.parse.urlsplit(url or "")
            if url is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
                self.problem(values["url"], "dyndns2.url", f"{url!r} is not an http(s) URL")
                url = None
        if "username" not in values:
            self.problem(node, "dyndns2.username", "is required")
        else:
            username = self.nonempty(values["username"], "dyndns2.username")
            if username is not None and ":" in username:
                self.problem(values["username"], "dyndns2.username", "may not contain ':'")
                username = None
        password = self.secret(node, values, "dyndns2", "password")
        ca_file = None
        if "ca_file" in values:
            ca_file = self.existing_file(values["ca_file"], "dyndns2.ca_file")
        if url is None or username is None or password is None:
            return None
        which, value = password
        if which == "password_file":
            try:
                text = Path(value).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as e:
                self.problem(values[which], "dyndns2.password_file", f"cannot read: {e}")
                return None
        else:
            text = str(value)
        if not text:
            self.problem(values[which], f"dyndns2.{which}", "the password is empty")
            return None
        return Dyndns2(url, username, text, ca_file)


def _host_port(text: str) -> tuple[str, int] | None:
    """HOST, HOST:PORT, an IPv6 address, or [IPv6]:PORT -> (host, port); default port 53."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([^\s:\[\]]+)(?::(\d{1,5}))?", text)
    if match is None:
        try:
            return str(ipaddress.IPv6Address(text)), 53
        except ValueError:
            return None
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4) or 53)
    if match.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    if not 1 <= port <= 65535:
        return None
    return host, port
