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
    assert "127.0.0.21 down" in versions[0]["source"]  # journal log: the reason
    assert "failover www A: now serving 127.0.0.22" in server.log_text()

    primary.start()
    wait_serving(server, "www", ["127.0.0.21"])
    versions = health_versions(server)
    assert len(versions) == 3
    assert "127.0.0.21 up" in versions[0]["source"]
    # The AAAA of www is not the checker's and stays.
    assert addresses(server, "www", "AAAA") == ["2001:db8::10"]
