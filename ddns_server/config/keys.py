"""The `keys` section -> model.TsigKey (names, algorithms, secrets from text, file or env)."""

from __future__ import annotations

import dns.exception
import dns.name
import yaml

from ddns_server.config.reader import Reader, join, name_text
from ddns_server.keys import ALGORITHMS, algorithm_from_text, decode_secret, read_key_file
from ddns_server.model import TsigKey

_KEY_KEYS = ("name", "algorithm", "secret", "secret_file", "secret_env")


def read_keys(reader: Reader, node: yaml.Node | None) -> tuple[TsigKey, ...]:
    result = []
    first_line: dict[dns.name.Name, int] = {}
    for i, item in enumerate(reader.sequence(node, "keys") if node is not None else []):
        path = join("keys", i)
        values = reader.mapping(item, path, _KEY_KEYS)
        if not isinstance(item, yaml.MappingNode):
            continue
        name: dns.name.Name | None = None
        if "name" not in values:
            reader.problem(item, path, "name is required")
        else:
            name = reader.dns_name(values["name"], join(path, "name"))
        if name is not None:
            if name in first_line:
                reader.problem(
                    values["name"],
                    join(path, "name"),
                    f"duplicate key name '{name_text(name)}' (first at line {first_line[name]})",
                )
            else:
                first_line[name] = values["name"].start_mark.line + 1
                reader.key_names.add(name)
        algorithm: str | None = None
        if "algorithm" in values:
            text = reader.string(values["algorithm"], join(path, "algorithm"))
            if text is not None:
                try:
                    algorithm = algorithm_from_text(text)
                except ValueError as e:
                    reader.problem(values["algorithm"], join(path, "algorithm"), str(e))
        secret = _key_secret(reader, item, values, path, name, algorithm)
        if secret is None or name is None:
            continue
        secret_bytes, file_algorithm = secret
        algorithm = algorithm or file_algorithm or "hmac-sha256"
        result.append(TsigKey(name, ALGORITHMS[algorithm], secret_bytes))
    return tuple(result)


def _key_secret(
    reader: Reader,
    node: yaml.Node,
    values: dict[str, yaml.Node],
    path: str,
    name: dns.name.Name | None,
    algorithm: str | None,
) -> tuple[bytes, str | None] | None:
    """The key's decoded secret, and the algorithm its secret_file names (if any)."""
    source = reader.secret_source(node, values, path, "secret")
    if source is None:
        return None
    key, value = source
    key_path = join(path, key)
    text: str | None
    if key == "secret_file":
        file_text = reader.string(value, key_path)
        if file_text is None:
            return None
        shown = reader.shown(file_text)
        try:
            file_name, file_algorithm, secret = read_key_file(reader.file_path(file_text))
        except ValueError as e:
            reader.problem(value, key_path, f"{shown}: {e}")
            return None
        ok = True
        try:
            file_key_name = dns.name.from_text(file_name)
        except dns.exception.DNSException as e:
            reader.problem(value, key_path, f"{shown}: invalid key name {file_name!r}: {e}")
            return None
        if name is not None and file_key_name != name:
            reader.problem(
                value, key_path, f"{shown}: key name '{file_name}' differs from '{name_text(name)}'"
            )
            ok = False
        if algorithm is not None and file_algorithm != algorithm:
            reader.problem(
                value,
                key_path,
                f"{shown}: algorithm {file_algorithm} differs from {algorithm}",
            )
            ok = False
        return (secret, file_algorithm) if ok else None
    if key == "secret_env":
        text = reader.environment(value, key_path)
    else:
        text = reader.string(value, key_path)
    if text is None:
        return None
    try:
        return decode_secret(text), None
    except ValueError as e:
        reader.problem(value, key_path, str(e))
        return None
