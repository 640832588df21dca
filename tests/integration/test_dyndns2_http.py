"""The DynDNS2 endpoint over HTTP and HTTPS, driven by the real `curl`.

Every reply word is produced here; after each accepted update `dig` sees the
new address and `journal log --json` names the user, the source address and
channel dyndns2; after each refused request the zone's content and serial are
unchanged. The helpers at the top are shared with test_ddclient.py and
test_inadyn.py.
"""

from __future__ import annotations

import datetime
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import (
    EXAMPLE_ZONE_NAME,
    ServerProcess,
    dig,
    example_zone_text,
    free_port,
    require_tool,
    run,
    wait_for,
)

ZONE = EXAMPLE_ZONE_NAME  # dyn.example.test; home has A 192.0.2.100 and a TXT record
HOME = f"home.{ZONE}"
OFFICE = f"office.{ZONE}"
BOB_HOST = f"bob.{ZONE}"
CAROL_HOST = f"carol.{ZONE}"
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}

# ---------------------------------------------------------------------------
# helpers (also used by test_ddclient.py and test_inadyn.py)

_hashes: dict[str, str] = {}


def password_hash(password: str) -> str:
    """A hash made by the real `ddns-server passwd --password-stdin` (cached per run)."""
    if password not in _hashes:
        proc = run(
            [sys.executable, "-m", "ddns_server", "passwd", "--password-stdin"],
            input=password + "\n",
        )
        assert proc.returncode == 0, proc.stderr
        _hashes[password] = proc.stdout.strip()
    return _hashes[password]


def users_config(hosts: dict[str, Sequence[str]]) -> list[dict[str, Any]]:
    return [
        {"name": name, "password_hash": password_hash(PASSWORDS[name]), "hosts": list(names)}
        for name, names in hosts.items()
    ]


def start_dyndns_server(
    server_factory: Callable[..., ServerProcess],
    extra: dict[str, Any] | None = None,
    *,
    hosts: dict[str, Sequence[str]] | None = None,
    ipv6_http: bool = False,
) -> tuple[ServerProcess, dict[str, str]]:
    """A server for the example zone with DynDNS2 users, HTTP (and HTTPS) listeners.

    Returns the server and its base URLs: "http" (127.0.0.1, a trusted proxy
    address), "https", and with `ipv6_http` "http6" ([::1], not trusted).
    """
    http4 = free_port("tcp")
    urls = {"http": f"http://127.0.0.1:{http4}"}
    listen = [f"127.0.0.1:{http4}"]
    if ipv6_http:
        http6 = free_port("tcp", "::1")
        listen.append(f"[::1]:{http6}")
        urls["http6"] = f"http://[::1]:{http6}"
    config: dict[str, Any] = {
        "listen": {"http": listen},
        "trusted_proxies": ["127.0.0.1/32"],
        "users": users_config(hosts or {"alice": [HOME, OFFICE], "bob": [BOB_HOST]}),
    }
    for key, value in (extra or {}).items():
        config[key] = value
    server = server_factory(
        {ZONE: example_zone_text()},
        config,
        zone_extra={ZONE: {"allow_transfer": ["127.0.0.0/8"]}},
        https=True,
    )
    urls["https"] = server.https_url
    return server, urls


def self_signed_cert(server: ServerProcess) -> Path:
    return server.data_dir / "tls" / "cert.pem"


@dataclass
class Reply:
    """One HTTP reply as curl saw it (or curl's error, with status 0)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: str = ""
    returncode: int = 0
    stderr: str = ""

    @property
    def lines(self) -> list[str]:
        return self.body.splitlines()


def curl(url: str, *args: str, timeout: float = 20) -> Reply:
    """The real curl: `curl -sS -i ARGS URL`, parsed into status, headers, body."""
    proc = run(
        [require_tool("curl"), "-sS", "-i", "--max-time", str(int(timeout)), *args, url],
        timeout=timeout + 10,
    )
    if proc.returncode != 0:
        return Reply(0, returncode=proc.returncode, stderr=proc.stderr)
    return parse_http(proc.stdout)


def parse_http(text: str) -> Reply:
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body)


def update(
    base: str,
    query: str,
    *args: str,
    user: str | None = "alice",
    password: str | None = None,
    path: str = "/nic/update",
) -> Reply:
    """GET base+path?query with Basic auth (curl -u), curl's own User-Agent."""
    auth: list[str] = []
    if user is not None:
        auth = ["-u", f"{user}:{PASSWORDS.get(user, 'x') if password is None else password}"]
    return curl(f"{base}{path}?{query}", *auth, *args)


def addresses(server: ServerProcess, name: str, rdtype: str) -> list[str]:
    """What the real `dig` answers for name/rdtype."""
    result = dig(server, name, rdtype)
    assert result.status == "NOERROR", result.raw
    return sorted(result.rdata(rdtype))


def zone_state(server: ServerProcess) -> tuple[int, list[tuple[str, int, str, str, str]]]:
    """The zone's serial and whole content (AXFR with dig): what a refusal must not change."""
    result = dig(server, "AXFR", ZONE)
    assert result.answer, result.raw
    return server.soa_serial(), sorted(result.answer)


def journal_head(server: ServerProcess) -> dict[str, Any]:
    """The newest version, from the real `ddns-server journal log ZONE --json`."""
    proc = server.cli("journal", "log", ZONE, "--json", "--limit", "1")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[0]  # type: ignore[no-any-return]


def assert_accepted(
    server: ServerProcess,
    host: str,
    expect: dict[str, list[str]],
    user: str,
    source: str,
) -> None:
    """dig sees the new addresses at once; the journal names user, source and channel."""
    for rdtype, values in expect.items():
        assert addresses(server, host, rdtype) == sorted(values)
    head = journal_head(server)
    assert (head["who"], head["source"], head["channel"]) == (user, source, "dyndns2")
    assert head["serial"] == server.soa_serial()


class Unchanged:
    """`with Unchanged(server): ...` asserts the zone's serial and content stay as they were."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def __enter__(self) -> Unchanged:
        self.before = zone_state(self.server)
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            assert zone_state(self.server) == self.before


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture
def served(server_factory: Callable[..., ServerProcess]) -> tuple[ServerProcess, dict[str, str]]:
    require_tool("curl")
    require_tool("dig")
    return start_dyndns_server(server_factory, ipv6_http=True)


# ---------------------------------------------------------------------------
# accepted updates


def test_good_then_nochg_ipv4(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    reply = update(urls["http"], f"hostname={HOME}&myip=198.51.100.7")
    assert (reply.status, reply.lines) == (200, ["good 198.51.100.7"])
    assert reply.headers["content-type"].startswith("text/plain")
    assert "strict-transport-security" not in reply.headers  # plain HTTP: no HSTS
    assert_accepted(server, HOME, {"A": ["198.51.100.7"], "AAAA": []}, "alice", "127.0.0.1")
    with Unchanged(server):
        reply = update(urls["http"], f"hostname={HOME}&myip=198.51.100.7")
        assert reply.lines == ["nochg 198.51.100.7"]
    # one log line per update: user, host, old and new address
    wait_for(
        lambda: re.search(
            rf"alice from 127\.0\.0\.1: {re.escape(HOME)} A 192\.0\.2\.100 -> 198\.51\.100\.7",
            server.log_text(),
        ),
        message="the update's log line",
    )


def test_ipv6_and_families_stay_independent(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    reply = update(urls["http"], f"hostname={HOME}&myip=2001:db8::7")
    assert reply.lines == ["good 2001:db8::7"]
    # AAAA set, the A record untouched
    assert_accepted(
        server, HOME, {"A": ["192.0.2.100"], "AAAA": ["2001:db8::7"]}, "alice", "127.0.0.1"
    )
    reply = update(urls["http"], f"hostname={HOME}&myip=198.51.100.8")
    assert reply.lines == ["good 198.51.100.8"]
    assert_accepted(
        server, HOME, {"A": ["198.51.100.8"], "AAAA": ["2001:db8::7"]}, "alice", "127.0.0.1"
    )
    # without myip, over IPv6: the client's own address, AAAA only
    reply = update(urls["http6"], f"hostname={HOME}")
    assert reply.lines == ["good ::1"]
    assert_accepted(server, HOME, {"A": ["198.51.100.8"], "AAAA": ["::1"]}, "alice", "::1")


def test_address_pair_and_myipv6(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    reply = update(urls["http"], f"hostname={HOME}&myip=198.51.100.9,2001:db8::9")
    assert reply.lines == ["good 198.51.100.9,2001:db8::9"]
    assert_accepted(
        server, HOME, {"A": ["198.51.100.9"], "AAAA": ["2001:db8::9"]}, "alice", "127.0.0.1"
    )
    reply = update(
        urls["https"],
        f"hostname={OFFICE}&myip=198.51.100.10&myipv6=2001:db8::10",
        "--cacert",
        str(self_signed_cert(server)),
    )
    assert reply.lines == ["good 198.51.100.10,2001:db8::10"]
    assert_accepted(
        server, OFFICE, {"A": ["198.51.100.10"], "AAAA": ["2001:db8::10"]}, "alice", "127.0.0.1"
    )
    with Unchanged(server):
        reply = update(urls["http"], f"hostname={HOME}&myip=198.51.100.9,2001:db8::9")
        assert reply.lines == ["nochg 198.51.100.9,2001:db8::9"]


def test_several_hosts_one_line_each(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    reply = update(urls["http"], f"hostname={HOME},{BOB_HOST},office,{OFFICE}&myip=198.51.100.11")
    assert reply.lines == ["good 198.51.100.11", "nohost", "notfqdn", "good 198.51.100.11"]
    assert_accepted(server, HOME, {"A": ["198.51.100.11"]}, "alice", "127.0.0.1")
    assert_accepted(server, OFFICE, {"A": ["198.51.100.11"]}, "alice", "127.0.0.1")
    assert dig(server, BOB_HOST, "A").status == "NXDOMAIN"  # bob's host was not created


def test_aliases(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    for n, path in enumerate(["/v3/update", "/update", "/nic/update"]):
        ip = f"198.51.100.{20 + n}"
        reply = update(urls["http"], f"hostname={HOME}&myip={ip}", path=path)
        assert reply.lines == [f"good {ip}"], path
        assert_accepted(server, HOME, {"A": [ip]}, "alice", "127.0.0.1")


def test_post_form(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    reply = curl(
        f"{urls['http']}/nic/update",
        "-u",
        "alice:alice-secret",
        "--data",
        f"hostname={HOME}&myip=198.51.100.30",
    )
    assert reply.lines == ["good 198.51.100.30"]
    assert_accepted(server, HOME, {"A": ["198.51.100.30"]}, "alice", "127.0.0.1")


# ---------------------------------------------------------------------------
# the client's address and trusted proxies


def test_forwarded_for_from_a_trusted_proxy(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    # 127.0.0.1 is a trusted proxy: the rightmost untrusted X-Forwarded-For entry is the client
    reply = update(
        urls["http"],
        f"hostname={HOME}",
        "-H",
        "X-Forwarded-For: 203.0.113.66, 198.51.100.40",
    )
    assert reply.lines == ["good 198.51.100.40"]
    assert_accepted(server, HOME, {"A": ["198.51.100.40"]}, "alice", "198.51.100.40")
    reply = curl(f"{urls['http']}/nic/checkip", "-H", "X-Forwarded-For: 198.51.100.41")
    assert reply.body == "Current IP Address: 198.51.100.41\n"


def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    served: tuple[ServerProcess, dict[str, str]],
) -> None:
    server, urls = served
    reply = update(
        urls["http6"],
        f"hostname={HOME}",
        "-H",
        "X-Forwarded-For: 198.51.100.42",
    )
    assert reply.lines == ["good ::1"]  # [::1] is not in trusted_proxies
    assert_accepted(server, HOME, {"A": ["192.0.2.100"], "AAAA": ["::1"]}, "alice", "::1")
    reply = curl(f"{urls['http6']}/nic/checkip", "-H", "X-Forwarded-For: 198.51.100.42")
    assert reply.body == "Current IP Address: ::1\n"


def test_checkip(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    reply = curl(f"{urls['http']}/nic/checkip")
    assert (reply.status, reply.body) == (200, "Current IP Address: 127.0.0.1\n")
    reply = curl(f"{urls['https']}/nic/checkip", "--cacert", str(self_signed_cert(server)))
    assert (reply.status, reply.body) == (200, "Current IP Address: 127.0.0.1\n")
    assert reply.headers["strict-transport-security"] == "max-age=31536000"


# ---------------------------------------------------------------------------
# refusals: each answer, and the zone unchanged


def test_missing_credentials_get_a_challenge(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    with Unchanged(server):
        reply = update(urls["http"], f"hostname={HOME}&myip=198.51.100.50", user=None)
        assert (reply.status, reply.body) == (401, "badauth\n")
        assert reply.headers["www-authenticate"] == 'Basic realm="ddns-server"'
        # the challenge is answered by clients that wait for it (curl --anyauth, wget)
        proc = run(
            [
                require_tool("curl"),
                "-sS",
                "--anyauth",
                "-u",
                "alice:wrong",
                "-w",
                "%{http_code}",
                f"{urls['http']}/nic/update?hostname={HOME}&myip=198.51.100.7",
            ]
        )
        assert proc.stdout == "badauth\n200", proc.stderr


def test_bad_password_and_unknown_user(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    with Unchanged(server):
        assert update(
            urls["http"], f"hostname={HOME}&myip=198.51.100.51", user="alice", password="nope"
        ).lines == ["badauth"]
        assert update(
            urls["http"], f"hostname={HOME}&myip=198.51.100.51", user="mallory"
        ).lines == ["badauth"]


def test_badagent(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    with Unchanged(server):
        reply = update(
            urls["http"],
            f"hostname={HOME}&myip=198.51.100.52",
            "-H",
            "User-Agent:",
        )
        assert (reply.status, reply.lines) == (200, ["badagent"])


def test_another_users_host_is_nohost(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    with Unchanged(server):
        assert update(urls["http"], f"hostname={BOB_HOST}&myip=198.51.100.53").lines == ["nohost"]
        assert update(urls["http"], f"hostname=www.{ZONE}&myip=198.51.100.53").lines == ["nohost"]
        assert update(urls["http"], f"hostname={HOME}&myip=198.51.100.53", user="bob").lines == [
            "nohost"
        ]


def test_notfqdn_and_numhost(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    with Unchanged(server):
        assert update(urls["http"], "myip=198.51.100.54").lines == ["notfqdn"]
        assert update(urls["http"], "hostname=home&myip=198.51.100.54").lines == ["notfqdn"]
        many = ",".join([HOME] * 21)
        assert update(urls["http"], f"hostname={many}&myip=198.51.100.54").lines == ["numhost"]


def test_dnserr_when_the_journal_is_locked(served: tuple[ServerProcess, dict[str, str]]) -> None:
    """Another writer holds the SQLite journal: the commit fails (after SQLite's
    5 s busy timeout), the client gets dnserr and the zone stays as it was."""
    server, urls = served
    with Unchanged(server):
        lock = sqlite3.connect(server.data_dir / "journal.sqlite3", isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            reply = update(urls["http"], f"hostname={HOME},{BOB_HOST}&myip=198.51.100.55")
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert reply.lines == ["dnserr", "nohost"]
    reply = update(urls["http"], f"hostname={HOME}&myip=198.51.100.55")
    assert reply.lines == ["good 198.51.100.55"]
    assert_accepted(server, HOME, {"A": ["198.51.100.55"]}, "alice", "127.0.0.1")


def test_https_with_the_self_signed_certificate(
    served: tuple[ServerProcess, dict[str, str]],
) -> None:
    server, urls = served
    cert = self_signed_cert(server)
    assert cert.is_file()
    assert (server.data_dir / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    reply = update(
        urls["https"],
        f"hostname={HOME}&myip=198.51.100.60",
        "--cacert",
        str(cert),
    )
    assert reply.lines == ["good 198.51.100.60"]
    assert reply.headers["strict-transport-security"] == "max-age=31536000"
    assert_accepted(server, HOME, {"A": ["198.51.100.60"]}, "alice", "127.0.0.1")
    # the name is checked too: localhost is in the certificate
    port = urls["https"].rsplit(":", 1)[1]
    reply = curl(
        f"https://localhost:{port}/nic/checkip",
        "--cacert",
        str(cert),
        "--resolve",
        f"localhost:{port}:127.0.0.1",
    )
    assert reply.status == 200
    # not trusted without the certificate
    with Unchanged(server):
        reply = update(urls["https"], f"hostname={HOME}&myip=198.51.100.61")
        assert (reply.status, reply.returncode) == (0, 60), reply  # peer failed verification
        # TLS 1.1 and older: the server answers with a protocol_version alert (curl is
        # allowed to offer them with SECLEVEL=0, so the refusal is the server's)
        reply = update(
            urls["https"],
            f"hostname={HOME}&myip=198.51.100.61",
            "--cacert",
            str(cert),
            "--tlsv1.0",
            "--tls-max",
            "1.1",
            "--ciphers",
            "DEFAULT@SECLEVEL=0",
        )
        assert reply.returncode == 35 and "protocol version" in reply.stderr, reply
    for version in ("1.2", "1.3"):
        reply = curl(
            urls["https"] + "/nic/checkip",
            "--cacert",
            str(cert),
            f"--tlsv{version}",
            "--tls-max",
            version,
        )
        assert reply.status == 200, (version, reply)


def test_metrics_count_replies(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, urls = served
    update(urls["http"], f"hostname={HOME}&myip=198.51.100.70")
    update(urls["http"], f"hostname={HOME}&myip=198.51.100.70")
    update(urls["http"], f"hostname={HOME}", user=None)
    text = curl(f"{urls['http']}/metrics").body
    counts = dict(
        re.findall(r'^ddns_dyndns2_requests_total\{code="(\w+)"\} ([0-9.]+)$', text, re.M)
    )
    assert float(counts["good"]) >= 1 and float(counts["nochg"]) >= 1
    assert float(counts["badauth"]) >= 1


# ---------------------------------------------------------------------------
# abuse protection (its own server: the limits are lowered)


def test_rate_limits(server_factory: Callable[..., ServerProcess]) -> None:
    require_tool("curl")
    server, urls = start_dyndns_server(
        server_factory,
        {
            "dyndns": {
                "max_failed_logins": 3,
                "failed_login_window": 600,
                "max_updates_per_minute": 4,
            }
        },
        hosts={"alice": [HOME], "bob": [BOB_HOST], "carol": [CAROL_HOST]},
    )
    http = urls["http"]

    def source(ip: str) -> tuple[str, str]:
        # 127.0.0.1 is a trusted proxy, so each request can come "from" its own address
        return ("-H", f"X-Forwarded-For: {ip}")

    with Unchanged(server):
        # wrong passwords for alice from three other addresses ...
        for i in range(3):
            reply = update(
                http,
                f"hostname={HOME}&myip=198.51.100.80",
                *source(f"203.0.113.{i + 1}"),
                user="alice",
                password="wrong",
            )
            assert reply.lines == ["badauth"]
        # ... and three more from one: that address is locked for alice
        for _ in range(3):
            reply = update(
                http, f"hostname={HOME}", *source("203.0.113.4"), user="alice", password="wrong"
            )
            assert reply.lines == ["badauth"]
        reply = update(http, f"hostname={HOME}&myip=198.51.100.80", *source("203.0.113.4"))
        assert reply.lines == ["abuse"]
    # ... but never alice's own address (issue 14 item 12: per user and source, not per user)
    reply = update(http, f"hostname={HOME}&myip=198.51.100.80", *source("203.0.113.9"))
    assert reply.lines == ["good 198.51.100.80"]
    # ... while other users are served normally
    reply = update(
        http,
        f"hostname={BOB_HOST}&myip=198.51.100.81",
        *source("203.0.113.9"),
        user="bob",
    )
    assert reply.lines == ["good 198.51.100.81"]
    assert_accepted(server, BOB_HOST, {"A": ["198.51.100.81"]}, "bob", "203.0.113.9")
    with Unchanged(server):
        # per source: three failures (any user names) from one address lock that address
        for name in ("x1", "x2", "x3"):
            assert update(
                http, f"hostname={HOME}", *source("203.0.113.50"), user=name, password="wrong"
            ).lines == ["badauth"]
        # carol logs in for the first time from there: refused before her password is checked
        reply = update(
            http, f"hostname={CAROL_HOST}&myip=198.51.100.82", *source("203.0.113.50"), user="carol"
        )
        assert reply.lines == ["abuse"]
    # from another address carol is fine
    reply = update(
        http, f"hostname={CAROL_HOST}&myip=198.51.100.82", *source("203.0.113.51"), user="carol"
    )
    assert reply.lines == ["good 198.51.100.82"]
    assert_accepted(server, CAROL_HOST, {"A": ["198.51.100.82"]}, "carol", "203.0.113.51")
    # a flood from one user: four requests a minute pass, the fifth is abuse
    replies = [
        update(
            http,
            f"hostname={BOB_HOST}&myip=198.51.100.81",
            *source("203.0.113.60"),
            user="bob",
        )
        for _ in range(3)  # bob has one request in this minute already
    ]
    assert [r.lines for r in replies] == [["nochg 198.51.100.81"]] * 3
    with Unchanged(server):
        reply = update(
            http,
            f"hostname={BOB_HOST}&myip=198.51.100.83",
            *source("203.0.113.60"),
            user="bob",
        )
        assert reply.lines == ["abuse"]


def test_911_when_too_many_logins_wait(server_factory: Callable[..., ServerProcess]) -> None:
    """Password checks (scrypt) run in threads, a few at a time; past
    dyndns.max_pending_logins waiting, a login is answered 911 at once."""
    require_tool("curl")
    server, urls = start_dyndns_server(server_factory, {"dyndns": {"max_pending_logins": 1}})
    url = f"{urls['http']}/nic/update?hostname={HOME}&myip=198.51.100.90"
    with Unchanged(server):
        # wrong passwords: nothing is cached, every request needs the slow check
        procs = [
            subprocess.Popen(
                [require_tool("curl"), "-sS", "--max-time", "20", "-u", "alice:wrong", url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        bodies = [p.communicate(timeout=30)[0] for p in procs]
    assert "911\n" in bodies, bodies
    assert set(bodies) <= {"911\n", "badauth\n"}, bodies
    # the server is not hurt: a proper request works
    reply = update(urls["http"], f"hostname={HOME}&myip=198.51.100.91")
    assert reply.lines == ["good 198.51.100.91"]


# ---------------------------------------------------------------------------
# mutual TLS: a client certificate instead of Basic auth


def _ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _client_cert(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], cn: str, folder: Path
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca[1], hashes.SHA256())
    )
    cert_path, key_path = folder / f"{cn}.crt", folder / f"{cn}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_client_certificate_login(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    require_tool("curl")
    ca = _ca("test client CA")
    ca_file = tmp_path / "client-ca.pem"
    ca_file.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    good_cert = _client_cert(ca, "home-router", tmp_path)
    (tmp_path / "stranger").mkdir()
    stranger = _client_cert(_ca("another CA"), "home-router", tmp_path / "stranger")
    server, urls = start_dyndns_server(
        server_factory,
        {
            "tls": {"client_ca_file": str(ca_file)},
            "users": [
                {"name": "router", "client_cert_cn": "home-router", "hosts": [HOME]},
                *users_config({"alice": [OFFICE]}),
            ],
        },
    )
    cacert = ("--cacert", str(self_signed_cert(server)))
    reply = update(
        urls["https"],
        f"hostname={HOME}&myip=198.51.100.95",
        *cacert,
        "--cert",
        str(good_cert[0]),
        "--key",
        str(good_cert[1]),
        user=None,
    )
    assert reply.lines == ["good 198.51.100.95"]
    assert_accepted(server, HOME, {"A": ["198.51.100.95"]}, "router", "127.0.0.1")
    with Unchanged(server):
        # a certificate from another CA does not get through the handshake
        reply = update(
            urls["https"],
            f"hostname={HOME}&myip=198.51.100.96",
            *cacert,
            "--cert",
            str(stranger[0]),
            "--key",
            str(stranger[1]),
            user=None,
        )
        assert reply.status == 0, reply
        # no certificate and no password: challenged
        reply = update(urls["https"], f"hostname={HOME}&myip=198.51.100.96", *cacert, user=None)
        assert (reply.status, reply.lines) == (401, ["badauth"])
        # the certificate's user has no password login
        reply = update(
            urls["https"],
            f"hostname={HOME}&myip=198.51.100.96",
            *cacert,
            user="router",
            password="x",
        )
        assert reply.lines == ["badauth"]
    # Basic auth still works beside client certificates
    reply = update(urls["https"], f"hostname={OFFICE}&myip=198.51.100.97", *cacert)
    assert reply.lines == ["good 198.51.100.97"]


def test_never_public_and_malformed_myip_are_refused(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Issue 14 item 8, through curl: dnserr, and the zone stays as it was."""
    require_tool("curl")
    server, urls = start_dyndns_server(server_factory)
    http = urls["http"]
    with Unchanged(server):
        for ip in ("0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "ff02::1", "not-an-ip"):
            reply = update(http, f"hostname={HOME}&myip={ip}")
            assert reply.lines == ["dnserr"], ip
    # loopback and private addresses are published by default (LAN names)
    assert update(http, f"hostname={HOME}&myip=192.168.1.20").lines == ["good 192.168.1.20"]
