"""YAML configuration -> the frozen dataclasses of ddns_server.model, validated strictly.

Every problem is collected (file:line, key, what is wrong) and raised together as
one ConfigError, so a typo is reported, never silently ignored.

Layout: config/reader.py is the shared node reader (typed values, problems);
each top-level section has one small reader function next to the others of its
kind (keys.py, users.py, zones.py, server.py), all registered in SECTIONS below.

Adding a section `foo:`
  1. a model dataclass `Foo` in ddns_server/model.py and a field `foo: Foo = ...`
     on model.Config (a default, so tests building Config by hand keep working);
  2. `def read_foo(reader: Reader, node: yaml.Node | None) -> Foo` in a new
     config/foo.py (node is None when the key is absent or null: return the
     default); use reader.mapping/string/integer/number/boolean/... so problems
     carry file:line;
  3. `Section("foo", read_foo)` in SECTIONS (with `needs=("zones",)` if it checks
     against what an earlier section leaves on the reader, e.g. reader.zone_names).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ddns_server.config.keys import read_keys
from ddns_server.config.limits import read_http, read_rate_limit
from ddns_server.config.log import read_log
from ddns_server.config.mirrors import read_mirrors
from ddns_server.config.reader import NULL, Reader, compose_file
from ddns_server.config.server import (
    read_data_dir,
    read_dyndns,
    read_listen,
    read_tls,
    read_trusted_proxies,
)
from ddns_server.config.update_limits import read_tsig_max_fudge, read_update_limits
from ddns_server.config.users import read_users
from ddns_server.config.zones import read_zones
from ddns_server.errors import ConfigError
from ddns_server.keys import read_key_file
from ddns_server.model import (
    DEFAULT_DNS_LISTEN,
    MATCHES,
    Config,
    Dyndns,
    Endpoint,
    Listen,
    PolicyRule,
    Tls,
    TsigKey,
    User,
    Zone,
)

__all__ = [
    "DEFAULT_DNS_LISTEN",
    "MATCHES",
    "SECTIONS",
    "Config",
    "ConfigError",
    "Dyndns",
    "Endpoint",
    "PolicyRule",
    "Section",
    "Tls",
    "TsigKey",
    "User",
    "Zone",
    "default_config_path",
    "load_config",
    "read_key_file",
]


@dataclass(frozen=True)
class Section:
    """A top-level key of the config file and the function that reads it."""

    key: str
    read: Callable[[Reader, yaml.Node | None], Any]
    # Sections read first (their facts on the Reader are used, e.g. key names).
    needs: tuple[str, ...] = ()
    # The model.Config fields the value fills; default: the field named like the key.
    fields: Callable[[Any], dict[str, Any]] | None = None
    # Pass an explicit `key:` with no value as its null node (e.g. "on, with the
    # defaults"); by default a null value reads like an absent key (node None).
    keep_null: bool = False


def _listen_fields(listen: Listen) -> dict[str, Any]:
    return {"dns": listen.dns, "http": listen.http, "https": listen.https}


# In the order "unknown key" messages list them; read in this order, except that
# a section's `needs` are read before it.
SECTIONS: tuple[Section, ...] = (
    Section("data_dir", read_data_dir),
    Section("listen", read_listen, fields=_listen_fields),
    Section("trusted_proxies", read_trusted_proxies),
    Section("tls", read_tls),
    Section("dyndns", read_dyndns),
    Section("keys", read_keys),
    Section("users", read_users, needs=("tls", "zones")),
    Section("zones", read_zones, needs=("keys",)),
    Section("update_limits", read_update_limits),
    Section("tsig_max_fudge", read_tsig_max_fudge),
    Section("http", read_http, fields=lambda limits: {"http_limits": limits}),
    Section("rate_limit", read_rate_limit, keep_null=True),
    Section("mirrors", read_mirrors, needs=("keys", "zones")),
    Section("log", read_log),
)


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
    root = compose_file(path)
    reader = Reader(path, os.environ if environ is None else environ, check_zone_files)
    config = _read_sections(reader, root)
    if reader.problems:
        reader.problems.sort(key=lambda item: item[0])  # stable: file order, then check order
        raise ConfigError([message for _, message in reader.problems])
    assert config is not None
    return config


def _read_sections(reader: Reader, root: yaml.Node | None) -> Config | None:
    """Every section of the top-level mapping; None if any problem was found."""
    by_key = {section.key: section for section in SECTIONS}
    top = reader.mapping(root, "", tuple(by_key), keep_null=True) if root is not None else {}
    values: dict[str, Any] = {}

    def read(section: Section) -> None:
        if section.key in values:
            return
        for need in section.needs:
            read(by_key[need])
        node = top.get(section.key)
        if node is not None and node.tag == NULL and not section.keep_null:
            node = None
        values[section.key] = section.read(reader, node)

    for section in SECTIONS:
        read(section)
    if reader.problems:
        return None
    fields: dict[str, Any] = {}
    for section in SECTIONS:
        value = values[section.key]
        fields.update(section.fields(value) if section.fields else {section.key: value})
    return Config(path=reader.path, **fields)
