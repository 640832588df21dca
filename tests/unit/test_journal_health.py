"""The journal's health follows what its writes did (issue 14 item 2).

A full disk is simulated on the real journal with SQLite's
`PRAGMA max_page_count` (the journal cannot grow, as on a full file system).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ddns_server.journal import Journal
from ddns_server.journal_health import JournalHealth
from ddns_server.metrics import Metrics
from ddns_server.store import Store, records_from_file
from ddns_server.zonedata import Changeset, Record, name_to_wire

DATA = Path(__file__).resolve().parents[1] / "data"
ORIGIN = dns.name.from_text("dyn.example.test")


def txt(owner: str, text: str) -> Record:
    rd = dns.rdata.from_text(dns.rdataclass.IN, "TXT", f'"{text}"')
    return (name_to_wire(dns.name.from_text(owner, ORIGIN)), rd.rdtype, 300, rd.to_wire())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    journal = Journal(tmp_path / "journal.sqlite3")
    s = Store(journal)
    s.open_zone(ORIGIN, records_from_file(DATA / "example.zone", ORIGIN))
    yield s
    journal.close()


def big_change(n: int) -> Changeset:
    """Enough new rows that the journal must grow to hold them."""
    return Changeset(added=[txt(f"h{n}-{i}", "x" * 200) for i in range(200)])


def fill_up(store: Store) -> None:
    conn = store.journal.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def gauge(registry: CollectorRegistry) -> str:
    lines = generate_latest(registry).decode().splitlines()
    return next(line for line in lines if line.startswith("ddns_journal_healthy "))


def test_a_failed_commit_is_unhealthy_until_a_write_succeeds(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    Metrics(registry, lambda: store.zones, lambda: store.health.healthy)
    zone = store.zone_for(ORIGIN)
    assert zone is not None
    assert store.health.healthy and gauge(registry) == "ddns_journal_healthy 1.0"
    serial = zone.serial
    fill_up(store)
    with caplog.at_level(logging.ERROR, "ddns_server"):
        with pytest.raises(Exception, match="full"):
            store.commit(zone, big_change(1), "key", "192.0.2.1", "rfc2136")
        with pytest.raises(Exception, match="full"):  # a second failure: no second log line
            store.commit(zone, big_change(2), "key", "192.0.2.1", "rfc2136")
    assert zone.serial == serial  # nothing was published
    assert not store.health.healthy
    assert "database or disk is full" in (store.health.reason or "")
    assert gauge(registry) == "ddns_journal_healthy 0.0"
    failures = [r for r in caplog.records if "journal write failed" in r.getMessage()]
    assert len(failures) == 1 and "database or disk is full" in failures[0].getMessage()
    # the probe fails as commits do while the journal cannot grow
    with pytest.raises(Exception, match="full"):
        store.journal.write_probe()
    # space again: the probe succeeds, and the state follows
    store.journal.conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.journal.write_probe()
    store.health.record_success()
    assert store.health.healthy and gauge(registry) == "ddns_journal_healthy 1.0"


def test_a_successful_commit_makes_it_healthy_again(store: Store) -> None:
    zone = store.zone_for(ORIGIN)
    assert zone is not None
    fill_up(store)
    with pytest.raises(Exception, match="full"):
        store.commit(zone, big_change(1), "key", "192.0.2.1", "rfc2136")
    assert not store.health.healthy
    store.journal.conn.execute("PRAGMA max_page_count = 1073741823")
    store.commit(zone, big_change(2), "key", "192.0.2.1", "rfc2136")
    assert store.health.healthy and store.health.reason is None


def test_the_probe_never_waits_for_another_writer(store: Store, tmp_path: Path) -> None:
    other = Journal(tmp_path / "journal.sqlite3")
    other.conn.execute("BEGIN IMMEDIATE")
    try:
        assert store.journal.write_probe() is False  # inconclusive, at once
    finally:
        other.conn.execute("ROLLBACK")
        other.close()
    assert store.journal.write_probe() is True


def test_health_logs_changes_not_every_failure(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    health = JournalHealth(lambda: now[0])
    with caplog.at_level(logging.WARNING, "ddns_server"):
        for _ in range(5):
            health.record_failure("OperationalError: database or disk is full")
        now[0] = 130.0
        health.record_failure("OperationalError: disk I/O error")
        health.record_success()
        health.record_success()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "after 6 failure(s) in 30 s" in messages[-1]
