"""One configured mirror as a plain value (no YAML, no provider), and its name matching.

`names` patterns are relative to the zone, as INTERFACE.md writes them:
"@" is the apex, "home" exactly home.ZONE, "*.lab" every name strictly below
lab.ZONE, "*" every name below the apex (the default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TYPES = ("A", "AAAA", "TXT", "CNAME", "MX", "SRV", "CAA")
DEFAULT_NAMES = ("*",)


def absolute(name: str, zone: str) -> str:
    """A pattern's name made absolute (lower case, trailing dot): "home" -> "home.ZONE"."""
    if name == "@":
        return zone
    return f"{name.lower().rstrip('.')}.{zone}"


def below(name: str, parent: str) -> bool:
    """True when `name` is `parent` or a name under it (absolute, lower case)."""
    return name == parent or parent == "." or name.endswith("." + parent)


@dataclass(frozen=True)
class MirrorSpec:
    name: str
    provider: str
    zone: str  # absolute, lower case ("dyn.example.test.")
    upstream_zone: str  # absolute, lower case
    names: tuple[str, ...] = DEFAULT_NAMES
    types: tuple[str, ...] = DEFAULT_TYPES
    adopt: bool = False
    calls_per_second: float = 5.0
    resync_interval: float = 3600.0
    max_change_share: float = 0.3
    options: Mapping[str, Any] = field(default_factory=dict)
    _exact: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _subtrees: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact = set()
        subtrees = []
        for pattern in self.names:
            if pattern == "*":
                subtrees.append(self.zone)
            elif pattern.startswith("*."):
                subtrees.append(absolute(pattern[2:], self.zone))
            else:
                exact.add(absolute(pattern, self.zone))
        object.__setattr__(self, "_exact", frozenset(exact))
        object.__setattr__(self, "_subtrees", tuple(subtrees))

    def manages(self, name: str, rdtype: str) -> bool:
        """Is the RRset (absolute lower-case name, type mnemonic) one this mirror owns?"""
        if rdtype not in self.types:
            return False
        if name in self._exact:
            return True
        return any(name != top and below(name, top) for top in self._subtrees)
