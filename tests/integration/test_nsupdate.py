"""RFC 2136 updates with the real `nsupdate` (BIND 9), over UDP and TCP (-v).

Keys come from `ddns-server keygen` in several algorithms and reach the
server through `secret_file`; each key has its own update-policy rule, so
every match kind is tried with a key that may and one that may not. After
every refused or failed update the zone (AXFR with dig) and its serial are
checked to be exactly as before.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import (
    EXAMPLE_ZONE_NAME,
    REPO_ROOT,
    ServerProcess,
    dig,
    example_zone_text,
    http_get,
    require_tool,
    run,
    tail,
    wait_for,
)

ZONE = EXAMPLE_ZONE_NAME

# key name -> algorithm: every algorithm of INTERFACE.md appears once at least
KEYS = {
    "admin": "hmac-sha256",
    "admin512": "hmac-sha512",
    "adminmd5": "hmac-md5",
    "web": "hmac-sha384",
    "lab": "hmac-sha1",
    "home.dyn.example.test": "hmac-sha224",
    "wild": "hmac-sha256",
    "nogrant": "hmac-sha256",
}

POLICY = [
    {"grant": "admin", "match": "zonesub"},
    {"grant": "admin512", "match": "zonesub"},
    {"grant": "adminmd5", "match": "zonesub"},
    {"grant": "web", "match": "name", "name": f"www.{ZONE}", "types": ["A", "AAAA"]},
    {"grant": "lab", "match": "subdomain", "name": f"lab.{ZONE}"},
    {"grant": "home.dyn.example.test", "match": "self"},
    {"grant": "wild", "match": "wildcard", "name": f"*.w.{ZONE}"},
]


def keygen(name: str, algorithm: str, folder: Path) -> Path:
    """A key file made by `ddns-server keygen` (a BIND key clause)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = run([sys.executable, "-m", "ddns_server", "keygen", name, "-a", algorithm], env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"algorithm {algorithm};" in proc.stdout
    path = folder / f"{name}.key"
    path.write_text(proc.stdout)
    path.chmod(0o600)
    return path


class Nsupdate:
    """Runs `nsupdate -k KEYFILE [-v]` against one server."""

    def __init__(self, server: ServerProcess, key_files: dict[str, Path]) -> None:
        self.server = server
        self.key_files = key_files
        self.binary = require_tool("nsupdate")

    def __call__(self, commands: str, key: str | None = "admin", tcp: bool = False) -> str:
        """Send one update; returns nsupdate's output (stdout + stderr)."""
        args = [self.binary]
        if tcp:
            args.append("-v")
        if key is not None:
            args += ["-k", str(self.key_files[key])]
        script = f"server 127.0.0.1 {self.server.dns_port}\nzone {ZONE}\n{commands.strip()}\nsend\n"
        proc = run(args, input=script, timeout=30)
        output = proc.stdout + proc.stderr
        if proc.returncode not in (0, 2):
            raise AssertionError(f"nsupdate exited {proc.returncode}: {output}")
        return output

    def ok(self, commands: str, key: str | None = "admin", tcp: bool = False) -> None:
        before = self.server.soa_serial()
        output = self(commands, key, tcp)
        assert "failed" not in output and "error" not in output.lower(), output
        # RFC 2136 §3.6 + RFC 1982: one new version per accepted message
        assert self.server.soa_serial() == before + 1

    def fails(self, commands: str, rcode: str, key: str | None = "admin", tcp: bool = False) -> str:
        """The update fails with `rcode` and the zone stays exactly as it was."""
        before = snapshot(self.server)
        output = self(commands, key, tcp)
        assert f"update failed: {rcode}" in output, output
        assert snapshot(self.server) == before
        return output


def snapshot(server: ServerProcess) -> tuple[int, list[tuple[str, int, str, str, str]]]:
    """The zone's serial and its whole content, as dig sees them (AXFR)."""
    transfer = dig(server, ZONE, "AXFR")
    assert transfer.answer, transfer.raw
    return server.soa_serial(), sorted(set(transfer.answer))


def addresses(server: ServerProcess, name: str, rdtype: str = "A") -> set[str]:
    return set(dig(server, f"{name}.{ZONE}", rdtype).rdata(rdtype))


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    return {name: keygen(name, algorithm, folder) for name, algorithm in KEYS.items()}


def make_server(directory: Path, key_files: dict[str, Path]) -> ServerProcess:
    return ServerProcess(
        directory,
        {ZONE: example_zone_text()},
        {"keys": [{"name": name, "secret_file": str(path)} for name, path in key_files.items()]},
        zone_extra={ZONE: {"update_policy": POLICY, "allow_transfer": ["127.0.0.0/8"]}},
    )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, key_files: dict[str, Path]
) -> Iterator[ServerProcess]:
    require_tool("nsupdate")
    require_tool("dig")
    srv = make_server(tmp_path_factory.mktemp("server"), key_files)
    srv.start()
    yield srv
    srv.stop()
    print(f"----- server log (tail) -----\n{tail(srv.log_text())}")


@pytest.fixture
def nsupdate(server: ServerProcess, key_files: dict[str, Path]) -> Nsupdate:
    return Nsupdate(server, key_files)


# -- adding, replacing, deleting -------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("key", ["admin", "admin512", "adminmd5"])
def test_add_is_visible_at_once_and_journaled(
    server: ServerProcess, nsupdate: Nsupdate, key: str, tcp: bool
) -> None:
    host = f"add-{key}-{'tcp' if tcp else 'udp'}"
    nsupdate.ok(f"update add {host}.{ZONE} 300 A 192.0.2.77", key=key, tcp=tcp)
    answer = dig(server, f"{host}.{ZONE}", "A")
    assert answer.status == "NOERROR" and "aa" in answer.flags
    assert answer.records("answer", "A") == [(f"{host}.{ZONE}.", 300, "IN", "A", "192.0.2.77")]
    log = json.loads(server.cli("journal", "log", ZONE, "--limit", "1", "--json").stdout)
    assert log[0]["who"] == key
    assert log[0]["source"] == "127.0.0.1"
    assert log[0]["channel"] == "rfc2136"
    assert log[0]["serial"] == server.soa_serial()


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_replace_delete_rrset_delete_rr_delete_name(
    server: ServerProcess, nsupdate: Nsupdate, tcp: bool
) -> None:
    host = f"life-{'tcp' if tcp else 'udp'}"
    fqdn = f"{host}.{ZONE}"
    nsupdate.ok(
        f"update add {fqdn} 60 A 192.0.2.1\n"
        f"update add {fqdn} 60 A 192.0.2.2\n"
        f'update add {fqdn} 60 TXT "first"',
        tcp=tcp,
    )
    assert addresses(server, host) == {"192.0.2.1", "192.0.2.2"}
    # replace: delete the RRset and add the new one, in one message
    nsupdate.ok(f"update delete {fqdn} A\nupdate add {fqdn} 60 A 192.0.2.3", tcp=tcp)
    assert addresses(server, host) == {"192.0.2.3"}
    # add to the RRset, then delete one RR
    nsupdate.ok(f"update add {fqdn} 60 A 192.0.2.4", tcp=tcp)
    nsupdate.ok(f"update delete {fqdn} A 192.0.2.3", tcp=tcp)
    assert addresses(server, host) == {"192.0.2.4"}
    # delete an RRset: the TXT goes, the A stays
    nsupdate.ok(f"update delete {fqdn} TXT", tcp=tcp)
    assert addresses(server, host, "TXT") == set()
    assert addresses(server, host) == {"192.0.2.4"}
    # delete the name: nothing left, NXDOMAIN
    nsupdate.ok(f"update delete {fqdn}", tcp=tcp)
    assert dig(server, fqdn, "A").status == "NXDOMAIN"


def test_ttl_of_an_added_rr_becomes_the_rrsets(server: ServerProcess, nsupdate: Nsupdate) -> None:
    fqdn = f"ttl.{ZONE}"
    nsupdate.ok(f"update add {fqdn} 300 A 192.0.2.1")
    nsupdate.ok(f"update add {fqdn} 60 A 192.0.2.2")
    rows = dig(server, fqdn, "A").records("answer", "A")
    assert {(r[1], r[4]) for r in rows} == {(60, "192.0.2.1"), (60, "192.0.2.2")}


def test_an_update_that_changes_nothing_makes_no_version(
    server: ServerProcess, nsupdate: Nsupdate
) -> None:
    before = snapshot(server)
    output = nsupdate(f"update add www.{ZONE} 3600 A 192.0.2.10")  # already there
    assert "failed" not in output
    output = nsupdate(f"update delete nothing-here.{ZONE} A")
    assert "failed" not in output
    assert snapshot(server) == before


def update_counts(server: ServerProcess) -> dict[str, float]:
    """ddns_updates_total of the rfc2136 channel, by result, from /metrics."""
    status, body = http_get(server.http_url + "/metrics")
    assert status == 200, body
    prefix = 'ddns_updates_total{channel="rfc2136",result="'
    return {
        line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(prefix)
    }


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_updates_are_counted_by_result(
    server: ServerProcess, nsupdate: Nsupdate, tcp: bool
) -> None:
    before = update_counts(server)
    nsupdate.ok(f"update add counted-{int(tcp)}.{ZONE} 300 A 192.0.2.78", tcp=tcp)
    nsupdate(f"update add www.{ZONE} 3600 A 192.0.2.10", tcp=tcp)  # already there
    nsupdate.fails(f"update add nope.{ZONE} 300 A 192.0.2.1", "REFUSED", key="nogrant", tcp=tcp)
    after = update_counts(server)
    delta = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k)}
    assert delta == {"NOERROR": 1.0, "NOCHANGE": 1.0, "REFUSED": 1.0}


def test_special_records_are_protected(server: ServerProcess, nsupdate: Nsupdate) -> None:
    """The apex SOA and NS stay (RFC 2136 §3.4.2.3/4); CNAME exclusivity."""
    before = snapshot(server)
    # The policy keeps SOA and apex NS out of a rule without types: REFUSED.
    nsupdate.fails(f"update delete {ZONE} NS", "REFUSED")
    nsupdate.fails(f"update delete {ZONE} SOA", "REFUSED")
    # Deleting every RRset of the apex keeps SOA and NS.
    nsupdate.ok(f"update delete {ZONE}")
    serial, content = snapshot(server)
    assert {r[3] for r in content if r[0] == f"{ZONE}."} == {"SOA", "NS"}
    assert serial == before[0] + 1
    # CNAME beside other data, other data beside a CNAME: ignored (like BIND)
    quiet = snapshot(server)
    nsupdate(f"update add www.{ZONE} 60 CNAME mail.{ZONE}")
    nsupdate(f'update add alias.{ZONE} 60 TXT "beside a cname"')
    assert snapshot(server) == quiet


# -- prerequisites -------------------------------------------------------------------

PREREQS = [
    # (prerequisite that holds, one that fails, the failure's rcode)
    (f"prereq yxdomain www.{ZONE}", f"prereq yxdomain nope.{ZONE}", "NXDOMAIN"),
    (f"prereq nxdomain nope.{ZONE}", f"prereq nxdomain www.{ZONE}", "YXDOMAIN"),
    (f"prereq yxrrset www.{ZONE} A", f"prereq yxrrset www.{ZONE} MX", "NXRRSET"),
    (f"prereq nxrrset www.{ZONE} MX", f"prereq nxrrset www.{ZONE} A", "YXRRSET"),
    (
        f"prereq yxrrset mail.{ZONE} AAAA 2001:db8::25",
        f"prereq yxrrset mail.{ZONE} AAAA 2001:db8::99",
        "NXRRSET",
    ),
]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(
    ("holds", "fails", "rcode"),
    PREREQS,
    ids=["name-in-use", "name-not-in-use", "rrset-exists", "rrset-absent", "rrset-value"],
)
def test_prerequisites(
    server: ServerProcess, nsupdate: Nsupdate, holds: str, fails: str, rcode: str, tcp: bool
) -> None:
    host = f"pre-{rcode.lower()}-{len(holds)}-{'tcp' if tcp else 'udp'}"
    update = f"update add {host}.{ZONE} 60 A 192.0.2.5"
    nsupdate.fails(f"{fails}\n{update}", rcode, tcp=tcp)
    assert dig(server, f"{host}.{ZONE}", "A").status == "NXDOMAIN"
    nsupdate.ok(f"{holds}\n{update}", tcp=tcp)
    assert addresses(server, host) == {"192.0.2.5"}


# -- policy: every match kind, a key that may and one that may not ---------------------

POLICY_CASES = [
    # (key, update that is allowed, update that is refused)
    ("web", f"update add www.{ZONE} 3600 A 192.0.2.12", f"update add www2.{ZONE} 60 A 192.0.2.1"),
    ("web", f"update add www.{ZONE} 3600 AAAA 2001:db8::12", f'update add www.{ZONE} 60 TXT "x"'),
    ("lab", f"update add lab.{ZONE} 60 A 192.0.2.1", f"update add labx.{ZONE} 60 A 192.0.2.1"),
    ("lab", f"update add a.b.lab.{ZONE} 60 A 192.0.2.1", f'update add {ZONE} 60 TXT "x"'),
    ("admin", f"update add deep.down.{ZONE} 60 A 192.0.2.1", f"update add {ZONE} 60 NS ns9.{ZONE}"),
    (
        "home.dyn.example.test",
        f"update add home.{ZONE} 60 AAAA 2001:db8::100",
        f"update add homer.{ZONE} 60 A 192.0.2.1",
    ),
    ("wild", f"update add a.w.{ZONE} 60 A 192.0.2.1", f"update add w.{ZONE} 60 A 192.0.2.1"),
    ("wild", f"update add b.a.w.{ZONE} 60 A 192.0.2.1", f"update add a.x.{ZONE} 60 A 192.0.2.1"),
]


@pytest.mark.parametrize(
    ("key", "allowed", "refused"),
    POLICY_CASES,
    ids=[
        "name",
        "name-types",
        "subdomain",
        "subdomain-below",
        "zonesub",
        "self",
        "wildcard",
        "wildcard-below",
    ],
)
def test_policy(
    server: ServerProcess, nsupdate: Nsupdate, key: str, allowed: str, refused: str
) -> None:
    nsupdate.fails(refused, "REFUSED", key=key)
    nsupdate.ok(allowed, key=key)


@pytest.mark.parametrize("key", ["nogrant", "web", "lab", "wild", "home.dyn.example.test"])
def test_keys_outside_their_rules_are_refused(nsupdate: Nsupdate, key: str) -> None:
    nsupdate.fails(f"update add elsewhere.{ZONE} 60 A 192.0.2.1", "REFUSED", key=key)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_unsigned_updates_are_refused(nsupdate: Nsupdate, tcp: bool) -> None:
    nsupdate.fails(f"update add unsigned.{ZONE} 60 A 192.0.2.1", "REFUSED", key=None, tcp=tcp)


# -- zone and TSIG errors as nsupdate sees them ----------------------------------------


def test_zone_errors(nsupdate: Nsupdate, server: ServerProcess) -> None:
    # an update RR outside the zone named in the zone section
    nsupdate.fails("update add x.other.test 60 A 192.0.2.1", "NOTZONE")
    # a zone section naming a zone not served here
    before = snapshot(server)
    proc = run(
        [nsupdate.binary, "-k", str(nsupdate.key_files["admin"])],
        input=f"server 127.0.0.1 {server.dns_port}\nzone other.test\n"
        "update add x.other.test 60 A 192.0.2.1\nsend\n",
    )
    assert "update failed: NOTAUTH" in proc.stdout + proc.stderr
    assert snapshot(server) == before


def test_unknown_key_and_bad_secret(
    nsupdate: Nsupdate, server: ServerProcess, tmp_path: Path
) -> None:
    stranger = keygen("stranger", "hmac-sha256", tmp_path)
    (tmp_path / "other").mkdir()
    impostor = keygen("admin", "hmac-sha256", tmp_path / "other")  # known name, other secret
    nsupdate.key_files = {**nsupdate.key_files, "stranger": stranger, "impostor": impostor}
    output = nsupdate.fails(
        f"update add s.{ZONE} 60 A 192.0.2.1", "NOTAUTH(BADKEY)", key="stranger"
    )
    assert "TSIG error" in output
    output = nsupdate.fails(
        f"update add s.{ZONE} 60 A 192.0.2.1", "NOTAUTH(BADSIG)", key="impostor"
    )
    assert "TSIG error" in output


# -- durability --------------------------------------------------------------------------


def test_changes_survive_sigkill(tmp_path: Path, key_files: dict[str, Path]) -> None:
    require_tool("nsupdate")
    server = make_server(tmp_path / "server", key_files)
    server.start()
    try:
        nsupdate = Nsupdate(server, key_files)
        nsupdate.ok(f"update add durable.{ZONE} 60 A 192.0.2.61")
        nsupdate.ok(f"update delete www.{ZONE} A\nupdate add www.{ZONE} 60 A 192.0.2.62", tcp=True)
        nsupdate.ok(f"update delete mail.{ZONE}")
        before = snapshot(server)
        server.kill()
        server.start()
        assert snapshot(server) == before
        assert addresses(server, "durable") == {"192.0.2.61"}
        assert addresses(server, "www") == {"192.0.2.62"}
        assert dig(server, f"mail.{ZONE}", "A").status == "NXDOMAIN"
        # and it takes updates again, from the journaled serial on
        nsupdate.ok(f"update add after.{ZONE} 60 A 192.0.2.63")
    finally:
        server.stop()
        print(f"----- server log (tail) -----\n{tail(server.log_text())}")


def test_policy_follows_sighup(tmp_path: Path, key_files: dict[str, Path]) -> None:
    require_tool("nsupdate")
    server = make_server(tmp_path / "server", key_files)
    server.start()
    try:
        nsupdate = Nsupdate(server, key_files)
        nsupdate.fails(f"update add hup.{ZONE} 60 A 192.0.2.1", "REFUSED", key="nogrant")
        zone = server.config["zones"][0]
        zone["update_policy"] = [
            *POLICY,
            {"grant": "nogrant", "match": "name", "name": f"hup.{ZONE}"},
        ]
        server.write_config()
        server.reload()

        def granted() -> bool:
            return "failed" not in nsupdate(f"update add hup.{ZONE} 60 A 192.0.2.1", key="nogrant")

        wait_for(granted, timeout=5, message="the new policy after SIGHUP")
        assert addresses(server, "hup") == {"192.0.2.1"}
    finally:
        server.stop()
        print(f"----- server log (tail) -----\n{tail(server.log_text())}")
