"""`ddns-server client` against a running server, with check-IP sources on loopback.

The sources are small http.server threads the test starts on 127.0.0.1 and
[::1], each answering an address the test chooses. They serve documentation
addresses (198.51.100.0/24, 2001:db8::/32), which are not public, so the
configs here say `allow_private: true`, except the test that checks such
addresses are refused without it. The client only ever talks to loopback:
the sources, and the server (RFC 2136 on its DNS port, DynDNS2 on its HTTPS
port with the self-signed certificate pinned). Results are read with `dig`
and `journal log --json`; attempts are counted on the server's side.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import (
    EXAMPLE_ZONE_NAME,
    REPO_ROOT,
    BackgroundProcess,
    ServerProcess,
    TsigKey,
    dig,
    example_zone_text,
    http_get,
    run,
    wait_for,
)
from test_dyndns2_http import password_hash

ZONE = EXAMPLE_ZONE_NAME
HOME = f"home.{ZONE}"
OFFICE = f"office.{ZONE}"


# ---------------------------------------------------------------------------
# check-IP sources


class _Handler(BaseHTTPRequestHandler):
    server: IpSource

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.hits += 1
        body = self.server.body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class IpSource(ThreadingHTTPServer):
    """A check-IP URL on loopback answering `body` (set it to change the address)."""

    daemon_threads = True

    def __init__(self, host: str, body: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _Handler)
        self.body = body
        self.hits = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()
        self.host = host

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.server_address[1]}/"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def sources() -> Iterator[Callable[[str, str], IpSource]]:
    made: list[IpSource] = []

    def make(host: str, body: str) -> IpSource:
        source = IpSource(host, body)
        made.append(source)
        return source

    yield make
    for source in made:
        source.stop()


def down_url() -> str:
    """A URL nothing listens on (connection refused)."""
    from harness import free_port

    return f"http://127.0.0.1:{free_port('tcp')}/"


# ---------------------------------------------------------------------------
# the server and the client


@pytest.fixture
def key() -> TsigKey:
    return TsigKey.generate("home-key")


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess], key: TsigKey) -> ServerProcess:
    return server_factory(
        {ZONE: example_zone_text()},
        {
            "keys": [key.config()],
            "users": [
                {"name": "alice", "password_hash": password_hash("alice-secret"), "hosts": [HOME]}
            ],
        },
        zone_extra={
            ZONE: {
                "update_policy": [{"grant": "home-key", "match": "zonesub", "types": ["A", "AAAA"]}]
            }
        },
        https=True,
    )


def rfc2136(server: ServerProcess, key: TsigKey, **extra: Any) -> dict[str, Any]:
    return {
        "server": f"127.0.0.1:{server.dns_port}",
        "zone": ZONE,
        "key": key.name,
        "algorithm": key.algorithm,
        "secret": key.secret,
        **extra,
    }


def client_config(
    tmp_path: Path, name: str = "client.yaml", **settings: Any
) -> tuple[Path, dict[str, Any]]:
    config: dict[str, Any] = {
        "hostnames": [HOME],
        "allow_private": True,
        "timeout": 3,
        "retries": 3,
        "retry_delay": 0.05,
        "state_file": str(tmp_path / "client-state.json"),
        **settings,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, config


def run_client(path: Path, *args: str) -> tuple[int, str]:
    """`python -m ddns_server client -c PATH --once`: (exit status, stderr)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = run(
        [sys.executable, "-m", "ddns_server", "client", "-c", str(path), "--once", *args],
        env=env,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr


def versions(server: ServerProcess) -> list[dict[str, Any]]:
    proc = server.cli("journal", "log", ZONE, "--json")
    assert proc.returncode == 0, proc.stderr
    result: list[dict[str, Any]] = json.loads(proc.stdout)
    return result


def addresses(server: ServerProcess, name: str, rdtype: str) -> list[str]:
    result = dig(server, name, rdtype)
    assert result.status == "NOERROR", result.raw
    return sorted(result.rdata(rdtype))


def v4(source: IpSource | str) -> dict[str, str]:
    return {"checkip": source.url if isinstance(source, IpSource) else source}


# ---------------------------------------------------------------------------
# tests


def test_majority_and_the_state_file(
    server: ServerProcess, key: TsigKey, sources: Any, tmp_path: Path
) -> None:
    """Two sources of three agree: their address is sent, once per host; a second
    run sends nothing (the state file), though the sources were asked again."""
    a = sources("127.0.0.1", "198.51.100.7\n")
    b = sources("127.0.0.1", "<html>Current IP Address: 198.51.100.7</html>")
    c = sources("127.0.0.1", "198.51.100.99")
    path, _ = client_config(
        tmp_path,
        hostnames=[HOME, OFFICE],
        ipv4={"policy": "majority", "sources": [v4(a), v4(b), v4(c)]},
        rfc2136=rfc2136(server, key),
    )
    before = len(versions(server))
    status, log = run_client(path)
    assert status == 0, log
    assert "2 of 3 sources agree" in log
    assert addresses(server, HOME, "A") == ["198.51.100.7"]
    assert addresses(server, OFFICE, "A") == ["198.51.100.7"]
    new = versions(server)[: len(versions(server)) - before]
    assert len(new) == 2 and {v["channel"] for v in new} == {"rfc2136"}
    assert {v["who"] for v in new} == {"home-key"}
    serial = server.soa_serial()

    status, log = run_client(path)
    assert status == 0, log
    assert log.count("unchanged since the last update, nothing sent") == 2
    assert a.hits == b.hits == c.hits == 2
    assert len(versions(server)) == before + 2
    assert server.soa_serial() == serial


def test_no_majority_sends_nothing(
    server: ServerProcess, key: TsigKey, sources: Any, tmp_path: Path
) -> None:
    """A source that is down counts against every address: 1 of 3 is no majority."""
    a = sources("127.0.0.1", "198.51.100.7")
    b = sources("127.0.0.1", "198.51.100.8")
    path, _ = client_config(
        tmp_path,
        ipv4={"policy": "majority", "sources": [v4(a), v4(b), v4(down_url())]},
        rfc2136=rfc2136(server, key),
    )
    serial = server.soa_serial()
    status, log = run_client(path)
    assert status == 1
    assert "IPv4: not updating: no majority of 3 sources" in log
    assert "Connection refused" in log or "refused" in log.lower()
    assert addresses(server, HOME, "A") == ["192.0.2.100"]
    assert server.soa_serial() == serial


def test_first_answer_skips_a_source_that_is_down(
    server: ServerProcess, key: TsigKey, sources: Any, tmp_path: Path
) -> None:
    """`first`: the first listed source that answers wins (here the second; the
    first is down), and the server's own /nic/checkip form is understood."""
    b = sources("127.0.0.1", "198.51.100.8")
    c = sources("127.0.0.1", "198.51.100.9")
    path, _ = client_config(
        tmp_path,
        ipv4={"policy": "first", "sources": [v4(down_url()), v4(b), v4(c)]},
        rfc2136=rfc2136(server, key),
    )
    status, log = run_client(path)
    assert status == 0, log
    assert f"first answer, from checkip {b.url}" in log
    assert addresses(server, HOME, "A") == ["198.51.100.8"]

    # the server's /nic/checkip answers "Current IP Address: 127.0.0.1" (loopback)
    path, _ = client_config(
        tmp_path,
        "checkip.yaml",
        ipv4={"sources": [{"checkip": f"{server.http_url}/nic/checkip"}]},
        rfc2136=rfc2136(server, key),
    )
    status, log = run_client(path)
    assert status == 0, log
    assert addresses(server, HOME, "A") == ["127.0.0.1"]


def test_v6_only_change(server: ServerProcess, key: TsigKey, sources: Any, tmp_path: Path) -> None:
    """v4 and v6 are independent: a new IPv6 address changes only the AAAA RRset."""
    a4 = sources("127.0.0.1", "198.51.100.7")
    a6 = sources("::1", "2001:db8::1")
    path, _ = client_config(
        tmp_path,
        ipv4={"sources": [v4(a4)]},
        ipv6={"sources": [{"checkip": a6.url}]},
        rfc2136=rfc2136(server, key),
    )
    status, log = run_client(path)
    assert status == 0, log
    assert addresses(server, HOME, "A") == ["198.51.100.7"]
    assert addresses(server, HOME, "AAAA") == ["2001:db8::1"]
    count = len(versions(server))

    a6.body = "2001:db8::2"
    status, log = run_client(path)
    assert status == 0, log
    assert f"{HOME} A: 198.51.100.7 unchanged" in log
    assert f"{HOME} AAAA: 2001:db8::1 -> 2001:db8::2, updating by rfc2136" in log
    assert addresses(server, HOME, "AAAA") == ["2001:db8::2"]
    assert addresses(server, HOME, "A") == ["198.51.100.7"]
    new = versions(server)
    assert len(new) == count + 1
    diff = server.cli("journal", "diff", ZONE, str(new[0]["serial"]))
    assert diff.returncode == 0, diff.stderr
    changed = [
        line for line in diff.stdout.splitlines() if line[:1] in "+-" and " SOA " not in line
    ]
    assert changed and all("AAAA" in line for line in changed), diff.stdout


def test_private_and_loopback_addresses_are_not_sent(
    server: ServerProcess, key: TsigKey, sources: Any, tmp_path: Path
) -> None:
    """Without allow_private, loopback/private/documentation answers are refused."""
    a = sources("127.0.0.1", "10.1.2.3")
    b = sources("127.0.0.1", "198.51.100.7")
    path, _ = client_config(
        tmp_path,
        allow_private=False,
        ipv4={"policy": "first", "sources": [v4(a), v4(b), {"route": "127.0.0.1"}]},
        rfc2136=rfc2136(server, key),
    )
    serial = server.soa_serial()
    status, log = run_client(path)
    assert status == 1
    assert "10.1.2.3 is a private or reserved address" in log
    assert "127.0.0.1 is a loopback address" in log
    assert "set allow_private: true" in log
    assert server.soa_serial() == serial
    assert addresses(server, HOME, "A") == ["192.0.2.100"]


def test_interface_and_route_sources(server: ServerProcess, key: TsigKey, tmp_path: Path) -> None:
    """The loopback interface's address, and the route's source towards ::1."""
    path, _ = client_config(
        tmp_path,
        ipv4={"policy": "majority", "sources": [{"interface": "lo"}, {"route": "127.0.0.1"}]},
        ipv6={"sources": [{"route": "::1"}]},
        rfc2136=rfc2136(server, key),
    )
    status, log = run_client(path)
    assert status == 0, log
    assert addresses(server, HOME, "A") == ["127.0.0.1"]
    assert addresses(server, HOME, "AAAA") == ["::1"]


def tsig_failures(server: ServerProcess, word: str, key: str = "home-key") -> int:
    """How many requests the server refused with this TSIG error (its log says each)."""
    return server.log_text().count(f"TSIG key {key}: {word}")


def test_wrong_tsig_key_is_permanent(
    server: ServerProcess, key: TsigKey, sources: Any, tmp_path: Path
) -> None:
    """A wrong secret: BADSIG, one attempt (no retries), exit 1; the next run does
    not even try; fixing the key in the config makes it try (and succeed)."""
    a = sources("127.0.0.1", "198.51.100.7")
    wrong = TsigKey.generate("home-key")
    path, config = client_config(
        tmp_path, ipv4={"sources": [v4(a)]}, rfc2136=rfc2136(server, wrong)
    )
    serial = server.soa_serial()
    status, log = run_client(path)
    assert status == 1
    assert "BADSIG (wrong secret)" in log
    assert "update failed permanently" in log and "retry" not in log.replace("no retry", "")
    wait_for(lambda: tsig_failures(server, "BADSIG") >= 1, message="the server's BADSIG line")

    status, log = run_client(path)
    assert status == 1
    assert "an earlier update failed permanently" in log
    assert tsig_failures(server, "BADSIG") == 1
    assert server.soa_serial() == serial

    config["rfc2136"] = rfc2136(server, key)
    path.write_text(yaml.safe_dump(config))
    status, log = run_client(path)
    assert status == 0, log
    assert addresses(server, HOME, "A") == ["198.51.100.7"]
    assert tsig_failures(server, "BADSIG") == 1


def test_unknown_key_name_is_permanent(server: ServerProcess, sources: Any, tmp_path: Path) -> None:
    a = sources("127.0.0.1", "198.51.100.7")
    other = TsigKey.generate("nobody-key")
    path, _ = client_config(tmp_path, ipv4={"sources": [v4(a)]}, rfc2136=rfc2136(server, other))
    status, log = run_client(path)
    assert status == 1
    assert "BADKEY (the server does not know this key name/algorithm)" in log
    assert "retry 1" not in log
    wait_for(lambda: tsig_failures(server, "BADKEY", "nobody-key") >= 1, message="BADKEY line")
    status, log = run_client(path)
    assert status == 1 and "an earlier update failed permanently" in log
    assert tsig_failures(server, "BADKEY", "nobody-key") == 1


def test_key_file_from_keygen(
    server: ServerProcess, key: TsigKey, sources: Any, tmp_path: Path
) -> None:
    """secret_file takes the clause `ddns-server keygen` (and tsig-keygen) prints."""
    a = sources("127.0.0.1", "198.51.100.70")
    key_file = key.write(tmp_path / "keys" / "home.key")
    settings = {"server": f"127.0.0.1:{server.dns_port}", "secret_file": "keys/home.key"}
    path, _ = client_config(tmp_path, ipv4={"sources": [v4(a)]}, rfc2136=settings)
    assert key_file.exists()
    status, log = run_client(path)
    assert status == 0, log
    assert addresses(server, HOME, "A") == ["198.51.100.70"]


def dyndns2_settings(server: ServerProcess, password: str = "alice-secret", **extra: Any) -> Any:
    return {
        "url": f"{server.https_url}/nic/update",
        "username": "alice",
        "password": password,
        "ca_file": str(server.data_dir / "tls" / "cert.pem"),
        **extra,
    }


def test_dyndns2_over_https_with_a_pinned_certificate(
    server: ServerProcess, sources: Any, tmp_path: Path
) -> None:
    a4 = sources("127.0.0.1", "198.51.100.7")
    a6 = sources("::1", "2001:db8::7")
    path, _ = client_config(
        tmp_path,
        ipv4={"sources": [v4(a4)]},
        ipv6={"sources": [{"checkip": a6.url}]},
        dyndns2=dyndns2_settings(server),
    )
    status, log = run_client(path)
    assert status == 0, log
    assert f"{HOME} A: updated to 198.51.100.7 (good 198.51.100.7)" in log
    assert addresses(server, HOME, "A") == ["198.51.100.7"]
    assert addresses(server, HOME, "AAAA") == ["2001:db8::7"]
    new = versions(server)[:2]
    assert {v["channel"] for v in new} == {"dyndns2"} and {v["who"] for v in new} == {"alice"}

    # v6 changes alone: myipv6 only, the A record stays
    a6.body = "2001:db8::8"
    status, log = run_client(path)
    assert status == 0, log
    assert addresses(server, HOME, "AAAA") == ["2001:db8::8"]
    assert addresses(server, HOME, "A") == ["198.51.100.7"]


def test_dyndns2_without_the_pinned_ca_refuses_the_certificate(
    server: ServerProcess, sources: Any, tmp_path: Path
) -> None:
    a = sources("127.0.0.1", "198.51.100.7")
    settings = dyndns2_settings(server)
    del settings["ca_file"]
    path, _ = client_config(tmp_path, ipv4={"sources": [v4(a)]}, dyndns2=settings)
    serial = server.soa_serial()
    status, log = run_client(path)
    assert status == 1
    assert "certificate not trusted" in log and "ca_file" in log
    assert server.soa_serial() == serial


def dyndns_code(server: ServerProcess, code: str) -> float:
    from test_answers import metric

    status, text = http_get(f"{server.http_url}/metrics")
    assert status == 200
    return metric(text, "ddns_dyndns2_requests_total", code=code) or 0.0


def test_dyndns2_wrong_password_is_permanent(
    server: ServerProcess, sources: Any, tmp_path: Path
) -> None:
    a = sources("127.0.0.1", "198.51.100.7")
    path, config = client_config(
        tmp_path, ipv4={"sources": [v4(a)]}, dyndns2=dyndns2_settings(server, "wrong")
    )
    serial = server.soa_serial()
    status, log = run_client(path)
    assert status == 1
    assert "badauth: bad user name or password (user alice)" in log
    assert dyndns_code(server, "badauth") == 1
    for _ in range(2):
        status, log = run_client(path)
        assert status == 1 and "an earlier update failed permanently" in log
    assert dyndns_code(server, "badauth") == 1
    assert server.soa_serial() == serial

    config["dyndns2"] = dyndns2_settings(server)
    path.write_text(yaml.safe_dump(config))
    status, log = run_client(path)
    assert status == 0, log
    assert addresses(server, HOME, "A") == ["198.51.100.7"]


def test_loop_follows_a_change_and_stops_on_sigterm(
    server: ServerProcess, key: TsigKey, sources: Any, spawn: Any, tmp_path: Path
) -> None:
    a = sources("127.0.0.1", "198.51.100.7")
    path, _ = client_config(
        tmp_path, interval=1, ipv4={"sources": [v4(a)]}, rfc2136=rfc2136(server, key)
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc: BackgroundProcess = spawn(
        [sys.executable, "-m", "ddns_server", "client", "-c", str(path)], "client", env=env
    )
    wait_for(lambda: addresses(server, HOME, "A") == ["198.51.100.7"], 20, message="first update")
    a.body = "198.51.100.8"
    wait_for(lambda: addresses(server, HOME, "A") == ["198.51.100.8"], 20, message="the change")
    proc.signal(signal.SIGTERM)
    wait_for(lambda: not proc.running(), 10, message="the client to stop")
    assert proc.returncode == 0
    assert "client stopped" in proc.log_text()
    assert "Traceback" not in proc.log_text()


def test_bad_config_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "client.yaml"
    path.write_text(
        "hostnames: [home.dyn.example.test]\nipv4:\n  sources: [{checkip: x}]\nbogus: 1\n"
    )
    status, log = run_client(path)
    assert status == 1
    assert f"{path}:4: bogus: unknown key" in log
    assert f"{path}:3: ipv4.sources[0].checkip: 'x' is not an http:// or https:// URL" in log
    assert "exactly one of rfc2136, dyndns2 is required" in log


def test_a_server_that_is_down_is_retried_with_backoff(
    server: ServerProcess, key: TsigKey, sources: Any, tmp_path: Path
) -> None:
    """Temporary failures are retried (`retries` times, the delay doubling), then the
    pass fails (exit 1) and remembers nothing, so the next pass sends again."""
    a = sources("127.0.0.1", "198.51.100.7")
    path, _ = client_config(
        tmp_path,
        timeout=0.5,
        retries=2,
        retry_delay=0.1,
        ipv4={"sources": [v4(a)]},
        rfc2136=rfc2136(server, key),
    )
    server.stop()
    status, log = run_client(path)
    assert status == 1
    where = f"127.0.0.1#{server.dns_port}"
    assert f"{HOME} A: update failed (no answer from {where}); retry 1 of 2 in 0.1 s" in log
    assert "retry 2 of 2 in 0.2 s" in log
    assert "update failed after 3 attempt(s)" in log
    server.start()
    status, log = run_client(path)
    assert status == 0, log
    assert addresses(server, HOME, "A") == ["198.51.100.7"]


def test_loop_with_a_wrong_password_tries_once(
    server: ServerProcess, sources: Any, spawn: Any, tmp_path: Path
) -> None:
    """In the loop too: one `badauth`, then passes that do not contact the server,
    until the config is fixed (read again before every pass)."""
    a = sources("127.0.0.1", "198.51.100.7")
    path, config = client_config(
        tmp_path, interval=1, ipv4={"sources": [v4(a)]}, dyndns2=dyndns2_settings(server, "wrong")
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc: BackgroundProcess = spawn(
        [sys.executable, "-m", "ddns_server", "client", "-c", str(path)], "client", env=env
    )
    wait_for(
        lambda: proc.log_text().count("an earlier update failed permanently") >= 3,
        20,
        message="three blocked passes",
    )
    assert dyndns_code(server, "badauth") == 1
    config["dyndns2"] = dyndns2_settings(server)
    path.write_text(yaml.safe_dump(config))
    wait_for(lambda: addresses(server, HOME, "A") == ["198.51.100.7"], 20, message="the update")
    assert dyndns_code(server, "badauth") == 1
    proc.stop()
