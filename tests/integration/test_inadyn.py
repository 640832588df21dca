"""The real inadyn (Debian package) against the DynDNS2 endpoint over HTTPS.

inadyn has no built-in provider for a self-hosted server, so it uses a
`custom` provider section (see docs/clients.md): `ddns-server` and
`ddns-path` point at /nic/update, `ca-trust-file` trusts the server's
self-signed certificate, and `ddns-response` adds `nochg` to the words inadyn
takes for success. Each run is `--once --foreground` with its own cache
folder; the address comes from `checkip-command` or from our own
/nic/checkip, never from the internet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness import ServerProcess, require_tool, run
from test_dyndns2_http import (
    HOME,
    OFFICE,
    PASSWORDS,
    Unchanged,
    addresses,
    assert_accepted,
    self_signed_cert,
    start_dyndns_server,
)


def inadyn_config(
    folder: Path,
    server: ServerProcess,
    hosts: list[str],
    *,
    address: str | None = None,
    checkip_here: bool = False,
) -> Path:
    port = server.https_url.rsplit(":", 1)[1]
    if checkip_here:
        checkip = (
            f'    checkip-server = "127.0.0.1:{port}"\n'
            '    checkip-path = "/nic/checkip"\n'
            "    checkip-ssl = true\n"
        )
    else:
        checkip = f'    checkip-command = "echo {address}"\n'
    path = folder / "inadyn.conf"
    path.write_text(
        "period = 60\n"
        # our test addresses are documentation and loopback ranges, which inadyn
        # would otherwise refuse as "not an Internet address"
        "verify-address = false\n"
        "allow-ipv6 = true\n"
        f"ca-trust-file = {self_signed_cert(server)}\n"
        "custom ddns-server {\n"
        "    ssl = true\n"
        "    username = alice\n"
        f"    password = {PASSWORDS['alice']}\n"
        f"    hostname = {{ {', '.join(hosts)} }}\n"
        f'    ddns-server = "127.0.0.1:{port}"\n'
        '    ddns-path = "/nic/update?hostname=%h&myip=%i"\n'
        "    ddns-response = { good, nochg }\n"
        f"{checkip}"
        "}\n"
    )
    path.chmod(0o600)
    return path


def run_inadyn(folder: Path, conf: Path, *extra: str) -> tuple[int, str]:
    """One `inadyn --once --foreground` run: (exit status, output)."""
    cache = folder / "cache"
    cache.mkdir(exist_ok=True)
    proc = run(
        [
            require_tool("inadyn"),
            "--once",
            "--foreground",
            "--no-pidfile",
            "-l",
            "debug",
            "-f",
            str(conf),
            f"--cache-dir={cache}",
            *extra,
        ],
        timeout=60,
        cwd=folder,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def served(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    require_tool("inadyn")
    require_tool("dig")
    server, _ = start_dyndns_server(server_factory)
    return server


def test_inadyn_keeps_hosts_current_over_https(served: ServerProcess, tmp_path: Path) -> None:
    server = served
    # one host
    conf = inadyn_config(tmp_path, server, [HOME], address="198.51.100.7")
    status, output = run_inadyn(tmp_path, conf)
    assert status == 0, output
    assert f"Successful alias table update for {HOME} => new IP# 198.51.100.7" in output, output
    assert "Certificate OK" in output  # the self-signed certificate was verified, not skipped
    assert_accepted(server, HOME, {"A": ["198.51.100.7"], "AAAA": []}, "alice", "127.0.0.1")

    # two hosts (inadyn sends one request per host)
    conf = inadyn_config(tmp_path, server, [HOME, OFFICE], address="198.51.100.8")
    status, output = run_inadyn(tmp_path, conf)
    assert status == 0, output
    for host in (HOME, OFFICE):
        assert f"Successful alias table update for {host} => new IP# 198.51.100.8" in output
        assert_accepted(server, host, {"A": ["198.51.100.8"]}, "alice", "127.0.0.1")

    # unchanged address, forced past inadyn's cache: nochg, accepted, no new version
    with Unchanged(server):
        status, output = run_inadyn(tmp_path, conf, "--force")
        assert status == 0, output
        assert output.count("nochg 198.51.100.8") == 2, output
        assert addresses(server, HOME, "A") == ["198.51.100.8"]


def test_inadyn_ipv6_sets_only_aaaa(served: ServerProcess, tmp_path: Path) -> None:
    server = served
    conf = inadyn_config(tmp_path, server, [HOME], address="2001:db8::7")
    status, output = run_inadyn(tmp_path, conf)
    assert status == 0, output
    assert f"Successful alias table update for {HOME} => new IP# 2001:db8::7" in output, output
    assert_accepted(
        server, HOME, {"A": ["192.0.2.100"], "AAAA": ["2001:db8::7"]}, "alice", "127.0.0.1"
    )


def test_inadyn_with_our_checkip(served: ServerProcess, tmp_path: Path) -> None:
    """inadyn asks our /nic/checkip (over HTTPS) for its address, then updates."""
    server = served
    conf = inadyn_config(tmp_path, server, [OFFICE], checkip_here=True)
    status, output = run_inadyn(tmp_path, conf)
    assert status == 0, output
    assert "Current IP Address: 127.0.0.1" in output
    assert f"Successful alias table update for {OFFICE} => new IP# 127.0.0.1" in output, output
    assert_accepted(server, OFFICE, {"A": ["127.0.0.1"]}, "alice", "127.0.0.1")


def test_inadyn_wrong_password_changes_nothing(served: ServerProcess, tmp_path: Path) -> None:
    server = served
    conf = inadyn_config(tmp_path, server, [HOME], address="198.51.100.9")
    conf.write_text(conf.read_text().replace(PASSWORDS["alice"], "wrong"))
    with Unchanged(server):
        status, output = run_inadyn(tmp_path, conf)
    assert "badauth" in output, output
    assert f"Successful alias table update for {HOME}" not in output
