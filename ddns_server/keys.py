"""TSIG keys: algorithm names, BIND-style key clauses, and dnspython keyrings."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import dns.exception
import dns.name
import dns.tsig

if TYPE_CHECKING:
    from ddns_server.model import TsigKey

# The algorithm names of BIND's tsig-keygen and of the config, in INTERFACE.md order.
ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}


def algorithm_from_text(text: str) -> str:
    """Return the canonical algorithm name for `text` (case-insensitive); ValueError if unknown.

    "hmac-md5.sig-alg.reg.int" (RFC 8945's name for HMAC-MD5) is accepted as "hmac-md5".
    """
    name = text.strip().lower().rstrip(".")
    if name == "hmac-md5.sig-alg.reg.int":
        name = "hmac-md5"
    if name not in ALGORITHMS:
        expected = ", ".join(ALGORITHMS)
        raise ValueError(f"unknown algorithm {text!r} (expected one of {expected})")
    return name


def keygen_text(name: str, algorithm: str = "hmac-sha256") -> str:
    """Return a new random key as BIND's tsig-keygen prints it (usable by `nsupdate -k`)."""
    algorithm = algorithm_from_text(algorithm)
    if not name or any(c in name for c in '"{};') or any(c.isspace() for c in name):
        raise ValueError(f"invalid key name {name!r}")
    try:
        dns.name.from_text(name)
    except dns.exception.DNSException as e:  # empty label, label over 63 octets, ...
        raise ValueError(f"invalid key name {name!r}: {e}") from None
    # Like tsig-keygen, the secret is as long as the HMAC's digest.
    size = hashlib.new(algorithm.removeprefix("hmac-")).digest_size
    secret = base64.b64encode(secrets.token_bytes(size)).decode("ascii")
    return f'key "{name}" {{\n\talgorithm {algorithm};\n\tsecret "{secret}";\n}};\n'


def keyring(keys: Iterable[TsigKey]) -> dict[dns.name.Name, dns.tsig.Key]:
    """Return a dnspython keyring (key name -> dns.tsig.Key) for the configured keys."""
    return {key.name: dns.tsig.Key(key.name, key.secret, key.algorithm) for key in keys}


def read_key_file(path: Path) -> tuple[str, str, bytes]:
    """Read a BIND key clause (tsig-keygen, `ddns-server keygen`) -> (name, algorithm, secret).

    Comments (#, //, /* */) and any whitespace are allowed. ValueError on a bad file.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except OSError as e:
        raise ValueError(f"cannot read: {e.strerror or e}") from None
    # Drop comments but keep quoted strings: a base64 secret may contain "//".
    text = _COMMENT_RE.sub(lambda m: m.group(0) if m.group(0)[0] == '"' else " ", text)
    match = _KEY_CLAUSE_RE.fullmatch(text)
    if match is None:
        raise ValueError('not a key clause (expected key "NAME" { algorithm ALG; secret "..."; };)')
    name = match.group(1) if match.group(1) is not None else match.group(2)
    fields: dict[str, str] = {}
    for statement in match.group(3).split(";"):
        words = statement.split()
        if not words:
            continue
        if len(words) != 2 or words[0] not in ("algorithm", "secret"):
            raise ValueError(f"unexpected statement {' '.join(words)!r} in the key clause")
        if words[0] in fields:
            raise ValueError(f"{words[0]} given twice")
        fields[words[0]] = words[1]
    if "secret" not in fields:
        raise ValueError("the key clause has no secret")
    algorithm = algorithm_from_text(fields.get("algorithm", "hmac-sha256"))
    secret = decode_secret(fields["secret"].strip('"'))
    return name, algorithm, secret


_COMMENT_RE = re.compile(r'"[^"]*"|/\*.*?\*/|//[^\n]*|#[^\n]*', re.S)
_KEY_CLAUSE_RE = re.compile(r'\s*key\s+(?:"([^"]+)"|([^\s"{]+))\s*\{([^{}]*)\}\s*;\s*', re.S)


def decode_secret(text: str) -> bytes:
    """A base64 TSIG secret (whitespace allowed) -> bytes; ValueError if bad or empty."""
    try:
        secret = base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error:
        raise ValueError("secret is not valid base64") from None
    if not secret:
        raise ValueError("secret is empty")
    return secret
