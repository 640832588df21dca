"""The one small interface every upstream provider implements.

Modelled on octoDNS's providers: the engine knows nothing of any provider's
API, and a provider knows nothing of the journal. Everything crosses this
boundary as whole RRsets in presentation form, so a provider never sees
dnspython wire data it would have to decode.

A provider is blocking (SDKs are); the engine calls it from a worker thread,
never from the reactor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, order=True)
class RRset:
    """One RRset as a provider stores it.

    name: absolute, lower-case, with the trailing dot ("home.dyn.example.test.").
    rdtype: the type's mnemonic ("A", "TXT", ...).
    values: rdata in master-file text with absolute names, sorted and unique
    (e.g. ('10 mail.example.test.',) for MX, ('"v=spf1 -all"',) for TXT).
    """

    name: str
    rdtype: str
    ttl: int
    values: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.rdtype)


@dataclass(frozen=True)
class Change:
    """Make the provider hold `new` at `key`; `new` None deletes the RRset."""

    key: tuple[str, str]  # (name, rdtype) as in RRset
    new: RRset | None


class ProviderError(Exception):
    """A provider call failed. Its message is shown in `mirror status` and logs."""

    transient = True
    retry_after: float | None = None


class TransientError(ProviderError):
    """Retry later: timeouts, connection refused, 5xx, 429 (retry_after from the answer)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ProviderError):
    """Stop the mirror until the config changes or an operator retries:
    bad credentials, zone not found, record rejected."""

    transient = False


class Provider(Protocol):
    """What the engine needs from a provider (one instance per mirror)."""

    def read(self, keys: Iterable[tuple[str, str]] | None = None) -> list[RRset]:
        """The provider's current RRsets in the upstream zone.

        With `keys`, only those (name, rdtype) pairs (missing ones are simply
        absent from the result); with None, every RRset the provider holds
        (the engine filters to the managed names and types).
        """
        ...

    def apply(self, changes: list[Change]) -> None:
        """Make every change, RRset by RRset (replace or delete; idempotent).

        Raises TransientError or PermanentError; on an error, any prefix of
        the changes may have been made (the engine repeats them all).
        """
        ...

    def close(self) -> None:
        """Release connections (on reload or shutdown)."""
        ...


ProviderOptions = Mapping[str, Any]
