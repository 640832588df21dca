"""How a provider module describes its `options:` keys, so that the config
reader can validate a mirror without importing the provider's SDK.

Every provider module defines, at module level and without importing its SDK:

- ``OPTIONS``: ``Mapping[str, Option]``, the keys it accepts;
- ``EXTRA``: the pip extra that installs its library (``ddns-server[EXTRA]``);
- ``LIBRARY``: the importable module that extra brings (checked with
  ``importlib.util.find_spec``);
- optionally ``PASSTHROUGH = True`` when keys beyond ``OPTIONS`` are accepted
  and handed on (octodns: the provider class's own keyword options).

A secret option may be given as ``NAME``, ``NAME_env`` or ``NAME_file``; the
config reader resolves it and the provider receives ``NAME`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import PermanentError


@dataclass(frozen=True)
class Option:
    required: bool = False
    secret: bool = False
    kind: type = str  # str, int, float or bool: the YAML type expected
    help: str = ""


def flag(value: object, name: str) -> bool:
    """A boolean option as YAML gives it (true/false), also from an environment
    variable's text ("true", "false", "1", "0", "yes", "no")."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def seconds(options: Mapping[str, Any], key: str, default: float, provider: str) -> float:
    """A positive number of seconds from the options, or a permanent error naming it."""
    value = options.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0:
        raise PermanentError(
            f"{provider}: {key} must be a positive number of seconds, not {value!r}"
        )
    return number
