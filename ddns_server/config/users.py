"""The `users` section -> model.User (DynDNS2 logins: password hash and/or client cert CN)."""

from __future__ import annotations

import dns.name
import yaml

from ddns_server.config.reader import Reader, join, name_text
from ddns_server.model import User
from ddns_server.passwords import is_valid_hash

_USER_KEYS = (
    "name",
    "password_hash",
    "password_hash_file",
    "password_hash_env",
    "hosts",
    "client_cert_cn",
)


def read_users(reader: Reader, node: yaml.Node | None) -> tuple[User, ...]:
    result = []
    first_line: dict[str, int] = {}
    first_cn: dict[str, int] = {}
    for i, item in enumerate(reader.sequence(node, "users") if node is not None else []):
        path = join("users", i)
        values = reader.mapping(item, path, _USER_KEYS)
        if not isinstance(item, yaml.MappingNode):
            continue
        name: str | None = None
        if "name" not in values:
            reader.problem(item, path, "name is required")
        else:
            name = reader.string(values["name"], join(path, "name"))
            if name is not None and (not name or ":" in name):
                # HTTP Basic auth splits user:password at the first colon.
                reader.problem(values["name"], join(path, "name"), f"invalid user name {name!r}")
                name = None
        if name is not None:
            if name in first_line:
                reader.problem(
                    values["name"],
                    join(path, "name"),
                    f"duplicate user name {name!r} (first at line {first_line[name]})",
                )
            else:
                first_line[name] = values["name"].start_mark.line + 1
        cert_cn: str | None = None
        if "client_cert_cn" in values:
            cert_cn = _client_cert_cn(reader, values["client_cert_cn"], path, first_cn)
        password_hash: str | None = ""  # a certificate-only user has no password
        password_keys = ("password_hash", "password_hash_file", "password_hash_env")
        if "client_cert_cn" not in values or any(key in values for key in password_keys):
            password_hash = _password_hash(reader, item, values, path)
        hosts = _hosts(reader, item, values.get("hosts"), join(path, "hosts"))
        if name is not None and password_hash is not None and hosts is not None:
            result.append(User(name, password_hash, hosts, cert_cn))
    return tuple(result)


def _client_cert_cn(
    reader: Reader, node: yaml.Node, path: str, first: dict[str, int]
) -> str | None:
    """The subject CN of the client certificate that logs this user in (mutual TLS)."""
    key_path = join(path, "client_cert_cn")
    cn = reader.string(node, key_path)
    if cn is None:
        return None
    if not cn.strip():
        reader.problem(node, key_path, "empty client_cert_cn")
        return None
    if not reader.client_ca:
        reader.problem(node, key_path, "needs tls.client_ca_file (the CA of the certificates)")
        return None
    if cn in first:
        reader.problem(node, key_path, f"duplicate client_cert_cn (first at line {first[cn]})")
        return None
    first[cn] = node.start_mark.line + 1
    return cn


def _password_hash(
    reader: Reader, node: yaml.Node, values: dict[str, yaml.Node], path: str
) -> str | None:
    source = reader.secret_source(node, values, path, "password_hash")
    if source is None:
        return None
    key, value = source
    key_path = join(path, key)
    text: str | None
    where = ""
    if key == "password_hash_file":
        file_text = reader.string(value, key_path)
        if file_text is None:
            return None
        where = f"{reader.shown(file_text)}: "
        try:
            text = reader.file_path(file_text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            reader.problem(value, key_path, f"{where}cannot read: {reason}")
            return None
    elif key == "password_hash_env":
        text = reader.environment(value, key_path)
    else:
        text = reader.string(value, key_path)
    if text is None:
        return None
    text = text.strip()
    if not is_valid_hash(text):
        reader.problem(
            value, key_path, f"{where}not a password hash (make one with `ddns-server passwd`)"
        )
        return None
    return text


def _hosts(
    reader: Reader, node: yaml.Node, value: yaml.Node | None, path: str
) -> tuple[dns.name.Name, ...] | None:
    if value is None:
        reader.problem(node, path, "hosts is required (the names this user may update)")
        return None
    result = []
    for i, item in enumerate(reader.sequence(value, path)):
        host = reader.dns_name(item, join(path, i))
        if host is None:
            continue
        if b"*" in host.labels:
            reader.problem(
                item, join(path, i), f"'{name_text(host)}': hosts are exact names, not wildcards"
            )
        elif not any(host.is_subdomain(zone) for zone in reader.zone_names):
            reader.problem(
                item, join(path, i), f"'{name_text(host)}' is not inside any configured zone"
            )
        else:
            result.append(host)
    return tuple(result)
