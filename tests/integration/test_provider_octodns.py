"""The octodns provider with octodns-powerdns against a real PowerDNS Authoritative
(pdns_server, gsqlite3 backend, HTTP API) on loopback."""

from __future__ import annotations

import json
import secrets
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest
from harness import BackgroundProcess, free_port, in_ci, require_tool, tail, wait_for
from provider_contract import (
    check_a_becomes_cname,
    check_create_replace_delete,
    delete,
    keys,
    managed,
    put,
    sample,
)

from ddns_server.mirrors.base import Change, PermanentError, RRset, TransientError

pytest.importorskip("octodns_powerdns")

from ddns_server.mirrors.octodns import OctodnsProvider  # noqa: E402

ZONE = "example.test."
OUTSIDE = RRset(f"other.{ZONE}", "A", 300, ("198.51.100.7",))
SCHEMAS = (
    Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"),
    Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"),
)


class Pdns:
    def __init__(self, proc: BackgroundProcess, dns_port: int, api_port: int, key: str) -> None:
        self.proc, self.dns_port, self.api_port, self.key = proc, dns_port, api_port, key

    def api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/api/v1/servers/localhost/{path}".rstrip("/"),
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"X-API-Key": self.key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            data = answer.read()
        return json.loads(data) if data else None

    def fresh_zone(self) -> None:
        """example.test. with its SOA, NS and one record no mirror manages."""
        try:
            self.api("DELETE", f"zones/{ZONE}")
        except urllib.error.HTTPError as exc:
            if exc.code not in (404, 422):
                raise
        self.api(
            "POST",
            "zones",
            {"name": ZONE, "kind": "Native", "nameservers": [f"ns1.{ZONE}"]},
        )
        self.api(
            "PATCH",
            f"zones/{ZONE}",
            {
                "rrsets": [
                    {
                        "name": OUTSIDE.name,
                        "type": "A",
                        "ttl": 300,
                        "changetype": "REPLACE",
                        "records": [{"content": "198.51.100.7", "disabled": False}],
                    }
                ]
            },
        )

    def rrsets(self) -> dict[tuple[str, str], Any]:
        zone = self.api("GET", f"zones/{ZONE}")
        return {(r["name"], r["type"]): r for r in zone["rrsets"]}

    def options(self, **extra: Any) -> dict[str, Any]:
        return {
            "class": "octodns_powerdns.PowerDnsProvider",
            "host": "127.0.0.1",
            "port": self.api_port,
            "api_key": self.key,
            "timeout": 5,
            **extra,
        }

    def query(self, name: str, rdtype: str) -> list[str]:
        answer = dns.query.udp(
            dns.message.make_query(name, rdtype), "127.0.0.1", port=self.dns_port, timeout=2
        )
        return sorted(rd.to_text() for rrset in answer.answer for rd in rrset)


def start_pdns(folder: Path, peer: Pdns | None = None) -> Pdns:
    """Start pdns_server on loopback with a new sqlite3 database in `folder`, or, given
    `peer`, start it again on the same ports and database (its stopped process replaced)."""
    server = require_tool("pdns_server")
    if peer is None:
        schema = next((p for p in SCHEMAS if p.exists()), None)
        if schema is None:
            reason = "pdns-backend-sqlite3 not installed (run `make tools`)"
            if in_ci():
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        database = folder / "pdns.sqlite3"
        with sqlite3.connect(database) as db:
            db.executescript(schema.read_text())
        dns_port, api_port = free_port("both"), free_port("tcp")
        key = secrets.token_urlsafe(24)
        (folder / "pdns.conf").write_text(
            "\n".join(
                [
                    "launch=gsqlite3",
                    f"gsqlite3-database={database}",
                    "local-address=127.0.0.1",
                    f"local-port={dns_port}",
                    "api=yes",
                    f"api-key={key}",
                    "webserver=yes",
                    "webserver-address=127.0.0.1",
                    f"webserver-port={api_port}",
                    "webserver-allow-from=127.0.0.0/8",
                    f"socket-dir={folder}",
                    "guardian=no",
                    "daemon=no",
                    "disable-syslog=yes",
                    "security-poll-suffix=",  # no status query to the Internet
                    "",
                ]
            )
        )
        proc = BackgroundProcess([server, f"--config-dir={folder}"], folder / "pdns.log")
        peer = Pdns(proc, dns_port, api_port, key)
    else:
        peer.proc = BackgroundProcess([server, f"--config-dir={folder}"], folder / "pdns.log")
    started = peer

    def api_up() -> bool:
        assert started.proc.running, f"pdns_server exited:\n{tail(started.proc.log_text())}"
        try:
            started.api("GET", "")
            return True
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        wait_for(api_up, timeout=20, message="the PowerDNS API")
    except BaseException:
        started.proc.stop()
        raise
    return started


@pytest.fixture(scope="module")
def pdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pdns]:
    peer = start_pdns(Path(tmp_path_factory.mktemp("pdns")))
    try:
        yield peer
    finally:
        peer.proc.stop()
        print(f"----- pdns log (tail) -----\n{tail(peer.proc.log_text())}")


@pytest.fixture
def zone(pdns: Pdns) -> Pdns:
    pdns.fresh_zone()
    return pdns


def counting(provider: OctodnsProvider) -> list[tuple[str, str, Any]]:
    """The HTTP requests the octoDNS provider sends: (method, url, json body)."""
    calls: list[tuple[str, str, Any]] = []
    session = provider.provider._sess
    original = session.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        calls.append((method, url, kwargs.get("json")))
        return original(method, url, *args, **kwargs)

    session.request = request
    return calls


def test_create_replace_delete_every_type(zone: Pdns) -> None:
    before = zone.rrsets()
    p = OctodnsProvider(zone.options(), ZONE)
    check_create_replace_delete(p, ZONE)
    after = zone.rrsets()
    # SOA, NS and the outside record are as they were (the SOA serial may move)
    for key in ((OUTSIDE.name, "A"), (ZONE, "NS")):
        assert after[key] == before[key]
    assert set(after) == set(before)
    p.close()


def test_pdns_serves_what_was_pushed(zone: Pdns) -> None:
    p = OctodnsProvider(zone.options(), ZONE)
    p.apply(put(sample(ZONE)))
    assert zone.query(f"home.dyn.{ZONE}", "A") == ["192.0.2.1"]
    assert zone.query(f"dyn.{ZONE}", "MX") == [f"10 mail.{ZONE}", f"20 backup.{ZONE}"]
    assert zone.query(f"home.dyn.{ZONE}", "TXT") == ['"v=spf1 -all"']
    assert zone.query(f"other.{ZONE}", "A") == ["198.51.100.7"]


def test_only_managed_rrsets_are_sent_and_reapply_is_idempotent(zone: Pdns) -> None:
    p = OctodnsProvider(zone.options(), ZONE)
    calls = counting(p)
    p.apply(put(sample(ZONE)))
    patches = [c for c in calls if c[0] != "GET"]
    assert len(patches) == 1  # one PATCH for the whole push
    sent = {(r["name"], r["type"]) for r in patches[0][2]["rrsets"]}
    assert sent == set(keys(sample(ZONE)))  # nothing else: no full-zone sync
    calls.clear()
    p.apply(put(sample(ZONE)))
    assert [c[0] for c in calls if c[0] != "GET"] == []  # already there: no write
    calls.clear()
    p.apply(delete(sample(ZONE)[:1]))
    (patch,) = [c for c in calls if c[0] != "GET"]
    assert [(r["name"], r["type"], r["changetype"]) for r in patch[2]["rrsets"]] == [
        (f"home.dyn.{ZONE}", "A", "DELETE")
    ]
    assert managed(p, sample(ZONE)) == sorted(sample(ZONE)[1:])


def test_bad_api_key_is_permanent(zone: Pdns) -> None:
    p = OctodnsProvider(zone.options(api_key="wrong"), ZONE)
    calls = counting(p)
    with pytest.raises(PermanentError, match="401|unauthorized"):
        p.apply(put(sample(ZONE)))
    assert len(calls) == 1
    with pytest.raises(PermanentError):
        p.read()
    assert managed(OctodnsProvider(zone.options(), ZONE), sample(ZONE)) == []


def test_rejected_record_and_unknown_class_are_permanent(zone: Pdns) -> None:
    p = OctodnsProvider(zone.options(), ZONE)
    bad_cname = RRset(f"home.dyn.{ZONE}", "CNAME", 60, (f"a.{ZONE}",))
    # home.dyn already has A records: PowerDNS refuses a CNAME next to them (422)
    p.apply(put(sample(ZONE)[:1]))
    with pytest.raises(PermanentError, match="422"):
        p.apply([Change(bad_cname.key, bad_cname)])
    with pytest.raises(PermanentError, match="cannot load"):
        OctodnsProvider({"class": "octodns_powerdns.NoSuchProvider"}, ZONE)
    with pytest.raises(PermanentError):
        OctodnsProvider({"class": "octodns_powerdns.PowerDnsProvider", "bogus": 1}, ZONE)


def test_missing_zone_is_permanent_and_never_created(zone: Pdns) -> None:
    p = OctodnsProvider(zone.options(), "elsewhere.test.")
    elsewhere = RRset("home.elsewhere.test.", "A", 60, ("192.0.2.1",))
    with pytest.raises(PermanentError, match="does not exist"):
        p.apply(put([elsewhere]))
    zones = {z["name"] for z in zone.api("GET", "zones")}
    assert "elsewhere.test." not in zones


def test_peer_down_is_transient(pdns: Pdns) -> None:
    port = free_port("tcp")
    p = OctodnsProvider(pdns.options(port=port, timeout=2), ZONE)
    with pytest.raises(TransientError):
        p.read()
    with pytest.raises(TransientError):
        p.apply(put(sample(ZONE)))


def test_a_becomes_cname_in_one_push(zone: Pdns) -> None:
    check_a_becomes_cname(OctodnsProvider(zone.options(), ZONE), ZONE)


def test_pdns_stopped_for_a_while_then_back(tmp_path: Path) -> None:
    """The peer itself goes away (not a wrong port): transient while it is down, and
    the same push succeeds once it is back, with nothing lost or doubled."""
    peer = start_pdns(tmp_path)
    try:
        peer.fresh_zone()
        p = OctodnsProvider(peer.options(timeout=2), ZONE)
        p.apply(put(sample(ZONE)[:2]))
        peer.proc.stop()
        with pytest.raises(TransientError):
            p.apply(put(sample(ZONE)))
        with pytest.raises(TransientError):
            p.read()
        start_pdns(tmp_path, peer)
        p.apply(put(sample(ZONE)))  # the engine repeats the whole push
        assert managed(p, sample(ZONE)) == sorted(sample(ZONE))
        assert p.read([OUTSIDE.key]) == [OUTSIDE]
        assert peer.query(f"home.dyn.{ZONE}", "AAAA") == ["2001:db8::1"]
    finally:
        peer.proc.stop()
