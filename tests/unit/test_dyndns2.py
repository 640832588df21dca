"""DynDNS2 core (ddns_server.dyndns2): reply words, address families, nochg,
abuse limits with a fake clock, and the trusted-proxy decision.

A real journal (SQLite in tmp_path) and store; no sockets. Password hashes are
made with a low scrypt cost so the tests stay fast (the cost is read back from
each hash, so verification is the real code path).
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dns.name
import dns.rdatatype
import pytest
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from zonetext import records_from_text

from ddns_server import config as config_mod
from ddns_server.dyndns2 import (
    MAX_HOSTS,
    Dyndns2,
    Reply,
    UpdateRequest,
    UpdateResponse,
    Verify,
    client_address,
    networks,
    parse_addresses,
    parse_basic_auth,
    parse_fqdn,
    source_key,
)
from ddns_server.journal import Journal
from ddns_server.passwords import verify_password
from ddns_server.store import Store, zone_key
from ddns_server.zonedata import Changeset, Record, ZoneData

ZONE = "dyn.example.test"
OTHER_ZONE = "other.example.test"
ZONE_TEXT = """\
$ORIGIN dyn.example.test.
$TTL 3600
@     IN SOA ns1 hostmaster 100 3600 600 604800 300
      IN NS  ns1
ns1   IN A   127.0.0.1
home  60 IN A    192.0.2.100
home  60 IN AAAA 2001:db8::100
home  60 IN TXT  "kept"
nas   60 IN A    192.0.2.101
v6only 60 IN AAAA 2001:db8::102
alias IN CNAME home
sub   IN NS  ns.sub
ns.sub IN A  192.0.2.53
"""
OTHER_TEXT = """\
$ORIGIN other.example.test.
@     IN SOA ns1 hostmaster 7 3600 600 604800 300
      IN NS  ns1
ns1   IN A   127.0.0.1
"""
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


def cheap_hash(password: str) -> str:
    """A real scrypt hash in the passwords module's form, at a test-friendly cost."""
    salt = os.urandom(16)
    key = Scrypt(salt=salt, length=32, n=2**4, r=8, p=1).derive(password.encode())

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode().rstrip("=")

    return f"$scrypt$ln=4,r=8,p=1${b64(salt)}${b64(key)}"


def names(*texts: str) -> tuple[dns.name.Name, ...]:
    return tuple(dns.name.from_text(t) for t in texts)


def make_config(tmp_path: Path, **dyndns: Any) -> config_mod.Config:
    users = (
        config_mod.User(
            "alice",
            cheap_hash(PASSWORDS["alice"]),
            names(
                f"home.{ZONE}",
                f"nas.{ZONE}",
                f"v6only.{ZONE}",
                f"new.{ZONE}",
                f"alias.{ZONE}",
                f"deep.sub.{ZONE}",
                f"box.{OTHER_ZONE}",
            )
            + names(*(f"h{i}.{ZONE}" for i in range(MAX_HOSTS + 1))),
        ),
        config_mod.User("bob", cheap_hash(PASSWORDS["bob"]), names(f"bob.{ZONE}")),
        config_mod.User("carol", "", names(f"carol.{ZONE}"), client_cert_cn="carol-router"),
    )
    zones = (
        config_mod.Zone(dns.name.from_text(ZONE), None, dyndns_ttl=60),
        config_mod.Zone(dns.name.from_text(OTHER_ZONE), None, dyndns_ttl=120),
    )
    return config_mod.Config(
        path=tmp_path / "ddns.yaml",
        data_dir=tmp_path,
        users=users,
        zones=zones,
        dyndns=config_mod.Dyndns(**dyndns),
    )


@dataclass
class Env:
    """A store with two zones, a Dyndns2 over it, and a fake clock."""

    tmp_path: Path
    config: config_mod.Config
    store: Store
    service: Dyndns2
    counted: list[str] = field(default_factory=list)
    now: float = 1_000_000.0

    @property
    def zone(self) -> ZoneData:
        zone = self.store.zone_for(dns.name.from_text(ZONE))
        assert zone is not None
        return zone

    def snapshot(self, zone: str = ZONE) -> tuple[int, list[Record], int]:
        """Serial, content and number of journaled versions: what a refusal must not change."""
        data = self.store.zone_for(dns.name.from_text(zone))
        assert data is not None
        versions = self.store.journal.versions(zone_key(dns.name.from_text(zone)))
        return data.serial, sorted(data.record_set()), len(versions)

    def addresses(self, host: str, rdtype: str) -> list[str]:
        zone = self.zone
        low = dns.name.from_text(host).to_wire().lower()
        out = []
        for _owner, _rdtype, _ttl, rdata in zone.records_at(low, dns.rdatatype.from_text(rdtype)):
            out.append(str(ipaddress.ip_address(rdata)))
        return sorted(out)

    def ttl(self, host: str, rdtype: str, zone_name: str = ZONE) -> int:
        zone = self.store.zone_for(dns.name.from_text(zone_name))
        assert zone is not None
        low = dns.name.from_text(host).to_wire().lower()
        return zone.records_at(low, dns.rdatatype.from_text(rdtype))[0][2]

    def request(
        self,
        query: str = "",
        user: str | None = "alice",
        password: str | None = None,
        client: str = "198.51.100.1",
        agent: str | None = "test/1.0",
        authorization: str | None = None,
        cert_cn: str | None = None,
    ) -> UpdateRequest:
        args: dict[str, list[str]] = {}
        for part in query.split("&") if query else []:
            key, _, value = part.partition("=")
            args.setdefault(key, []).append(value)
        if authorization is None and user is not None:
            pw = PASSWORDS.get(user, "x") if password is None else password
            authorization = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
        return UpdateRequest(args, authorization, agent, client, cert_cn)

    def send(self, query: str = "", **kwargs: object) -> UpdateResponse:
        return self.service.handle(self.request(query, **kwargs), self.now)  # type: ignore[arg-type]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path)


def _env(tmp_path: Path, **dyndns: Any) -> Iterator[Env]:
    config = make_config(tmp_path, **dyndns)
    journal = Journal(tmp_path / "journal.sqlite3")
    store = Store(journal, clock=lambda: 1_000_000.0)
    store.open_zone(
        dns.name.from_text(ZONE), records_from_text(ZONE_TEXT, dns.name.from_text(ZONE), "z")
    )
    store.open_zone(
        dns.name.from_text(OTHER_ZONE),
        records_from_text(OTHER_TEXT, dns.name.from_text(OTHER_ZONE), "o"),
    )
    counted: list[str] = []
    env = Env(tmp_path, config, store, Dyndns2(store, lambda: env.config, counted.append), counted)
    yield env
    journal.close()


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., Env]]:
    """An Env with other dyndns limits."""
    gens: list[Iterator[Env]] = []

    def make(**dyndns: Any) -> Env:
        gen = _env(tmp_path / f"env{len(gens)}", **dyndns)
        gens.append(gen)
        return next(gen)

    yield make
    for gen in gens:
        for _ in gen:
            pass


# ---------------------------------------------------------------------------
# every reply word, and a refusal leaves the zone alone

REFUSALS = [
    # (id, query, request keyword arguments, expected lines, expected HTTP status)
    ("badagent", f"hostname=home.{ZONE}&myip=203.0.113.1", {"agent": None}, ["badagent"], 200),
    ("badagent-empty", f"hostname=home.{ZONE}&myip=203.0.113.1", {"agent": " "}, ["badagent"], 200),
    ("no-credentials", f"hostname=home.{ZONE}&myip=203.0.113.1", {"user": None}, ["badauth"], 401),
    (
        "malformed-credentials",
        f"hostname=home.{ZONE}&myip=203.0.113.1",
        {"user": None, "authorization": "Basic %%%"},
        ["badauth"],
        401,
    ),
    (
        "bad-password",
        f"hostname=home.{ZONE}&myip=203.0.113.1",
        {"password": "nope"},
        ["badauth"],
        200,
    ),
    (
        "unknown-user",
        f"hostname=home.{ZONE}&myip=203.0.113.1",
        {"user": "mallory"},
        ["badauth"],
        200,
    ),
    (
        "cert-only-user-has-no-password",
        f"hostname=carol.{ZONE}&myip=203.0.113.1",
        {"user": "carol"},
        ["badauth"],
        200,
    ),
    ("no-hostname", "myip=203.0.113.1", {}, ["notfqdn"], 200),
    ("empty-hostname", "hostname=&myip=203.0.113.1", {}, ["notfqdn"], 200),
    ("not-fqdn", "hostname=home&myip=203.0.113.1", {}, ["notfqdn"], 200),
    ("bad-name", "hostname=a..b&myip=203.0.113.1", {}, ["notfqdn"], 200),
    (
        "numhost",
        "hostname=" + ",".join(f"h{i}.{ZONE}" for i in range(MAX_HOSTS + 1)) + "&myip=203.0.113.1",
        {},
        ["numhost"],
        200,
    ),
    ("other-users-host", f"hostname=bob.{ZONE}&myip=203.0.113.1", {}, ["nohost"], 200),
    ("unknown-host", f"hostname=www.{ZONE}&myip=203.0.113.1", {}, ["nohost"], 200),
    ("outside-zones", "hostname=home.example.org&myip=203.0.113.1", {}, ["nohost"], 200),
    ("cname-in-the-way", f"hostname=alias.{ZONE}&myip=203.0.113.1", {}, ["dnserr"], 200),
    ("below-delegation", f"hostname=deep.sub.{ZONE}&myip=203.0.113.1", {}, ["dnserr"], 200),
    # issue 14 item 8: never-public and unparseable addresses are refused (dnserr)
    *(
        (
            f"never-public-{ip}",
            f"hostname=home.{ZONE},nas.{ZONE}&myip={ip}",
            {},
            ["dnserr"] * 2,
            200,
        )
        for ip in (
            "0.0.0.0",
            "::",
            "255.255.255.255",
            "224.0.0.1",
            "239.1.2.3",
            "ff02::1",
            "240.0.0.1",
            "0.1.2.3",
            "::ffff:0.0.0.0",
            "203.0.113.5,ff05::2",
        )
    ),
    ("malformed-myip", f"hostname=home.{ZONE}&myip=not-an-ip", {}, ["dnserr"], 200),
    ("malformed-myipv6", f"hostname=home.{ZONE}&myipv6=1.2.3", {}, ["dnserr"], 200),
    ("scoped-v6", f"hostname=home.{ZONE}&myip=fe80::1%eth0", {}, ["dnserr"], 200),
    ("nochg", f"hostname=home.{ZONE}&myip=192.0.2.100", {}, ["nochg 192.0.2.100"], 200),
    (
        "nochg-pair",
        f"hostname=home.{ZONE}&myip=192.0.2.100,2001:db8::100",
        {},
        ["nochg 192.0.2.100,2001:db8::100"],
        200,
    ),
]


@pytest.mark.parametrize(
    "query, kwargs, lines, status", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_and_nochg_leave_the_zone_unchanged(
    env: Env, query: str, kwargs: dict[str, object], lines: list[str], status: int
) -> None:
    before = env.snapshot()
    answer = env.send(query, **kwargs)
    assert list(answer.lines) == lines
    assert answer.status == status
    assert answer.challenge == (status == 401)
    assert answer.body() == "".join(line + "\n" for line in lines).encode()
    assert env.snapshot() == before  # same serial, same records, no new version


GOOD = [
    # (id, query, client, expected line, A after, AAAA after)
    (
        "v4",
        "myip=203.0.113.5",
        "198.51.100.1",
        "good 203.0.113.5",
        ["203.0.113.5"],
        ["2001:db8::100"],
    ),
    (
        "v6",
        "myip=2001:db8::5",
        "198.51.100.1",
        "good 2001:db8::5",
        ["192.0.2.100"],
        ["2001:db8::5"],
    ),
    (
        "pair",
        "myip=203.0.113.5,2001:db8::5",
        "198.51.100.1",
        "good 203.0.113.5,2001:db8::5",
        ["203.0.113.5"],
        ["2001:db8::5"],
    ),
    (
        "myipv6",
        "myip=203.0.113.5&myipv6=2001:db8::5",
        "198.51.100.1",
        "good 203.0.113.5,2001:db8::5",
        ["203.0.113.5"],
        ["2001:db8::5"],
    ),
    (
        "only-myipv6",
        "myipv6=2001:db8::5",
        "198.51.100.1",
        "good 2001:db8::5",
        ["192.0.2.100"],
        ["2001:db8::5"],
    ),
    ("client-v4", "", "203.0.113.9", "good 203.0.113.9", ["203.0.113.9"], ["2001:db8::100"]),
    ("client-v6", "", "2001:db8::9", "good 2001:db8::9", ["192.0.2.100"], ["2001:db8::9"]),
    (
        "client-mapped",
        "",
        "::ffff:203.0.113.9",
        "good 203.0.113.9",
        ["203.0.113.9"],
        ["2001:db8::100"],
    ),
    ("empty-myip", "myip=", "203.0.113.9", "good 203.0.113.9", ["203.0.113.9"], ["2001:db8::100"]),
    (
        "fritzbox-no-v4",
        "myip=,2001:db8::7",
        "198.51.100.1",
        "good 2001:db8::7",
        ["192.0.2.100"],
        ["2001:db8::7"],
    ),
    (
        "v4-half-changed",
        "myip=192.0.2.100,2001:db8::5",
        "x",
        "good 192.0.2.100,2001:db8::5",
        ["192.0.2.100"],
        ["2001:db8::5"],
    ),
]


@pytest.mark.parametrize(
    "query, client, line, a, aaaa", [g[1:] for g in GOOD], ids=[g[0] for g in GOOD]
)
def test_good_changes_only_the_families_given(
    env: Env, query: str, client: str, line: str, a: list[str], aaaa: list[str]
) -> None:
    serial, _, versions = env.snapshot()
    query = f"hostname=home.{ZONE}" + (f"&{query.replace('%25', '%')}" if query else "")
    answer = env.send(query, client=client)
    assert list(answer.lines) == [line]
    assert env.addresses(f"home.{ZONE}", "A") == a
    assert env.addresses(f"home.{ZONE}", "AAAA") == aaaa
    new_serial, records, new_versions = env.snapshot()
    assert new_serial == serial + 1 and new_versions == versions + 1  # one version per request
    assert any(r[1] == dns.rdatatype.TXT for r in records)  # the host's other records stay
    version = env.store.journal.versions(zone_key(dns.name.from_text(ZONE)), 1)[0]
    assert (version.who, version.source, version.channel) == ("alice", client, "dyndns2")


def test_nochg_after_good_makes_no_version(env: Env) -> None:
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("good 203.0.113.5",)
    after_good = env.snapshot()
    for _ in range(5):
        assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("nochg 203.0.113.5",)
    assert env.snapshot() == after_good


def test_new_host_gets_records_with_the_zone_ttl(env: Env) -> None:
    answer = env.send(f"hostname=new.{ZONE},box.{OTHER_ZONE}&myip=203.0.113.5,2001:db8::5")
    assert answer.lines == ("good 203.0.113.5,2001:db8::5",) * 2
    assert env.ttl(f"new.{ZONE}", "A") == 60
    assert env.ttl(f"new.{ZONE}", "AAAA") == 60
    assert env.ttl(f"box.{OTHER_ZONE}", "A", OTHER_ZONE) == 120  # that zone's dyndns_ttl


def test_replaced_record_takes_the_dyndns_ttl(env: Env) -> None:
    env.config = replace(
        env.config, zones=(replace(env.config.zones[0], dyndns_ttl=30), env.config.zones[1])
    )
    env.send(f"hostname=home.{ZONE}&myip=203.0.113.5")
    assert env.ttl(f"home.{ZONE}", "A") == 30


def test_several_hosts_one_line_each_in_order_one_version_per_zone(env: Env) -> None:
    serial, _, versions = env.snapshot()
    other_serial = env.snapshot(OTHER_ZONE)[0]
    answer = env.send(
        f"hostname=nas.{ZONE},bob.{ZONE},home,home.{ZONE},box.{OTHER_ZONE},nas.{ZONE}"
        "&myip=192.0.2.101"
    )
    assert answer.lines == (
        "nochg 192.0.2.101",  # nas already has it
        "nohost",
        "notfqdn",
        "good 192.0.2.101",
        "good 192.0.2.101",
        "nochg 192.0.2.101",
    )
    assert env.snapshot()[0] == serial + 1 and env.snapshot()[2] == versions + 1
    assert env.snapshot(OTHER_ZONE)[0] == other_serial + 1
    assert env.counted == ["nochg", "nohost", "notfqdn", "good", "good", "nochg"]


def test_host_named_twice_changes_once(env: Env) -> None:
    answer = env.send(f"hostname=home.{ZONE},HOME.{ZONE.upper()}&myip=203.0.113.5")
    assert answer.lines == ("good 203.0.113.5", "nochg 203.0.113.5")


def test_v6_only_request_keeps_a_v4_only_host_without_a(env: Env) -> None:
    env.send(f"hostname=v6only.{ZONE}&myip=2001:db8::55")
    assert env.addresses(f"v6only.{ZONE}", "A") == []
    assert env.addresses(f"v6only.{ZONE}", "AAAA") == ["2001:db8::55"]


def test_separate_v4_and_v6_updaters_do_not_clobber_each_other(env: Env) -> None:
    env.send(f"hostname=home.{ZONE}&myip=203.0.113.5", client="203.0.113.5")
    env.send(f"hostname=home.{ZONE}", client="2001:db8::77")
    env.send(f"hostname=home.{ZONE}", client="203.0.113.6")
    assert env.addresses(f"home.{ZONE}", "A") == ["203.0.113.6"]
    assert env.addresses(f"home.{ZONE}", "AAAA") == ["2001:db8::77"]


def test_dnserr_when_the_journal_cannot_be_written(env: Env) -> None:
    before = env.snapshot()
    env.store.journal.conn.execute("PRAGMA busy_timeout = 0")  # fail at once, not in 5 s
    other = sqlite3.connect(env.store.journal.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another writer holds the journal
    try:
        answer = env.send(f"hostname=home.{ZONE},bob.{ZONE},nas.{ZONE}&myip=192.0.2.101")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert answer.lines == ("dnserr", "nohost", "nochg 192.0.2.101")
    assert env.snapshot() == before
    # and once the journal is writable again, the same request succeeds
    assert env.send(f"hostname=home.{ZONE}&myip=192.0.2.101").lines == ("good 192.0.2.101",)


def test_911_on_an_unexpected_fault(env: Env) -> None:
    before = env.snapshot()

    def broken() -> config_mod.Config:
        raise RuntimeError("boom")

    env.service = Dyndns2(env.store, broken, env.counted.append)
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("911",)
    assert env.service.server_error().lines == ("911",)
    assert env.snapshot() == before
    assert env.counted == ["911", "911"]


def test_versions_written_by_others_are_seen_first(env: Env) -> None:
    """A rollback/import by another process: dyndns2 compares with the journal's state."""
    other = Store(Journal(env.store.journal.path))
    zone = other.open_zone(dns.name.from_text(ZONE))
    records = zone.record_set()
    changed = {
        r for r in records if not (r[1] == dns.rdatatype.A and r[0].lower().startswith(b"\x04home"))
    }
    changed.add(
        (dns.name.from_text(f"home.{ZONE}").to_wire(), dns.rdatatype.A, 60, bytes([203, 0, 113, 5]))
    )
    other.replace_content(zone.origin, changed, "root", "local", "import")
    other.journal.close()
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("nochg 203.0.113.5",)


def test_another_process_writing_first_is_retried_not_dnserr(env: Env) -> None:
    """Another process journals between the request's read and its commit: the
    store's writer computes the change again on the newer version (`good`, not
    `dnserr`), and the other process's change stays."""
    other = Store(Journal(env.store.journal.path))
    origin = dns.name.from_text(ZONE)
    other.open_zone(origin)
    nas = (
        dns.name.from_text(f"nas.{ZONE}").to_wire(),
        dns.rdatatype.A,
        60,
        bytes([203, 0, 113, 9]),
    )
    calls: list[int] = []

    def interloper(zone: ZoneData, changeset: Changeset, channel: str) -> None:
        calls.append(zone.serial)
        if len(calls) == 1:
            old = zone.records_at(nas[0], dns.rdatatype.A)
            other.write(origin, lambda z: Changeset(removed=old, added=[nas]), "op", "l", "import")

    env.store.checks.append(interloper)
    serial = env.zone.serial
    try:
        answer = env.send(f"hostname=home.{ZONE}&myip=203.0.113.5")
    finally:
        other.journal.close()
    assert answer.lines == ("good 203.0.113.5",)
    assert calls == [serial, serial + 1]
    assert env.addresses(f"home.{ZONE}", "A") == ["203.0.113.5"]
    assert env.addresses(f"nas.{ZONE}", "A") == ["203.0.113.9"]
    assert env.zone.serial == serial + 2
    assert set(env.store.journal.load(zone_key(origin))) == env.zone.record_set()


def test_good_when_a_listener_raises(env: Env) -> None:
    seen: list[int] = []

    def broken(zone: ZoneData, version: object) -> None:
        raise RuntimeError("mirror down")

    env.store.add_listener(broken)
    env.store.add_listener(lambda zone, version: seen.append(zone.serial))
    serial = env.zone.serial
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("good 203.0.113.5",)
    latest = env.store.journal.versions(zone_key(dns.name.from_text(ZONE)), 1)[0]
    assert latest.serial == serial + 1 == env.zone.serial and latest.channel == "dyndns2"
    assert seen == [serial + 1] and list(env.store.hook_errors.values()) == [1]


def test_one_log_line_per_update(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ddns_server.dyndns2")
    env.send(f"hostname=home.{ZONE},new.{ZONE}&myip=203.0.113.5", client="198.51.100.3")
    lines = [r.getMessage() for r in caplog.records if "->" in r.getMessage()]
    assert len(lines) == 2
    assert "alice" in lines[0] and "198.51.100.3" in lines[0]
    assert f"home.{ZONE} A 192.0.2.100 -> 203.0.113.5" in lines[0]
    assert f"new.{ZONE} A - -> 203.0.113.5" in lines[1]


# ---------------------------------------------------------------------------
# authentication: the password cache, client certificates


def test_verified_password_is_cached_until_the_ttl(env: Env) -> None:
    first = env.service.start(env.request(f"hostname=home.{ZONE}"), env.now)
    assert isinstance(first, Verify)  # the slow check is asked for
    env.service.finish(first, verify_password(first.password, first.password_hash), env.now)
    env.now += 300
    assert isinstance(
        env.service.start(env.request(f"hostname=home.{ZONE}"), env.now), UpdateResponse
    )
    env.now += 599  # each hit extends the entry
    assert isinstance(
        env.service.start(env.request(f"hostname=home.{ZONE}"), env.now), UpdateResponse
    )
    env.now += 601
    assert isinstance(env.service.start(env.request(f"hostname=home.{ZONE}"), env.now), Verify)


def test_cache_never_accepts_another_password(env: Env) -> None:
    env.send(f"hostname=home.{ZONE}")
    step = env.service.start(env.request(f"hostname=home.{ZONE}", password="wrong"), env.now)
    assert isinstance(step, Verify)
    assert env.service.finish(
        step, verify_password(step.password, step.password_hash), env.now
    ).lines == ("badauth",)


def test_changed_password_hash_ends_the_cached_login(env: Env) -> None:
    env.send(f"hostname=home.{ZONE}")
    alice = replace(env.config.users[0], password_hash=cheap_hash("new-pw"))
    env.config = replace(env.config, users=(alice, *env.config.users[1:]))
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("badauth",)
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5", password="new-pw").lines == (
        "good 203.0.113.5",
    )


def test_auth_cache_can_be_disabled(make_env: Callable[..., Env]) -> None:
    env = make_env(auth_cache_ttl=0)
    env.send(f"hostname=home.{ZONE}")
    assert isinstance(env.service.start(env.request(f"hostname=home.{ZONE}"), env.now), Verify)


def test_unknown_user_is_checked_against_a_dummy_hash(env: Env) -> None:
    step = env.service.start(env.request(f"hostname=home.{ZONE}", user="mallory"), env.now)
    assert isinstance(step, Verify)
    assert step.password_hash.startswith("$scrypt$ln=4,r=8,p=1$")  # same cost as real users
    assert not verify_password("x", step.password_hash)


def test_client_certificate_cn_logs_in(env: Env) -> None:
    answer = env.send(f"hostname=carol.{ZONE}&myip=203.0.113.5", user=None, cert_cn="carol-router")
    assert answer.lines == ("good 203.0.113.5",)
    version = env.store.journal.versions(zone_key(dns.name.from_text(ZONE)), 1)[0]
    assert version.who == "carol"
    # an unknown CN is no login at all
    answer = env.send(f"hostname=carol.{ZONE}&myip=203.0.113.6", user=None, cert_cn="nobody")
    assert (answer.lines, answer.status) == (("badauth",), 401)


# ---------------------------------------------------------------------------
# abuse limits (fake clock)


def fail(env: Env, times: int, user: str = "alice", client: str = "198.51.100.66") -> None:
    for _ in range(times):
        answer = env.send(f"hostname=home.{ZONE}", user=user, password="wrong", client=client)
        assert answer.lines == ("badauth",)


def test_failed_logins_per_user_and_source_then_abuse_until_the_window_passes(env: Env) -> None:
    fail(env, 10, client="198.51.100.66")
    before = env.snapshot()
    # right password, from the address that failed: refused while it is locked
    answer = env.send(f"hostname=home.{ZONE}&myip=203.0.113.5", client="198.51.100.66")
    assert answer.lines == ("abuse",)
    assert env.snapshot() == before
    # other users are served normally
    assert env.send(f"hostname=bob.{ZONE}&myip=203.0.113.5", user="bob").lines == (
        "good 203.0.113.5",
    )
    env.now += 601
    answer = env.send(f"hostname=home.{ZONE}&myip=203.0.113.5", client="198.51.100.66")
    assert answer.lines == ("good 203.0.113.5",)


def test_failures_from_elsewhere_never_lock_a_user_out_of_her_own_address(env: Env) -> None:
    """Issue 14 item 12: wrong passwords for alice from other addresses (one
    each, and ten from one) must not lock alice out from hers."""
    for i in range(20):
        fail(env, 1, client=f"198.51.100.{100 + i}")
    fail(env, 10, client="198.51.100.66")
    # the correct password from a source that has not failed goes through
    # (198.51.100.1 is the default client; no cached login helps here)
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("good 203.0.113.5",)
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.7", client="198.51.100.2").lines == (
        "good 203.0.113.7",
    )


def test_failed_logins_per_source(env: Env) -> None:
    for i in range(10):  # ten different user names from one address
        env.send(f"hostname=home.{ZONE}", user=f"guess{i}", client="198.51.100.66")
    before = env.snapshot()
    assert env.send(
        f"hostname=bob.{ZONE}&myip=203.0.113.5", user="bob", client="198.51.100.66"
    ).lines == ("abuse",)
    assert env.snapshot() == before
    # the same user from another address is fine
    assert env.send(
        f"hostname=bob.{ZONE}&myip=203.0.113.5", user="bob", client="198.51.100.67"
    ).lines == ("good 203.0.113.5",)


def test_ipv6_sources_are_counted_per_64(env: Env) -> None:
    for i in range(10):
        env.send(f"hostname=home.{ZONE}", user=f"guess{i}", client=f"2001:db8:1:2::{i + 1}")
    answer = env.send(f"hostname=bob.{ZONE}", user="bob", client="2001:db8:1:2:ffff::1")
    assert answer.lines == ("abuse",)
    answer = env.send(f"hostname=bob.{ZONE}&myip=203.0.113.5", user="bob", client="2001:db8:1:3::1")
    assert answer.lines == ("good 203.0.113.5",)


def test_a_router_with_a_cached_password_is_not_locked_out(env: Env) -> None:
    """An attacker failing alice's logins must not cut off alice's own router."""
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("good 203.0.113.5",)
    fail(env, 10, client="198.51.100.66")
    wrong = env.send(f"hostname=home.{ZONE}", password="wrong", client="198.51.100.66")
    assert wrong.lines == ("abuse",)  # the attacker is stopped ...
    # ... while the router, whose password was verified before, goes on
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.6").lines == ("good 203.0.113.6",)


def test_failed_login_limits_are_configurable(make_env: Callable[..., Env]) -> None:
    env = make_env(max_failed_logins=3, failed_login_window=60)
    fail(env, 3)
    assert env.send(f"hostname=home.{ZONE}", client="198.51.100.66").lines == ("abuse",)
    env.now += 61
    answer = env.send(f"hostname=home.{ZONE}&myip=203.0.113.5", client="198.51.100.66")
    assert answer.lines == ("good 203.0.113.5",)


def test_flood_of_requests_is_limited_but_routers_are_not(make_env: Callable[..., Env]) -> None:
    env = make_env(max_updates_per_minute=5)
    for _ in range(5):
        assert env.send(f"hostname=home.{ZONE}&myip=192.0.2.100").lines == ("nochg 192.0.2.100",)
        env.now += 1
    before = env.snapshot()
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("abuse",)
    assert env.snapshot() == before
    assert env.send(f"hostname=bob.{ZONE}&myip=203.0.113.5", user="bob").lines == (
        "good 203.0.113.5",
    )
    env.now += 60
    assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("good 203.0.113.5",)
    # a router polling every minute for a day is never limited
    for _ in range(24 * 60):
        env.now += 60
        assert env.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("nochg 203.0.113.5",)


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "192.168.1.10", "fd00::5", "::1"])
def test_private_addresses_follow_the_setting(make_env: Callable[..., Env], ip: str) -> None:
    allowed = make_env()  # the default: LAN names are a real use
    assert allowed.send(f"hostname=home.{ZONE}&myip={ip}").lines == (f"good {ip}",)
    refused = make_env(allow_private_addresses=False)
    before = refused.snapshot()
    assert refused.send(f"hostname=home.{ZONE}&myip={ip}").lines == ("dnserr",)
    # the client's own private address, without myip, is refused the same way
    assert refused.send(f"hostname=home.{ZONE}", client=ip).lines == ("dnserr",)
    assert refused.snapshot() == before
    assert refused.send(f"hostname=home.{ZONE}&myip=203.0.113.5").lines == ("good 203.0.113.5",)


def test_default_limits() -> None:
    limits = config_mod.Dyndns()
    assert (limits.max_failed_logins, limits.failed_login_window) == (10, 600)
    assert limits.max_updates_per_minute == 30


# ---------------------------------------------------------------------------
# parsing helpers and the trusted-proxy decision

TRUSTED = networks(["127.0.0.1/32", "10.0.0.0/8", "::1/128"])
PROXY_CASES = [
    # (peer, X-Forwarded-For headers, trusted, client)
    ("203.0.113.1", [], TRUSTED, "203.0.113.1"),
    ("203.0.113.1", ["198.51.100.9"], TRUSTED, "203.0.113.1"),  # untrusted peer: header ignored
    ("127.0.0.1", ["198.51.100.9"], TRUSTED, "198.51.100.9"),
    ("127.0.0.1", ["198.51.100.9"], (), "127.0.0.1"),  # no trusted proxies: never believed
    ("127.0.0.1", [], TRUSTED, "127.0.0.1"),
    ("127.0.0.1", ["1.1.1.1, 198.51.100.9"], TRUSTED, "198.51.100.9"),  # spoofed left part
    ("127.0.0.1", ["198.51.100.9, 10.1.2.3"], TRUSTED, "198.51.100.9"),  # two proxies
    ("127.0.0.1", ["198.51.100.9", "10.1.2.3"], TRUSTED, "198.51.100.9"),  # two headers
    ("127.0.0.1", ["10.9.9.9, 10.1.2.3"], TRUSTED, "10.9.9.9"),  # all trusted: leftmost
    ("127.0.0.1", ["198.51.100.9, garbage"], TRUSTED, "127.0.0.1"),  # malformed: stop
    ("127.0.0.1", ["198.51.100.9:4711"], TRUSTED, "198.51.100.9"),
    ("127.0.0.1", ["[2001:db8::9]:4711"], TRUSTED, "2001:db8::9"),
    ("::1", ["2001:db8::9"], TRUSTED, "2001:db8::9"),
    ("::ffff:127.0.0.1", ["198.51.100.9"], TRUSTED, "198.51.100.9"),  # v4-mapped peer
    ("127.0.0.1", [" 198.51.100.9 "], TRUSTED, "198.51.100.9"),
]


@pytest.mark.parametrize("peer, headers, trusted, client", PROXY_CASES)
def test_client_address(peer: str, headers: list[str], trusted: tuple, client: str) -> None:  # type: ignore[type-arg]
    assert client_address(peer, headers, trusted) == client


@pytest.mark.parametrize(
    "header, expected",
    [
        ("Basic " + base64.b64encode(b"alice:pw").decode(), ("alice", "pw")),
        ("basic " + base64.b64encode(b"alice:p:w").decode(), ("alice", "p:w")),
        ("Basic " + base64.b64encode("jörg:pä".encode()).decode(), ("jörg", "pä")),
        ("Basic " + base64.b64encode("jörg:pä".encode("latin-1")).decode(), ("jörg", "pä")),
        ("Basic " + base64.b64encode(b"alice").decode(), None),
        ("Basic " + base64.b64encode(b":pw").decode(), None),
        ("Bearer abc", None),
        ("Basic", None),
        ("Basic !!!", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_basic_auth(header: str | None, expected: tuple[str, str] | None) -> None:
    assert parse_basic_auth(header) == expected


@pytest.mark.parametrize(
    "text, ok",
    [
        ("home.dyn.example.test", True),
        ("home.dyn.example.test.", True),
        ("home", False),
        ("", False),
        ("a..b", False),
        ("a b.c", False),
        ("x." * 130 + "test", False),
    ],
)
def test_parse_fqdn(text: str, ok: bool) -> None:
    assert (parse_fqdn(text) is not None) == ok


def test_parse_addresses_first_of_each_family() -> None:
    v4, v6 = parse_addresses({"myip": ["203.0.113.1,203.0.113.2,2001:db8::1"]}, "198.51.100.1")
    assert (str(v4), str(v6)) == ("203.0.113.1", "2001:db8::1")


def test_source_key() -> None:
    assert source_key("203.0.113.7") == "203.0.113.7"
    assert source_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"


def test_reply_words() -> None:
    assert [r.value for r in Reply] == [
        "good",
        "nochg",
        "badauth",
        "nohost",
        "notfqdn",
        "numhost",
        "abuse",
        "badagent",
        "dnserr",
        "911",
    ]


# ---------------------------------------------------------------------------
# the config keys of this endpoint (dyndns:, tls.client_ca_file, users[].client_cert_cn)

CONFIG_BASE = """\
zones:
  - name: dyn.example.test
    file: zone.db
"""


def load(tmp_path: Path, text: str) -> config_mod.Config:
    (tmp_path / "zone.db").write_text(ZONE_TEXT)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "ddns.yaml"
    path.write_text(CONFIG_BASE + text)
    return config_mod.load_config(path, environ={})


def config_problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(config_mod.ConfigError) as info:
        load(tmp_path, text)
    prefix = f"{tmp_path / 'ddns.yaml'}:"
    return [p.removeprefix(prefix) for p in info.value.problems]  # "LINE: key: message"


def test_config_dyndns_limits(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "dyndns:\n  max_failed_logins: 5\n  failed_login_window: 60\n"
        "  max_updates_per_minute: 12\n  auth_cache_ttl: 0\n  max_pending_logins: 8\n",
    )
    assert config.dyndns == config_mod.Dyndns(5, 60, 12, 0, 8)
    assert load(tmp_path, "").dyndns == config_mod.Dyndns()


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            "dyndns:\n  max_failed_logins: 0\n",
            "5: dyndns.max_failed_logins: 0 is out of range (expected >= 1)",
        ),
        (
            "dyndns:\n  failed_login_window: ten\n",
            "5: dyndns.failed_login_window: expected an integer, got a string",
        ),
        (
            "dyndns:\n  max_updates_per_minute: -1\n",
            "5: dyndns.max_updates_per_minute: -1 is out of range (expected >= 1)",
        ),
        (
            "dyndns:\n  auth_cache_ttl: 86401\n",
            "5: dyndns.auth_cache_ttl: 86401 is out of range (expected 0..86400)",
        ),
        (
            "dyndns:\n  max_logins: 3\n",
            "5: dyndns.max_logins: unknown key (expected one of max_failed_logins, "
            "failed_login_window, max_updates_per_minute, auth_cache_ttl, max_pending_logins, "
            "allow_private_addresses)",
        ),
        ("dyndns: 3\n", "4: dyndns: expected a mapping, got an integer"),
    ],
)
def test_config_dyndns_problems(tmp_path: Path, text: str, problem: str) -> None:
    assert config_problems(tmp_path, text) == [problem]


def test_config_dyndns_allow_private_addresses(tmp_path: Path) -> None:
    config = load(tmp_path, "dyndns:\n  allow_private_addresses: false\n")
    assert config.dyndns.allow_private_addresses is False
    assert load(tmp_path, "").dyndns.allow_private_addresses is True
    assert config_problems(tmp_path, "dyndns:\n  allow_private_addresses: 1\n") == [
        "5: dyndns.allow_private_addresses: expected a boolean, got an integer"
    ]


def test_config_client_certificate_users(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "tls:\n  client_ca_file: ca.pem\n"
        "users:\n"
        "  - name: router\n    client_cert_cn: home-router\n    hosts: [home.dyn.example.test]\n",
    )
    assert config.tls.client_ca_file == tmp_path / "ca.pem"
    (user,) = config.users
    assert (user.name, user.client_cert_cn, user.password_hash) == ("router", "home-router", "")


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            "users:\n  - name: r\n    client_cert_cn: cn\n    hosts: [home.dyn.example.test]\n",
            "6: users[0].client_cert_cn: needs tls.client_ca_file (the CA of the certificates)",
        ),
        (
            "tls:\n  client_ca_file: ca.pem\nusers:\n"
            "  - name: a\n    client_cert_cn: cn\n    hosts: [home.dyn.example.test]\n"
            "  - name: b\n    client_cert_cn: cn\n    hosts: [home.dyn.example.test]\n",
            "11: users[1].client_cert_cn: duplicate client_cert_cn (first at line 8)",
        ),
        (
            "users:\n  - name: r\n    hosts: [home.dyn.example.test]\n",
            "5: users[0]: one of password_hash, password_hash_file, password_hash_env is required",
        ),
        (
            "tls:\n  client_ca_file: nope.pem\n",
            "5: tls.client_ca_file: no such file: " + "{tmp}/nope.pem",
        ),
    ],
)
def test_config_client_certificate_problems(tmp_path: Path, text: str, problem: str) -> None:
    assert config_problems(tmp_path, text) == [problem.replace("{tmp}", str(tmp_path))]
