"""RFC 2136 updates with Knot's `knsupdate`, signed with a `ddns-server keygen` key."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import (
    EXAMPLE_ZONE_NAME,
    REPO_ROOT,
    ServerProcess,
    dig,
    example_zone_text,
    require_tool,
    run,
)

ZONE = EXAMPLE_ZONE_NAME
ServerFactory = Callable[..., ServerProcess]


def knot_key_file(name: str, algorithm: str, folder: Path) -> tuple[Path, Path]:
    """A key from `ddns-server keygen` (BIND clause) and the same key as
    knsupdate reads it (`-k`: the `-y` form, ALGORITHM:NAME:SECRET)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = run([sys.executable, "-m", "ddns_server", "keygen", name, "-a", algorithm], env=env)
    assert proc.returncode == 0, proc.stderr
    secret = re.search(r'secret "([^"]+)";', proc.stdout)
    assert secret is not None, proc.stdout
    bind_file = folder / f"{name}.key"
    bind_file.write_text(proc.stdout)
    knot_file = folder / f"{name}.knot"
    knot_file.write_text(f"{algorithm}:{name}:{secret[1]}\n")
    return bind_file, knot_file


def knsupdate(server: ServerProcess, key_file: Path, commands: str, tcp: bool) -> str:
    args = [require_tool("knsupdate"), "-k", str(key_file)]
    if tcp:
        args.append("-v")
    script = f"server 127.0.0.1 {server.dns_port}\nzone {ZONE}.\n{commands.strip()}\nsend\n"
    proc = run(args, input=script)
    return proc.stdout + proc.stderr


def zone_state(server: ServerProcess) -> tuple[int, list[tuple[str, int, str, str, str]]]:
    return server.soa_serial(), sorted(set(dig(server, ZONE, "AXFR").answer))


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_knsupdate(server_factory: ServerFactory, tmp_path: Path, tcp: bool) -> None:
    require_tool("knsupdate")
    bind_file, knot_file = knot_key_file("knot-key", "hmac-sha512", tmp_path)
    server = server_factory(
        {ZONE: example_zone_text()},
        {"keys": [{"name": "knot-key", "secret_file": str(bind_file)}]},
        zone_extra={
            ZONE: {
                "update_policy": [{"grant": "knot-key", "match": "zonesub"}],
                "allow_transfer": ["127.0.0.0/8"],
            }
        },
    )
    serial = server.soa_serial()
    fqdn = f"knot.{ZONE}."

    output = knsupdate(server, knot_file, f"update add {fqdn} 60 A 192.0.2.70", tcp)
    assert "ERROR" not in output, output
    assert dig(server, fqdn, "A").rdata("A") == ["192.0.2.70"]
    assert server.soa_serial() == serial + 1

    output = knsupdate(
        server, knot_file, f"update delete {fqdn} A\nupdate add {fqdn} 60 A 192.0.2.71", tcp
    )
    assert "ERROR" not in output, output
    assert dig(server, fqdn, "A").rdata("A") == ["192.0.2.71"]

    before = zone_state(server)
    output = knsupdate(server, knot_file, f"prereq nxdomain www.{ZONE}.\nupdate delete {fqdn}", tcp)
    assert "YXDOMAIN" in output, output
    assert zone_state(server) == before

    output = knsupdate(server, knot_file, f"update delete {fqdn}", tcp)
    assert "ERROR" not in output, output
    assert dig(server, fqdn, "A").status == "NXDOMAIN"
    assert server.soa_serial() == serial + 3
