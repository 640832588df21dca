"""Password hashes for DynDNS2 users: scrypt, in a self-describing text form.

The form is `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (standard base64, no padding).
The cost parameters are read back from each hash, so they can be raised later
without invalidating existing hashes.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a hash is made or checked: the config
    # readers only parse hashes, and a DNS-only server keeps cryptography
    # (~7 MiB) out of memory (a server with users has an HTTP listener,
    # whose TLS code imports it at start)
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

_PREFIX = "$scrypt$"
_LN = 15  # n = 2**15: about 32 MiB and tens of milliseconds per hash
_R = 8
_P = 1
_SALT_SIZE = 16
_KEY_SIZE = 32


@dataclass(frozen=True)
class _Hash:
    ln: int
    r: int
    p: int
    salt: bytes
    key: bytes


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    if not text or "=" in text:
        raise ValueError("bad base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as e:
        raise ValueError("bad base64") from e


def _parse(encoded: str) -> _Hash:
    """Split an encoded hash into its parts; ValueError if it is malformed."""
    if not encoded.startswith(_PREFIX):
        raise ValueError("not an scrypt hash")
    parts = encoded[len(_PREFIX) :].split("$")
    if len(parts) != 3:
        raise ValueError("expected $scrypt$PARAMS$SALT$HASH")
    params: dict[str, int] = {}
    for item in parts[0].split(","):
        param, sep, value = item.partition("=")
        if not sep or param in params or not value.isdigit():
            raise ValueError(f"bad parameter {item!r}")
        params[param] = int(value)
    if sorted(params) != ["ln", "p", "r"]:
        raise ValueError("expected parameters ln, r and p")
    # Bounds keep a mistyped hash from asking for gigabytes of memory.
    if not (1 <= params["ln"] <= 24 and 1 <= params["r"] <= 64 and 1 <= params["p"] <= 16):
        raise ValueError("scrypt parameters out of range")
    salt = _b64decode(parts[1])
    key = _b64decode(parts[2])
    if len(key) < 16:
        raise ValueError("hash too short")
    return _Hash(params["ln"], params["r"], params["p"], salt, key)


def _scrypt(h: _Hash) -> Scrypt:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=h.salt, length=len(h.key), n=2**h.ln, r=h.r, p=h.p)


def _encode_password(password: str) -> bytes:
    # surrogatepass: never fail on odd input from an HTTP header; it simply won't match.
    return password.encode("utf-8", "surrogatepass")


def hash_password(password: str) -> str:
    """Return a new salted scrypt hash of `password`, in the `$scrypt$...` form."""
    salt = os.urandom(_SALT_SIZE)
    key = _scrypt(_Hash(_LN, _R, _P, salt, bytes(_KEY_SIZE))).derive(_encode_password(password))
    return f"{_PREFIX}ln={_LN},r={_R},p={_P}${_b64encode(salt)}${_b64encode(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches the hash `encoded` (constant-time); False if malformed."""
    from cryptography.exceptions import InvalidKey

    try:
        h = _parse(encoded)
    except ValueError:
        return False
    try:
        _scrypt(h).verify(_encode_password(password), h.key)
    except InvalidKey:
        return False
    return True


def is_valid_hash(encoded: str) -> bool:
    """True if `encoded` is a well-formed hash (as `hash_password` makes)."""
    try:
        _parse(encoded)
    except ValueError:
        return False
    return True
