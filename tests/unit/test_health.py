"""The pure failover core: target states (hysteresis), selection, the checker's
versions through the store, ownership, reload; and the zones[].failover config.

A fake clock, fake probe hooks (results are fed by hand) and a real Store on a
temporary SQLite journal.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.rdatatype
import pytest
from zonetext import records_from_text

from ddns_server import model
from ddns_server.config import load_config
from ddns_server.errors import ConfigError
from ddns_server.health import HealthChecker, Hooks, OwnedByChecker, Target, select
from ddns_server.health_report import (
    health_status,
    read_status_file,
    status_text,
    write_status_file,
)
from ddns_server.journal import Journal
from ddns_server.store import Store
from ddns_server.zonedata import Changeset, name_to_wire

ORIGIN = dns.name.from_text("dyn.example.test")
A = dns.rdatatype.A
ZONE_TEXT = """
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 604800 300
@ NS ns1
ns1 A 127.0.0.1
www A 192.0.2.10
www TXT "keep me"
wan1 A 198.51.100.1
wan2 A 203.0.113.1
"""


# ---------------------------------------------------------------------------
# the state machine


def feed(target: Target, results: str, rise: int = 2, fall: int = 3) -> list[str]:
    """Results as a string of + and -; the state after each."""
    states = []
    for i, c in enumerate(results):
        target.observe(c == "+", rise, fall, float(i))
        states.append(target.state())
    return states


def test_the_first_result_decides_then_rise_and_fall_count_in_a_row() -> None:
    assert feed(Target("192.0.2.1", "x"), "+--+---") == [
        "up", "up", "up", "up", "up", "up", "down",
    ]  # fmt: skip
    assert feed(Target("192.0.2.1", "x"), "-+-++") == ["down", "down", "down", "down", "up"]


def test_a_flapping_target_holds_its_state() -> None:
    target = Target("192.0.2.1", "x")
    states = feed(target, "+" + "--+" * 10)
    assert set(states) == {"up"}
    target = Target("192.0.2.1", "x")
    assert set(feed(target, "-" + "+-" * 10)) == {"down"}


def test_since_is_when_the_state_changed() -> None:
    target = Target("192.0.2.1", "x")
    assert target.observe(True, 2, 2, 10.0)
    assert not target.observe(False, 2, 2, 11.0)
    assert target.observe(False, 2, 2, 12.0)
    assert target.since == 12.0 and target.failures == 2


def targets(*states: bool | None) -> list[Target]:
    out = []
    for i, up in enumerate(states):
        target = Target(f"192.0.2.{i + 1}", "x")
        target.up = up
        out.append(target)
    return out


@pytest.mark.parametrize(
    ("states", "policy", "on_all_down", "served", "all_down"),
    [
        ((True, True), "first", "all", [1], False),
        ((False, True), "first", "all", [2], False),
        ((True, False, True), "all", "all", [1, 3], False),
        ((False, False), "first", "all", [1, 2], True),
        ((False, False), "all", "none", [], True),
        ((), "first", "all", [], False),
    ],
)
def test_select(
    states: tuple[bool, ...], policy: str, on_all_down: str, served: list[int], all_down: bool
) -> None:
    chosen, down = select(targets(*states), policy, on_all_down)
    assert [t.address for t in chosen] == [f"192.0.2.{i}" for i in served]
    assert down is all_down


# ---------------------------------------------------------------------------
# the checker over a real store


def spec(targets: tuple[str | dns.name.Name, ...], **kwargs: object) -> model.Failover:
    return model.Failover(
        name=dns.name.from_text("www", ORIGIN),
        rdtype=A,
        targets=targets,
        check=model.FailoverCheck("tcp", 443),
        **kwargs,  # type: ignore[arg-type]
    )


def zone(*failovers: model.Failover) -> model.Zone:
    return model.Zone(name=ORIGIN, file=None, failover=failovers)


class Probes:
    """Fake hooks: what the edge would be asked to probe."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[str, float]] = []
        self.wakes = 0

    def hooks(self) -> Hooks:
        return Hooks(
            schedule=lambda target, delay: self.scheduled.append((target.address, delay)),
            wake=self.wake,
        )

    def wake(self) -> None:
        self.wakes += 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    journal = Journal(tmp_path / "journal.sqlite3")
    clock = iter(range(1_700_000_000, 1_800_000_000))
    store = Store(journal, clock=lambda: float(next(clock)))
    store.open_zone(ORIGIN, records_from_text(ZONE_TEXT, ORIGIN, "test"))
    yield store
    journal.close()


def checker_for(store: Store, *failovers: model.Failover) -> tuple[HealthChecker, Probes]:
    probes = Probes()
    checker = HealthChecker(store, lambda: 0.0, probes.hooks())
    store.add_listener(checker.on_version)
    store.checks.append(checker.check_owned)
    checker.configure([zone(*failovers)], start=True)
    return checker, probes


def served(store: Store) -> list[str]:
    data = store.zone_for(ORIGIN)
    assert data is not None
    low = name_to_wire(dns.name.from_text("www", ORIGIN)).lower()
    return sorted(".".join(str(b) for b in rr[3]) for rr in data.records_at(low, A))


def result(checker: HealthChecker, address: str, ok: bool, now: float = 1.0) -> bool:
    target = next(
        t for s in checker.sets.values() for t in s.targets.values() if t.address == address
    )
    return checker.record(target, ok, 0.001, "" if ok else "refused", now)


def versions(store: Store) -> list[tuple[str, str, str]]:
    return [(v.who, v.source, v.channel) for v in store.journal.versions("dyn.example.test.", None)]


def test_nothing_is_written_before_every_candidate_has_a_result(store: Store) -> None:
    checker, probes = checker_for(store, spec(("192.0.2.21", "192.0.2.22")))
    # First probes spread over the interval at start.
    assert [a for a, _ in probes.scheduled] == ["192.0.2.21", "192.0.2.22"]
    assert all(0 <= delay < 10 for _, delay in probes.scheduled)
    result(checker, "192.0.2.21", True)
    assert checker.evaluate() == 0
    assert served(store) == ["192.0.2.10"]
    result(checker, "192.0.2.22", True)
    assert checker.evaluate() == 1
    assert served(store) == ["192.0.2.21"]
    who, source, channel = versions(store)[0]
    assert (who, channel) == ("failover:www A", "health")
    assert "192.0.2.21 up" in source


def test_switch_over_and_back_and_no_version_while_nothing_changes(store: Store) -> None:
    checker, _ = checker_for(store, spec(("192.0.2.21", "192.0.2.22"), fall=2, rise=2))
    result(checker, "192.0.2.21", True)
    result(checker, "192.0.2.22", True)
    checker.evaluate()
    count = len(versions(store))
    for _ in range(5):
        result(checker, "192.0.2.21", True)
        result(checker, "192.0.2.22", True)
        assert checker.evaluate() == 0
    result(checker, "192.0.2.21", False)  # one failure: held
    assert checker.evaluate() == 0
    result(checker, "192.0.2.21", False)
    assert checker.evaluate() == 1
    assert served(store) == ["192.0.2.22"]
    assert "192.0.2.21 down (refused)" in versions(store)[0][1]
    result(checker, "192.0.2.21", True)
    assert checker.evaluate() == 0
    result(checker, "192.0.2.21", True)
    assert checker.evaluate() == 1
    assert served(store) == ["192.0.2.21"]
    assert len(versions(store)) == count + 2


def test_all_down_fails_open_or_removes(store: Store) -> None:
    checker, _ = checker_for(store, spec(("192.0.2.21", "192.0.2.22"), policy="all"))
    result(checker, "192.0.2.21", False)
    result(checker, "192.0.2.22", False)
    checker.evaluate()
    assert served(store) == ["192.0.2.21", "192.0.2.22"]
    assert checker.status()[0]["all_down"] is True
    checker.configure([zone(spec(("192.0.2.21", "192.0.2.22"), on_all_down="none"))])
    checker.evaluate()
    assert served(store) == []
    data = store.zone_for(ORIGIN)
    assert data is not None  # the TXT at www stays
    assert data.records_at(name_to_wire(dns.name.from_text("www", ORIGIN)).lower())


def test_names_are_read_again_on_every_version(store: Store) -> None:
    wan1, wan2 = (dns.name.from_text(n, ORIGIN) for n in ("wan1", "wan2"))
    checker, probes = checker_for(store, spec((wan1, wan2)))
    result(checker, "198.51.100.1", True)
    result(checker, "203.0.113.1", True)
    checker.evaluate()
    assert served(store) == ["198.51.100.1"]
    probes.scheduled.clear()
    # A router moves wan1 (another channel's version): the new address is probed at once.
    low = name_to_wire(wan1)

    def move(data: object) -> Changeset:
        from ddns_server.zonedata import ZoneData

        assert isinstance(data, ZoneData)
        return Changeset(data.records_at(low, A), [(low, A, 60, bytes([198, 51, 100, 2]))])

    store.write(ORIGIN, move, "router", "192.0.2.99", "dyndns2")
    assert probes.scheduled == [("198.51.100.2", 0.0)]
    assert checker.evaluate() == 0  # waits for the new candidate's first result
    result(checker, "198.51.100.2", True)
    assert checker.evaluate() == 1
    assert served(store) == ["198.51.100.2"]
    assert "198.51.100.1 no longer a target" in versions(store)[0][1]


def test_other_channels_may_not_change_the_rrset(store: Store) -> None:
    checker, _ = checker_for(store, spec(("192.0.2.21",)))
    www = name_to_wire(dns.name.from_text("www", ORIGIN))
    before = store.zone_for(ORIGIN)
    assert before is not None
    serial = before.serial
    for channel in ("rfc2136", "dyndns2", "api"):
        with pytest.raises(OwnedByChecker, match="failover RRset"):
            store.write(
                ORIGIN, lambda z: Changeset([], [(www, A, 60, bytes(4))]), "k", "s", channel
            )
    assert before.serial == serial
    # Another type at the same name is not the checker's.
    txt = (www, dns.rdatatype.TXT, 60, b"\x02hi")
    assert store.write(ORIGIN, lambda z: Changeset([], [txt]), "k", "s", "rfc2136") is not None
    # An operator's import/rollback may; the checker then writes its RRset again.
    store.write(ORIGIN, lambda z: Changeset(z.records_at(www.lower(), A), []), "me", "l", "import")
    result(checker, "192.0.2.21", True)
    assert checker.evaluate() == 1
    assert served(store) == ["192.0.2.21"]
    assert checker.owns(www.lower(), A) and not checker.owns(www.lower(), dns.rdatatype.AAAA)


def test_reload_keeps_the_state_of_unchanged_probes(store: Store) -> None:
    first = spec(("192.0.2.21",))
    checker, probes = checker_for(store, first)
    result(checker, "192.0.2.21", True, now=5.0)
    checker.evaluate()
    target = next(iter(next(iter(checker.sets.values())).targets.values()))
    # policy/ttl change: same probe, the state stands
    checker.configure([zone(spec(("192.0.2.21",), ttl=99, policy="all"))])
    again = next(iter(next(iter(checker.sets.values())).targets.values()))
    assert again is target and again.up is True and again.since == 5.0
    checker.evaluate()
    data = store.zone_for(ORIGIN)
    assert data is not None
    assert [rr[2] for rr in data.records_at(name_to_wire(first.name).lower(), A)] == [99]
    # a different check: probed afresh
    changed = model.Failover(
        name=first.name, rdtype=A, targets=first.targets, check=model.FailoverCheck("tcp", 80)
    )
    checker.configure([zone(changed)])
    fresh = next(iter(next(iter(checker.sets.values())).targets.values()))
    assert fresh is not target and fresh.up is None and not target.active
    # removed: no longer owned
    checker.configure([zone()])
    assert not checker.sets and not fresh.active


def test_status_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "health-status.json"
    write_status_file(path, [{"name": "www"}], 100.0)
    assert read_status_file(path, 110.0) is not None
    assert read_status_file(path, 1000.0) is None  # stale: no server writes it


# ---------------------------------------------------------------------------
# config


def write_config(tmp_path: Path, failover: str) -> Path:
    zone_file = tmp_path / "zone"
    zone_file.write_text(ZONE_TEXT)
    path = tmp_path / "ddns.yaml"
    body = textwrap.indent(textwrap.dedent(failover).strip(), "      ")
    path.write_text(
        "data_dir: data\nzones:\n  - name: dyn.example.test\n    file: zone\n"
        f"    failover:\n{body}\n"
    )
    return path


def test_config_defaults(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            """
            - name: www
              targets: ["192.0.2.1", wan2]
              check: {protocol: https}
            """,
        )
    )
    (failover,) = config.zones[0].failover
    assert failover.name == dns.name.from_text("www.dyn.example.test")
    assert failover.targets == ("192.0.2.1", dns.name.from_text("wan2.dyn.example.test"))
    assert (failover.rdtype, failover.policy, failover.on_all_down) == (A, "first", "all")
    assert (failover.interval, failover.timeout, failover.rise, failover.fall) == (10, 2, 2, 3)
    assert failover.ttl == 30
    assert failover.check == model.FailoverCheck("https", 443, "/", (), None)


def test_config_full(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            """
            - name: "@"
              type: AAAA
              targets: ["2001:db8::1"]
              policy: all
              check:
                {protocol: http, port: 8080, path: /up, expect_status: [200, 204], host: a.test}
              interval: 0.5
              timeout: 0.25
              rise: 1
              fall: 1
              ttl: 5
              on_all_down: none
            """,
        )
    )
    (failover,) = config.zones[0].failover
    assert failover.name == ORIGIN and failover.rdtype == dns.rdatatype.AAAA
    assert failover.check == model.FailoverCheck("http", 8080, "/up", (200, 204), "a.test")
    assert (failover.interval, failover.timeout, failover.on_all_down) == (0.5, 0.25, "none")


@pytest.mark.parametrize(
    ("failover", "problems"),
    [
        ("- {name: www, targets: [192.0.2.1]}", ["check is required"]),
        ("- {name: www, targets: [], check: {protocol: tcp, port: 1}}", ["empty list"]),
        ("- {name: www, targets: [2001:db8::1], check: {protocol: tcp, port: 1}}", ["IPv4"]),
        ("- {name: www, targets: [www], check: {protocol: tcp, port: 1}}", ["its own target"]),
        ("- {name: www, targets: [a.other.test.], check: {protocol: tcp, port: 1}}", ["inside"]),
        ("- {name: www, targets: [a], check: {protocol: tcp}}", ["port is required"]),
        ("- {name: www, targets: [a], check: {protocol: ftp, port: 1}}", ["unknown protocol"]),
        ("- {name: www, targets: [a], check: {protocol: tcp, port: 1, path: /}}", ["only for"]),
        ("- {name: www, targets: [a], check: {protocol: http, path: x}}", ["invalid path"]),
        ("- {name: www, targets: [a], check: {protocol: http, expect_status: 99}}", ["99"]),
        ("- {name: www, type: MX, targets: [a], check: {protocol: http}}", ["A or AAAA"]),
        ("- {name: www, targets: [a], check: {protocol: http}, policy: any}", ["policy"]),
        ("- {name: www, targets: [a], check: {protocol: http}, on_all_down: x}", ["on_all_down"]),
        (
            "- {name: www, targets: [a], check: {protocol: http}, interval: 1, timeout: 2}",
            ["longer"],
        ),
        ("- {name: www, targets: [a], check: {protocol: http}, rise: 0}", ["out of range"]),
        ("- {name: www, targets: [a], check: {protocol: http}, intervall: 1}", ["unknown key"]),
        ("- {name: www, targets: [a, a], check: {protocol: http}}", ["duplicate target"]),
        (
            "- {name: www, targets: [a], check: {protocol: http}}\n"
            "- {name: www.dyn.example.test., targets: [b], check: {protocol: http}}",
            ["duplicate failover www.dyn.example.test A (first at line 6)"],
        ),
    ],
)
def test_config_problems_name_the_line(tmp_path: Path, failover: str, problems: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, failover))
    text = str(info.value)
    assert ":6: zones[0].failover[0]" in text or ":7: zones[0].failover[1]" in text, text
    for problem in problems:
        assert problem in text, text


def test_health_status_without_a_server(tmp_path: Path) -> None:
    path = write_config(tmp_path, "- {name: www, targets: [192.0.2.1], check: {protocol: https}}")
    config = load_config(path)
    rows, running = health_status(config)
    assert running is None
    assert rows[0]["served"] == [] and rows[0]["targets"][0]["state"] == "unknown"
    assert status_text(rows, running).startswith("no running server")
