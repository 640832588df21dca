"""The pure core loads neither PyYAML, the config readers nor Twisted."""

from __future__ import annotations

import subprocess
import sys

CORE = (
    "api.cloudflare",
    "api.openapi",
    "api.records",
    "api.service",
    "api.tokens",
    "api.v1",
    "dnsmsg",
    "dyndns2",
    "journal",
    "keys",
    "mirrors.engine",
    "mirrors.registry",
    "mirrors.rfc2136",
    "mirrors.state",
    "mirrors.worker",
    "model",
    "passwords",
    "plan",
    "policy",
    "query",
    "store",
    "update",
    "tsigwire",
    "update_handler",
    "xfr",
    "zonedata",
    "zonefile",
)

CHECK = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module("ddns_server." + name)
loaded = sorted(
    m for m in sys.modules
    if m.split(".")[0] in ("yaml", "twisted") or m.startswith("ddns_server.config")
)
print(" ".join(loaded))
"""


def test_core_does_not_import_yaml_config_or_twisted() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK, *CORE], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == []
