"""Failover RRsets against real loopback listeners (docs/failover.md).

The test starts and stops TCP and HTTP(S) servers on 127.0.0.x addresses;
the server probes them and switches the RRset by journaled versions (channel
`health`). Intervals are short (0.2-0.3 s) so a switch takes about a second;
every wait polls a condition with a deadline.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest
from conftest import ServerFactory, Spawn
from harness import (
    EXAMPLE_ZONE_NAME,
    REPO_ROOT,
    ServerProcess,
    TsigKey,
    example_zone_text,
    http_get,
    run,
    wait_for,
)

ZONE = EXAMPLE_ZONE_NAME
KEY = TsigKey.generate("update-key")
SWITCH = 10.0  # seconds a switch may take (a few probe intervals; generous for a loaded CI)


# ---------------------------------------------------------------------------
# loopback listeners the test controls


class TcpListener:
    """Accepts (and closes) connections on ADDRESS:PORT while up."""

    def __init__(self, address: str, port: int = 0) -> None:
        self.address = address
        self.port = port
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address, self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self.sock = sock
        self.thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self.thread.start()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.sock = None
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None


class HttpTarget:
    """An HTTP(S) server on ADDRESS:PORT: answers `status` (a list of statuses
    is consumed one per request first), records the requests' paths and Host."""

    def __init__(self, address: str, port: int = 0, tls: tuple[Path, Path] | None = None) -> None:
        self.status = 200
        self.script: list[int] = []
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                with target.lock:
                    target.requests.append((self.path, self.headers.get("Host")))
                    code = target.script.pop(0) if target.script else target.status
                body = b"ok\n"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def listeners() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for listener in made:
        listener.stop()


def free_port_on(*addresses: str) -> int:
    """A TCP port free on every one of `addresses` (bound on the first, tried on the rest)."""
    for _ in range(50):
        first = socket.socket()
        first.bind((addresses[0], 0))
        port = first.getsockname()[1]
        ok = True
        for address in addresses[1:]:
            other = socket.socket()
            try:
                other.bind((address, port))
            except OSError:
                ok = False
            finally:
                other.close()
        first.close()
        if ok:
            return port
    raise AssertionError("no common free port")


# ---------------------------------------------------------------------------
# helpers


def failover(name: str, targets: list[str], port: int, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "type": "A",
        "targets": targets,
        "policy": "first",
        "check": {"protocol": "tcp", "port": port},
        "interval": 0.2,
        "timeout": 0.2,
        "rise": 2,
        "fall": 2,
        "ttl": 30,
    }
    entry.update(extra)
    return entry


def start(
    server_factory: ServerFactory, failovers: list[dict[str, Any]], **extra: Any
) -> ServerProcess:
    zone_extra: dict[str, Any] = {
        "failover": failovers,
        "allow_transfer": ["127.0.0.0/8"],
        "update_policy": [{"grant": "update-key", "match": "zonesub"}],
    }
    zone_extra.update(extra.pop("zone_extra", {}))
    return server_factory(
        {ZONE: example_zone_text()},
        {"keys": [KEY.config()], **extra},
        zone_extra={ZONE: zone_extra},
    )


def addresses(server: ServerProcess, name: str, rdtype: str = "A") -> list[str]:
    response = server.query(f"{name}.{ZONE}", rdtype)
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset)


def wait_serving(server: ServerProcess, name: str, wanted: list[str]) -> None:
    wait_for(
        lambda: addresses(server, name) == sorted(wanted),
        timeout=SWITCH,
        message=f"{name} to serve {wanted} (log:\n{server.log_text()[-3000:]})",
    )


def health_versions(server: ServerProcess) -> list[dict[str, Any]]:
    out = server.cli("journal", "log", ZONE, "--json")
    assert out.returncode == 0, out.stderr
    return [v for v in json.loads(out.stdout) if v["channel"] == "health"]


def health_status(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("DDNS_CONFIG", None)
    env["PYTHONPATH"] = str(REPO_ROOT)
    cmd = [sys.executable, "-m", "ddns_server", "health", "status", "-c", str(server.config_path)]
    return run([*cmd, *args], env=env, cwd=server.directory)


def status_rows(server: ServerProcess) -> list[dict[str, Any]]:
    out = health_status(server, "--json")
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def target_state(server: ServerProcess, name: str, address: str) -> str | None:
    for row in status_rows(server):
        if row["name"] == f"{name}.{ZONE}":
            for target in row["targets"]:
                if target["address"] == address:
                    return str(target["state"])
    return None


def summary(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a failover status row says, without its times."""
    return [
        (r["name"], r["type"], r["served"], [(t["address"], t["state"]) for t in r["targets"]])
        for r in rows
    ]


def api_failover(server: ServerProcess, secret: str) -> list[tuple[Any, ...]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}/api/v1/zones/{ZONE}/failover",
        headers={"Authorization": f"Bearer {secret}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    return summary(body["failover"])


def update(server: ServerProcess, name: str, address: str) -> int:
    message = dns.update.UpdateMessage(ZONE, keyring=KEY.keyring(), keyname=KEY.name)
    message.replace(name, 60, "A", address)
    response = dns.query.tcp(message, "127.0.0.1", port=server.dns_port, timeout=5)
    return int(response.rcode())


# ---------------------------------------------------------------------------
# tests


def test_primary_backup_switch_over_and_back(
    server_factory: ServerFactory, listeners: list[Any]
) -> None:
    port = free_port_on("127.0.0.21", "127.0.0.22")
    primary = TcpListener("127.0.0.21", port)
    backup = TcpListener("127.0.0.22", port)
    listeners += [primary, backup]
    server = start(server_factory, [failover("www", ["127.0.0.21", "127.0.0.22"], port)])
    wait_serving(server, "www", ["127.0.0.21"])
    first = health_versions(server)
    assert [v["who"] for v in first] == ["failover:www A"]

    primary.stop()
    wait_serving(server, "www", ["127.0.0.22"])
    versions = health_versions(server)
    assert len(versions) == 2
    # The API's view (admin) is the checker's: the same RRsets, targets, states.
    secret = server.cli("token", "create", "ops", "--zone", ZONE, "--role", "admin").stdout
    wait_for(
        lambda: api_failover(server, secret.strip()) == summary(status_rows(server)),
        timeout=SWITCH,
        message="GET /api/v1/zones/ZONE/failover to match health status --json",
    )
    assert "127.0.0.21 down" in versions[0]["source"]  # journal log: the reason
    assert "failover www A: now serving 127.0.0.22" in server.log_text()

    primary.start()
    wait_serving(server, "www", ["127.0.0.21"])
    versions = health_versions(server)
    assert len(versions) == 3
    assert "127.0.0.21 up" in versions[0]["source"]
    # The AAAA of www is not the checker's and stays.
    assert addresses(server, "www", "AAAA") == ["2001:db8::10"]


def test_all_down_fails_open_or_removes(
    server_factory: ServerFactory, listeners: list[Any]
) -> None:
    port = free_port_on("127.0.0.23", "127.0.0.24")
    one = TcpListener("127.0.0.23", port)
    two = TcpListener("127.0.0.24", port)
    listeners += [one, two]
    both = ["127.0.0.23", "127.0.0.24"]
    server = start(
        server_factory,
        [
            failover("www", both, port, policy="all"),
            failover("api", both, port, policy="all", on_all_down="none"),
        ],
    )
    wait_serving(server, "www", both)
    wait_serving(server, "api", both)
    one.stop()
    wait_serving(server, "www", ["127.0.0.24"])
    wait_serving(server, "api", ["127.0.0.24"])
    two.stop()
    # Fail open: every target again; `none`: the RRset is gone (NODATA).
    wait_serving(server, "www", both)
    wait_serving(server, "api", [])
    assert not server.query(f"api.{ZONE}", "A").answer  # NXDOMAIN: api held only this A
    assert "every target is down; serving all of them (fail open)" in server.log_text()
    assert "removing the RRset (on_all_down: none)" in server.log_text()
    rows = wait_for(
        lambda: (rows := status_rows(server)) and all(r["all_down"] for r in rows) and rows,
        timeout=SWITCH,
        message="status to say all down",
    )
    assert {r["name"]: r["served"] for r in rows} == {f"www.{ZONE}": both, f"api.{ZONE}": []}
    _, metrics = http_get(f"{server.http_url}/metrics")
    assert f'ddns_failover_all_down{{name="www.{ZONE}",type="A",zone="{ZONE}"}} 1.0' in metrics
    assert (
        f'ddns_failover_target_up{{address="127.0.0.23",name="www.{ZONE}",'
        f'target="127.0.0.23",type="A",zone="{ZONE}"}} 0.0'
    ) in metrics
    assert "ddns_failover_probe_latency_seconds_bucket" in metrics
    assert f'ddns_failover_switches_total{{name="www.{ZONE}",type="A",zone="{ZONE}"}}' in metrics
    one.start()
    wait_serving(server, "www", ["127.0.0.23"])
    wait_serving(server, "api", ["127.0.0.23"])


def test_flapping_target_is_held_and_nothing_is_written_while_steady(
    server_factory: ServerFactory, listeners: list[Any]
) -> None:
    port = free_port_on("127.0.0.25", "127.0.0.26")
    primary = HttpTarget("127.0.0.25", port)
    backup = HttpTarget("127.0.0.26", port)
    listeners += [primary, backup]
    check = {"protocol": "http", "port": port, "path": "/health", "host": "www.example.test"}
    server = start(
        server_factory,
        [failover("www", ["127.0.0.25", "127.0.0.26"], port, check=check, fall=3, rise=3)],
    )
    wait_serving(server, "www", ["127.0.0.25"])
    assert primary.requests[0] == ("/health", "www.example.test")
    serial = server.soa_serial()
    # Steady: many probes, no version.
    seen = primary.count()
    wait_for(lambda: primary.count() >= seen + 10, timeout=SWITCH, message="10 more probes")
    assert server.soa_serial() == serial
    # A flapping primary: 2 failures (fall is 3), a success, 2 failures, then healthy.
    with primary.lock:
        primary.script = [500, 503, 200, 500, 500]
    seen = primary.count()
    wait_for(lambda: primary.count() >= seen + 8, timeout=SWITCH, message="the flaps probed")
    assert addresses(server, "www") == ["127.0.0.25"]
    assert server.soa_serial() == serial
    assert len(health_versions(server)) == 1
    # Three failures in a row do switch.
    with primary.lock:
        primary.status = 500
    wait_serving(server, "www", ["127.0.0.26"])
    assert "HTTP status 500" in health_versions(server)[0]["source"]


def test_names_as_targets_follow_nic_update(
    server_factory: ServerFactory, listeners: list[Any]
) -> None:
    from test_dyndns2_http import PASSWORDS, users_config

    port = free_port_on("127.0.0.31", "127.0.0.32", "127.0.0.33")
    wan1 = TcpListener("127.0.0.31", port)
    wan2 = TcpListener("127.0.0.32", port)
    wan1b = TcpListener("127.0.0.33", port)
    listeners += [wan1, wan2, wan1b]
    user = next(iter(PASSWORDS))
    server = start(
        server_factory,
        [failover("office", ["wan1", "wan2"], port)],
        users=users_config({user: [f"wan1.{ZONE}", f"wan2.{ZONE}", f"office.{ZONE}"]}),
    )

    def nic(host: str, ip: str) -> str:
        status, body = http_get(
            f"{server.http_url}/nic/update?hostname={host}.{ZONE}&myip={ip}",
            auth=(user, PASSWORDS[user]),
            headers={"User-Agent": "test/1.0"},
        )
        assert status == 200
        return body.strip()

    # No wan1/wan2 yet: nothing to serve.
    assert addresses(server, "office") == []
    assert nic("wan2", "127.0.0.32").startswith("good")
    wait_serving(server, "office", ["127.0.0.32"])
    assert nic("wan1", "127.0.0.31").startswith("good")
    wait_serving(server, "office", ["127.0.0.31"])  # wan1 first: primary
    wan1.stop()
    wait_serving(server, "office", ["127.0.0.32"])
    # The router of line 1 reconnects with a new address: the name follows it.
    assert nic("wan1", "127.0.0.33").startswith("good")
    wait_serving(server, "office", ["127.0.0.33"])
    wanted = {("wan1", "127.0.0.33"): "up", ("wan2", "127.0.0.32"): "up"}
    wait_for(
        lambda: (
            {(t["target"], t["address"]): t["state"] for t in status_rows(server)[0]["targets"]}
            == wanted
        ),
        timeout=SWITCH,
        message=f"the status to show {wanted}",
    )
    # The failover RRset itself is not a DynDNS2 host: nohost, nothing changes.
    serial = server.soa_serial()
    assert nic("office", "192.0.2.1") == "nohost"
    assert addresses(server, "office") == ["127.0.0.33"]
    assert server.soa_serial() == serial


def test_rfc2136_and_dyndns2_changes_of_the_rrset_are_refused(
    server_factory: ServerFactory, listeners: list[Any]
) -> None:
    from test_dyndns2_http import PASSWORDS, users_config

    port = free_port_on("127.0.0.27")
    listeners.append(TcpListener("127.0.0.27", port))
    user = next(iter(PASSWORDS))
    server = start(
        server_factory,
        [failover("www", ["127.0.0.27"], port)],
        users=users_config({user: [f"www.{ZONE}", f"home.{ZONE}"]}),
    )
    wait_serving(server, "www", ["127.0.0.27"])
    serial = server.soa_serial()
    # RFC 2136: REFUSED, the whole update (the TXT too), never half applied.
    message = dns.update.UpdateMessage(ZONE, keyring=KEY.keyring(), keyname=KEY.name)
    message.add("www", 60, "TXT", '"x"')
    message.replace("www", 60, "A", "192.0.2.99")
    response = dns.query.tcp(message, "127.0.0.1", port=server.dns_port, timeout=5)
    assert response.rcode() == dns.rcode.REFUSED
    message = dns.update.UpdateMessage(ZONE, keyring=KEY.keyring(), keyname=KEY.name)
    message.delete("www")
    response = dns.query.udp(message, "127.0.0.1", port=server.dns_port, timeout=5)
    assert response.rcode() == dns.rcode.REFUSED
    assert addresses(server, "www") == ["127.0.0.27"]
    assert addresses(server, "www", "TXT") == []
    assert server.soa_serial() == serial
    # Other names and the other type still update.
    assert update(server, "home", "192.0.2.7") == dns.rcode.NOERROR
    serial = server.soa_serial()
    # DynDNS2: nohost for the owned host, the other host of the request updates.
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    request = urllib.request.Request(
        f"{server.http_url}/nic/update?hostname=www.{ZONE},home.{ZONE}&myip=192.0.2.8",
        headers={"Authorization": f"Basic {token}", "User-Agent": "test/1.0"},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        lines = reply.read().decode().split()
    assert lines == ["nohost", "good", "192.0.2.8"]
    assert addresses(server, "www") == ["127.0.0.27"]
    assert addresses(server, "home") == ["192.0.2.8"]
    assert server.soa_serial() == serial + 1
    assert "Traceback" not in server.log_text()


def test_health_status_text_and_json(server_factory: ServerFactory, listeners: list[Any]) -> None:
    port = free_port_on("127.0.0.28", "127.0.0.29")
    listeners.append(TcpListener("127.0.0.28", port))
    server = start(server_factory, [failover("www", ["127.0.0.28", "127.0.0.29"], port)])
    wait_serving(server, "www", ["127.0.0.28"])
    wait_for(
        lambda: target_state(server, "www", "127.0.0.29") == "down",
        timeout=SWITCH,
        message="the status file",
    )
    row = status_rows(server)[0]
    assert row["name"] == f"www.{ZONE}" and row["type"] == "A" and row["policy"] == "first"
    assert row["served"] == ["127.0.0.28"] and row["checker_running"] is True
    up, down = row["targets"]
    assert up["state"] == "up" and up["last_probe"]["ok"] is True
    assert isinstance(up["last_probe"]["latency"], float)
    assert down["last_probe"]["ok"] is False and down["last_probe"]["error"]
    text = health_status(server)
    assert text.returncode == 0, text.stderr
    assert "server running" in text.stdout
    assert f"www.{ZONE} A: policy first" in text.stdout
    assert "served: 127.0.0.28" in text.stdout
    assert "127.0.0.29" in text.stdout and "down" in text.stdout
    server.stop()
    text = health_status(server)
    assert text.returncode == 0
    assert text.stdout.startswith("no running server")
    assert "served: 127.0.0.28" in text.stdout  # from the journal
    rows = json.loads(health_status(server, "--json").stdout)
    assert rows[0]["checker_running"] is False
    assert {t["state"] for t in rows[0]["targets"]} == {"unknown"}


@pytest.mark.parametrize("by_sighup", [False, True], ids=["at-start", "added-by-sighup"])
def test_https_check_without_verification_sends_host(
    server_factory: ServerFactory, listeners: list[Any], tmp_path: Path, by_sighup: bool
) -> None:
    """Added by SIGHUP, the check runs on a reactor imported without TLS (a
    server started without https listeners or checks): TLS comes then."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=target.invalid", "-keyout", str(key), "-out", str(cert),
        ]
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl: {made.stderr}")
    port = free_port_on("127.0.0.34", "127.0.0.35")
    primary = HttpTarget("127.0.0.34", port, tls=(cert, key))
    backup = HttpTarget("127.0.0.35", port, tls=(cert, key))
    listeners += [primary, backup]
    check = {"protocol": "https", "port": port, "host": "www.example.test", "expect_status": 204}
    entry = failover("www", ["127.0.0.34", "127.0.0.35"], port, check=check)
    server = start(server_factory, [] if by_sighup else [entry])
    if by_sighup:
        server.config["zones"][0]["failover"] = [entry]
        server.write_config()
        server.reload()
    # 200 is not the expected 204: both down, fail open.
    wait_serving(server, "www", ["127.0.0.34", "127.0.0.35"])
    with backup.lock:
        backup.status = 204
    wait_serving(server, "www", ["127.0.0.35"])
    assert backup.requests[0] == ("/", "www.example.test")


def test_reload_adds_removes_and_changes_checks_keeping_the_others(
    server_factory: ServerFactory, listeners: list[Any]
) -> None:
    port = free_port_on("127.0.0.36", "127.0.0.37")
    listeners += [TcpListener("127.0.0.36", port), TcpListener("127.0.0.37", port)]
    keep = failover("www", ["127.0.0.36"], port)
    server = start(
        server_factory,
        [keep, failover("api", ["127.0.0.37"], port), failover("old", ["127.0.0.37"], port)],
    )
    for name, address in (("www", "127.0.0.36"), ("api", "127.0.0.37"), ("old", "127.0.0.37")):
        wait_serving(server, name, [address])
    since = wait_for(
        lambda: next(
            (
                r["targets"][0].get("since")
                for r in status_rows(server)
                if r["name"].startswith("www")
            ),
            None,
        ),
        timeout=SWITCH,
        message="www's state in the status",
    )
    entries = server.config["zones"][0]
    entries["failover"] = [
        keep,
        failover("api", ["127.0.0.36", "127.0.0.37"], port, policy="all"),  # changed
        failover("new", ["127.0.0.36"], port),  # added; `old` removed
    ]
    server.write_config()
    server.reload()
    wait_serving(server, "new", ["127.0.0.36"])
    wait_serving(server, "api", ["127.0.0.36", "127.0.0.37"])
    rows = wait_for(
        lambda: (rows := status_rows(server)) and len(rows) == 3 and rows,
        timeout=SWITCH,
        message="the reloaded status",
    )
    assert [r["name"] for r in rows] == [f"www.{ZONE}", f"api.{ZONE}", f"new.{ZONE}"]
    www = rows[0]["targets"][0]
    assert www["state"] == "up" and www["since"] == since  # not restarted
    # `old` is no longer owned: its records are the zone's again (RFC 2136 may change them).
    assert update(server, "old", "192.0.2.5") == dns.rcode.NOERROR
    assert addresses(server, "old") == ["192.0.2.5"]
    assert update(server, "new", "192.0.2.5") == dns.rcode.REFUSED


def test_bind_secondary_follows_a_switch_by_ixfr(
    server_factory: ServerFactory, spawn: Spawn, listeners: list[Any], tmp_path: Path
) -> None:
    from harness import free_port, require_tool
    from test_secondary import XFR_KEY, Secondary, served_ixfr

    require_tool("named")
    port = free_port_on("127.0.0.38", "127.0.0.39")
    primary = TcpListener("127.0.0.38", port)
    listeners += [primary, TcpListener("127.0.0.39", port)]
    named_port = free_port("both")
    server = start(
        server_factory,
        [failover("www", ["127.0.0.38", "127.0.0.39"], port)],
        keys=[KEY.config(), XFR_KEY.config()],
        zone_extra={"notify": [f"127.0.0.1:{named_port}"]},
    )
    wait_serving(server, "www", ["127.0.0.38"])
    secondary = Secondary(spawn, tmp_path / "named", named_port, server.dns_port)
    secondary.wait_serial(server.soa_serial(), timeout=20)
    primary.stop()
    wait_serving(server, "www", ["127.0.0.39"])
    serial = server.soa_serial()
    secondary.wait_serial(serial)
    assert served_ixfr(server, serial)
    query = dns.message.make_query(f"www.{ZONE}", "A")
    answer = dns.query.udp(query, "127.0.0.1", port=named_port, timeout=2)
    assert [rr.to_text() for rrset in answer.answer for rr in rrset] == ["127.0.0.39"]
