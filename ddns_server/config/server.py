"""The server-wide sections: data_dir, listen, trusted_proxies, tls, dyndns."""

from __future__ import annotations

from pathlib import Path

import yaml

from ddns_server.config.reader import Reader, join
from ddns_server.model import DEFAULT_DNS_LISTEN, Dyndns, Listen, Tls

_LISTEN_KEYS = ("dns", "http", "https")
_TLS_KEYS = ("cert_file", "key_file", "client_ca_file")
_DYNDNS_LIMITS = {  # key -> (low, high)
    "max_failed_logins": (1, None),
    "failed_login_window": (1, 86400),
    "max_updates_per_minute": (1, None),
    "auth_cache_ttl": (0, 86400),
    "max_pending_logins": (1, 100000),
}


def read_data_dir(reader: Reader, node: yaml.Node | None) -> Path:
    """Where the journal lives; relative to the config file's folder, default `var`."""
    if node is not None:
        text = reader.string(node, "data_dir")
        if text is not None:
            return reader.file_path(text)
    return reader.file_path("var")


def read_listen(reader: Reader, node: yaml.Node | None) -> Listen:
    listen = reader.mapping(node, "listen", _LISTEN_KEYS) if node is not None else {}
    dns_listen = DEFAULT_DNS_LISTEN
    if "dns" in listen:
        dns_listen = reader.endpoints(listen["dns"], "listen.dns", None)
    http = reader.endpoints(listen["http"], "listen.http", None) if "http" in listen else ()
    https = reader.endpoints(listen["https"], "listen.https", None) if "https" in listen else ()
    return Listen(dns=dns_listen, http=http, https=https)


def read_trusted_proxies(reader: Reader, node: yaml.Node | None) -> tuple[str, ...]:
    return reader.networks(node, "trusted_proxies")


def read_tls(reader: Reader, node: yaml.Node | None) -> Tls:
    if node is None:
        return Tls()
    values = reader.mapping(node, "tls", _TLS_KEYS)
    # The files' content is checked when the https listeners start (edge/tls.py).
    files: dict[str, Path | None] = dict.fromkeys(_TLS_KEYS)
    for key, value in values.items():
        text = reader.string(value, join("tls", key))
        if text is None:
            continue
        file = reader.file_path(text)
        files[key] = file
        if not file.is_file():
            reader.problem(value, join("tls", key), f"no such file: {reader.shown(text)}")
    if ("cert_file" in values) != ("key_file" in values):
        reader.problem(node, "tls", "give both cert_file and key_file, or neither")
    reader.client_ca = files["client_ca_file"] is not None
    return Tls(
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        client_ca_file=files["client_ca_file"],
    )


def read_dyndns(reader: Reader, node: yaml.Node | None) -> Dyndns:
    if node is None:
        return Dyndns()
    values = reader.mapping(node, "dyndns", (*_DYNDNS_LIMITS, "allow_private_addresses"))
    numbers: dict[str, int] = {}
    for key, (low, high) in _DYNDNS_LIMITS.items():
        if key in values:
            number = reader.integer(values[key], join("dyndns", key), low, high)
            if number is not None:
                numbers[key] = number
    allow_private = True
    if "allow_private_addresses" in values:
        path = join("dyndns", "allow_private_addresses")
        allow_private = reader.boolean(values["allow_private_addresses"], path) is not False
    return Dyndns(**numbers, allow_private_addresses=allow_private)
