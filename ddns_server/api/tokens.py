"""API tokens: a name, a scope (zone, names, types, role), an expiry; only a hash kept.

The secret is printed once by `token create` (`secrets`, 240 bits); the
journal database keeps its SHA-256 (a random 240-bit secret needs no slow
hash, unlike a password). The server looks a token up on every request, so
`token create` and `token revoke` in another process take effect at once.

Name patterns are the mirrors' form, relative to the token's zone: `home`
is exactly home.ZONE, `*.lab` every name strictly below lab.ZONE, `@` the
apex. No pattern: every name of the zone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype

from ddns_server.errors import UserError

ROLES = ("read", "write", "admin")
# The token table's own schema version (meta key), so it migrates apart from
# the journal's tables: version 1 creates api_tokens.
SCHEMA_KEY = "api_tokens_schema"
SCHEMA_VERSION = 1
_SCHEMA = """CREATE TABLE IF NOT EXISTS api_tokens (
    name TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, zone TEXT NOT NULL,
    names TEXT NOT NULL, types TEXT NOT NULL, role TEXT NOT NULL,
    created REAL NOT NULL, expires REAL)"""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    """40 URL-safe characters, the length and alphabet of a Cloudflare API token."""
    return secrets.token_urlsafe(30)


@dataclass(frozen=True)
class NamePattern:
    """One `--names` pattern: exact (`home`), below (`*.lab`), or the apex (`@`)."""

    text: str
    name: dns.name.Name  # relative to the zone (empty for `@`)
    below: bool

    @classmethod
    def parse(cls, text: str) -> NamePattern:
        raw = text.strip()
        if raw == "@":
            return cls("@", dns.name.empty, False)
        below = raw.startswith("*.")
        body = raw[2:] if below else raw
        if not body or body.endswith(".") or "*" in body:
            raise UserError(
                f"bad name pattern {text!r}: expected a name relative to the zone"
                " (`home`), `*.NAME` or `@`"
            )
        try:
            name = dns.name.from_text(body, origin=None)
        except dns.exception.DNSException as e:
            raise UserError(f"bad name pattern {text!r}: {e}") from None
        return cls(raw, name, below)

    def matches(self, relative: dns.name.Name) -> bool:
        if self.below:
            return relative != self.name and relative.is_subdomain(self.name)
        return relative == self.name


@dataclass(frozen=True)
class Token:
    name: str
    zone: dns.name.Name
    names: tuple[NamePattern, ...]  # empty: every name of the zone
    types: frozenset[int] | None  # None: every type (SOA never; apex NS admin only)
    role: str
    created: float
    expires: float | None

    def can_name(self, owner: dns.name.Name) -> bool:
        if not owner.is_subdomain(self.zone):
            return False
        if not self.names:
            return True
        relative = owner.relativize(self.zone)
        return any(p.matches(relative) for p in self.names)

    def can_type(self, rdtype: int) -> bool:
        return self.types is None or rdtype in self.types

    def at_least(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def to_dict(self) -> dict[str, object]:
        """The listing form (`token list --json`, never the secret)."""
        return {
            "name": self.name,
            "zone": self.zone.to_text(),
            "names": [p.text for p in self.names] or ["*"],
            "types": sorted(dns.rdatatype.to_text(t) for t in self.types)  # type: ignore[arg-type]
            if self.types is not None
            else ["*"],
            "role": self.role,
            "created": self.created,
            "expires": self.expires,
        }


def parse_types(texts: Iterable[str]) -> frozenset[int]:
    out = set()
    for text in texts:
        try:
            rdtype = dns.rdatatype.from_text(text.strip().upper())
        except dns.exception.DNSException:
            raise UserError(f"unknown record type {text!r}") from None
        if rdtype == dns.rdatatype.SOA:
            raise UserError("SOA cannot be given to a token: the server keeps the SOA")
        out.add(int(rdtype))
    return frozenset(out)


class TokenStore:
    """The api_tokens table of the journal database (its connection, or its own)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._migrate()

    def _migrate(self) -> None:
        conn = self.conn
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCHEMA_KEY,)).fetchone()
        if row is not None and int(row[0]) >= SCHEMA_VERSION:
            if int(row[0]) > SCHEMA_VERSION:
                raise UserError(f"api token table schema {row[0]} is newer than this ddns-server")
            return
        in_tx = conn.in_transaction
        if not in_tx:
            conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_SCHEMA)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (SCHEMA_KEY, str(SCHEMA_VERSION)),
            )
        except BaseException:
            if not in_tx:
                conn.execute("ROLLBACK")
            raise
        if not in_tx:
            conn.execute("COMMIT")

    def create(
        self,
        name: str,
        zone: dns.name.Name,
        names: Sequence[str] = (),
        types: Sequence[str] = (),
        role: str = "write",
        expires_days: int | None = None,
        now: float = 0.0,
    ) -> tuple[Token, str]:
        """A new token and its secret (shown once); a UserError for a bad scope."""
        if not name or any(c.isspace() for c in name) or len(name) > 64:
            raise UserError(f"bad token name {name!r}: 1 to 64 characters, no spaces")
        if role not in ROLES:
            raise UserError(f"bad role {role!r}: expected read, write or admin")
        patterns = tuple(NamePattern.parse(p) for p in names if p.strip())
        rdtypes = parse_types(t for t in types if t.strip()) if types else None
        if expires_days is not None and expires_days < 1:
            raise UserError(f"bad --expires-days {expires_days}: expected a positive number")
        expires = now + expires_days * 86400.0 if expires_days is not None else None
        secret = new_secret()
        token = Token(name, zone, patterns, rdtypes, role, now, expires)
        try:
            self.conn.execute(
                "INSERT INTO api_tokens (name, hash, zone, names, types, role, created, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    hash_secret(secret),
                    zone.to_text().lower(),
                    json.dumps([p.text for p in patterns]),
                    json.dumps(sorted(rdtypes) if rdtypes is not None else None),
                    role,
                    now,
                    expires,
                ),
            )
        except sqlite3.IntegrityError:
            raise UserError(f"a token named {name!r} exists already (revoke it first)") from None
        return token, secret

    def list(self) -> list[Token]:
        rows = self.conn.execute(
            "SELECT name, zone, names, types, role, created, expires FROM api_tokens ORDER BY name"
        ).fetchall()
        return [_token(row) for row in rows]

    def revoke(self, name: str) -> bool:
        cursor = self.conn.execute("DELETE FROM api_tokens WHERE name = ?", (name,))
        return cursor.rowcount > 0

    def find(self, secret: str, now: float) -> Token | None:
        """The live token with this secret (None: unknown, revoked or expired)."""
        digest = hash_secret(secret)
        row = self.conn.execute(
            "SELECT name, zone, names, types, role, created, expires, hash FROM api_tokens"
            " WHERE hash = ?",
            (digest,),
        ).fetchone()
        if row is None or not hmac.compare_digest(row[7], digest):
            return None
        token = _token(row[:7])
        if token.expires is not None and now >= token.expires:
            return None
        return token


def _token(row: Sequence[object]) -> Token:
    name, zone, names, types, role, created, expires = row
    type_list = json.loads(str(types))
    return Token(
        str(name),
        dns.name.from_text(str(zone)),
        tuple(NamePattern.parse(p) for p in json.loads(str(names))),
        frozenset(int(t) for t in type_list) if type_list is not None else None,
        str(role),
        float(created),  # type: ignore[arg-type]
        float(expires) if expires is not None else None,  # type: ignore[arg-type]
    )
