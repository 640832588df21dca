"""The pure core loads neither PyYAML, the config readers nor Twisted."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import ddns_server

# Outside the pure core: the YAML config readers, the Twisted edge, the
# command line, and `ddns-server client` (a separate program with its own
# YAML file). Everything else, including modules added later, is core.
NOT_CORE = ("cli", "__main__", "config", "edge", "client")


def core_modules() -> list[str]:
    """Every module of the package outside NOT_CORE, found on disk."""
    names = [
        m.name.removeprefix("ddns_server.")
        for m in pkgutil.walk_packages(ddns_server.__path__, "ddns_server.")
    ]
    return sorted(n for n in names if n.split(".")[0] not in NOT_CORE)


CHECK = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module("ddns_server." + name)
loaded = sorted(
    m for m in sys.modules
    if m.split(".")[0] in ("yaml", "twisted")
    or m.startswith(("ddns_server.config", "ddns_server.edge"))
)
print(" ".join(loaded))
"""


def test_the_core_list_covers_the_modules_named_in_the_issues() -> None:
    core = core_modules()
    for name in ("update", "store", "policy", "rrl", "ratelog", "limits", "plan", "model"):
        assert name in core
    assert any(n.startswith("api.") for n in core)
    for name in ("mirrors.engine", "mirrors.registry", "mirrors.rfc2136", "mirrors.worker"):
        assert name in core


def test_core_does_not_import_yaml_config_or_twisted() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK, *core_modules()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == []
