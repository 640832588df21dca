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

from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    required: bool = False
    secret: bool = False
    kind: type = str  # str, int, float or bool: the YAML type expected
    help: str = ""
