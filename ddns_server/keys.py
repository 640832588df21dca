"""TSIG keys: algorithm names, BIND-style key clauses, and dnspython keyrings."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

import dns.exception
import dns.name
import dns.tsig

if TYPE_CHECKING:
    from ddns_server.config import TsigKey

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
