"""Provider names -> their classes, imported only when a mirror uses one.

Each provider is a class `Provider(options, upstream_zone)` (base.py's
interface) in its own module. `options` is the mirror's `options:` mapping
with secrets already resolved (`api_token_env: CF_TOKEN` arrives as
`api_token: "..."`) and, for rfc2136, `key` as a dns.tsig.Key;
`upstream_zone` is absolute text ("example.test.").

`check` is what `check-config` runs: it reads the provider module's own
description (options.py) without importing its SDK, finds the SDK without
importing it, and never calls a provider.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import dns.name
import dns.tsig

from ddns_server.mirrors.base import PermanentError, Provider
from ddns_server.mirrors.options import Option
from ddns_server.mirrors.spec import MirrorSpec

PROVIDERS: dict[str, str] = {
    "rfc2136": "ddns_server.mirrors.rfc2136.Rfc2136Provider",
    "route53": "ddns_server.mirrors.route53.Route53Provider",
    "cloudflare": "ddns_server.mirrors.cloudflare.CloudflareProvider",
    "dnspod": "ddns_server.mirrors.dnspod.DnspodProvider",
    "octodns": "ddns_server.mirrors.octodns.OctodnsProvider",
}
"""Provider name -> its class. Each module also describes itself at module
level, without importing its SDK (options.py): OPTIONS, EXTRA, LIBRARY and,
for octodns, PASSTHROUGH."""


@dataclass(frozen=True)
class Description:
    options: Mapping[str, Option]
    extra: str | None  # the pip extra that installs the library
    library: str | None  # the module the provider needs
    passthrough: bool  # keys beyond `options` go to the provider (octodns)


def _module_name(provider: str) -> str:
    return PROVIDERS[provider].rpartition(".")[0]


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def describe(provider: str) -> Description:
    """The provider module's description of itself (imports the module, never its SDK).

    Raises LookupError with a one-line message when the provider is unknown
    or its module is missing.
    """
    if provider not in PROVIDERS:
        raise LookupError(f"unknown provider {provider!r} (expected one of {', '.join(PROVIDERS)})")
    name = _module_name(provider)
    if not _findable(name):
        raise LookupError(f"provider {provider}: module {name} is missing from this ddns-server")
    module = importlib.import_module(name)
    return Description(
        options=getattr(module, "OPTIONS", {}),
        extra=getattr(module, "EXTRA", None),
        library=getattr(module, "LIBRARY", None),
        passthrough=bool(getattr(module, "PASSTHROUGH", False)),
    )


def check(provider: str) -> str | None:
    """Why `provider` cannot run here (unknown, its module or library missing), or None."""
    try:
        info = describe(provider)
    except LookupError as e:
        return str(e)
    if info.library and not _findable(info.library):
        hint = f": pip install 'ddns-server[{info.extra}]'" if info.extra else ""
        return f"provider {provider} needs the Python package {info.library!r}{hint}"
    return None


def with_keys(spec: MirrorSpec, keys: Iterable[Any]) -> MirrorSpec:
    """The spec with an rfc2136 `key` name replaced by its dns.tsig.Key (from the
    config's `keys`: objects with name, algorithm and secret)."""
    name = spec.options.get("key")
    if spec.provider != "rfc2136" or not isinstance(name, str):
        return spec
    wanted = dns.name.from_text(name)
    for key in keys:
        if key.name == wanted:
            tsig = dns.tsig.Key(key.name, key.secret, key.algorithm)
            return dataclasses.replace(spec, options={**spec.options, "key": tsig})
    raise PermanentError(f"mirror {spec.name}: unknown key {name!r}")


def create(spec: MirrorSpec, keys: Iterable[Any] = ()) -> Provider:
    """A provider instance for the mirror; PermanentError when it cannot be made."""
    spec = with_keys(spec, keys)
    problem = check(spec.provider)
    if problem is not None:
        raise PermanentError(problem)
    target = PROVIDERS[spec.provider]
    module_name, _, class_name = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as e:
        raise PermanentError(f"provider {spec.provider}: cannot load {target}: {e}") from None
    try:
        return cls(spec.options, spec.upstream_zone)  # type: ignore[no-any-return]
    except PermanentError:
        raise
    except Exception as e:  # noqa: BLE001 - a provider's constructor rejecting its options
        raise PermanentError(f"provider {spec.provider}: {type(e).__name__}: {e}") from None
