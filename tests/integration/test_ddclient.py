"""The real ddclient (Debian package) against the DynDNS2 endpoint over HTTPS.

ddclient runs once in the foreground per step (`-daemon=0 -foreground`), with
protocol=dyndns2, server=127.0.0.1:PORT, ssl=yes and the server's self-signed
certificate trusted through ddclient's own `ssl_ca_file` option. The address
comes from the config (`use=ip, ip=...`), so nothing leaves the machine.
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


def ddclient_config(folder: Path, server: ServerProcess, ip: str, hosts: list[str]) -> Path:
    port = server.https_url.rsplit(":", 1)[1]
    path = folder / "ddclient.conf"
    path.write_text(
        "daemon=0\n"
        "syslog=no\n"
        "ssl=yes\n"
        f"ssl_ca_file={self_signed_cert(server)}\n"
        "protocol=dyndns2\n"
        f"server=127.0.0.1:{port}\n"
        "login=alice\n"
        f"password='{PASSWORDS['alice']}'\n"
        # `use=ip` is what 3.10 (Debian 12) sends to dyndns2 as myip, IPv4 or IPv6;
        # newer ddclients still accept it (as a deprecated form of usev4/usev6).
        f"use=ip, ip={ip}\n"
        f"{','.join(hosts)}\n"
    )
    path.chmod(0o600)  # ddclient wants its password file private
    return path


def run_ddclient(folder: Path, conf: Path, *extra: str, cache: str = "ddclient.cache") -> str:
    """One ddclient run in the foreground; its verbose output."""
    proc = run(
        [
            require_tool("ddclient"),
            "-daemon=0",
            "-foreground",
            "-file",
            str(conf),
            "-cache",
            str(folder / cache),
            "-verbose",
            "-noquiet",
            *extra,
        ],
        timeout=60,
        cwd=folder,
    )
    return proc.stdout + proc.stderr


@pytest.fixture
def served(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    require_tool("ddclient")
    require_tool("dig")
    server, _ = start_dyndns_server(server_factory)
    return server


def test_ddclient_keeps_hosts_current_over_https(served: ServerProcess, tmp_path: Path) -> None:
    server = served
    # one host
    conf = ddclient_config(tmp_path, server, "198.51.100.7", [HOME])
    output = run_ddclient(tmp_path, conf)
    assert f"SUCCESS:  updating {HOME}: good: IP address set to 198.51.100.7" in output, output
    assert "using SSL" in output
    assert_accepted(server, HOME, {"A": ["198.51.100.7"], "AAAA": []}, "alice", "127.0.0.1")
    assert "ddclient/" in server.log_text()  # its own User-Agent reached us

    # two hosts, in one request (ddclient groups the hosts of an account); a new
    # cache, or ddclient would wait its min-interval (30 s) before touching HOME again
    conf = ddclient_config(tmp_path, server, "198.51.100.8", [HOME, OFFICE])
    output = run_ddclient(tmp_path, conf, cache="two.cache")
    for host in (HOME, OFFICE):
        assert f"SUCCESS:  updating {host}: good: IP address set to 198.51.100.8" in output, output
        assert_accepted(server, host, {"A": ["198.51.100.8"]}, "alice", "127.0.0.1")
    assert f"hostname={HOME},{OFFICE}&myip=198.51.100.8" in server.log_text()

    # the same address again: ddclient's cache says there is nothing to do ...
    output = run_ddclient(tmp_path, conf, cache="two.cache")
    assert "good:" not in output, output
    # ... and forced, the server answers nochg and writes no version
    with Unchanged(server):
        output = run_ddclient(tmp_path, conf, "-force", cache="two.cache")
        for host in (HOME, OFFICE):
            assert f"WARNING:  updating {host}: nochg" in output, output
            assert addresses(server, host, "A") == ["198.51.100.8"]


def test_ddclient_ipv6_sets_only_aaaa(served: ServerProcess, tmp_path: Path) -> None:
    server = served
    conf = ddclient_config(tmp_path, server, "2001:db8::7", [HOME])
    output = run_ddclient(tmp_path, conf)
    assert f"SUCCESS:  updating {HOME}: good: IP address set to 2001:db8::7" in output, output
    # the A record is left as it was: address families are independent
    assert_accepted(
        server, HOME, {"A": ["192.0.2.100"], "AAAA": ["2001:db8::7"]}, "alice", "127.0.0.1"
    )


def test_ddclient_wrong_password_changes_nothing(served: ServerProcess, tmp_path: Path) -> None:
    server = served
    conf = ddclient_config(tmp_path, server, "198.51.100.9", [HOME])
    conf.write_text(conf.read_text().replace(PASSWORDS["alice"], "wrong"))
    with Unchanged(server):
        output = run_ddclient(tmp_path, conf)
    assert f"FAILED:   updating {HOME}: badauth" in output, output
