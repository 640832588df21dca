"""JSON log lines and the audit line (ddns_server.logs)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import dns.name
import dns.zone
import pytest

from ddns_server import logs
from ddns_server.journal import Version
from ddns_server.zonedata import ZoneData
from ddns_server.zonefile import records_from_zone


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def zone() -> ZoneData:
    origin = dns.name.from_text("dyn.example.test")
    text = "@ 300 IN SOA ns1 host 7 3600 600 604800 300\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n"
    records = records_from_zone(dns.zone.from_text(text, origin, relativize=False))
    return ZoneData.from_records(origin, records)


def test_json_audit_line_has_stable_fields(restore_root: None) -> None:
    out = io.StringIO()
    logs.configure("json", "info", out)
    logs.audit(zone(), Version(1, 8, 0.0, "home-key", "192.0.2.7#5353", "rfc2136", 1, 2))
    logging.getLogger("ddns_server").warning("two\nlines")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert list(first) == [
        "time",
        "level",
        "logger",
        "message",
        "zone",
        "serial",
        "channel",
        "who",
        "source",
        "removed",
        "added",
    ]
    assert first["level"] == "info" and first["logger"] == "ddns_server.audit"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert (first["zone"], first["serial"], first["channel"]) == ("dyn.example.test.", 8, "rfc2136")
    assert (first["who"], first["source"], first["removed"], first["added"]) == (
        "home-key",
        "192.0.2.7#5353",
        1,
        2,
    )
    assert first["message"] == (
        "zone dyn.example.test. serial 8 by home-key from 192.0.2.7#5353 via rfc2136 (-1 +2)"
    )
    assert second == {**second, "level": "warning", "message": "two\nlines"}
    assert "zone" not in second


def test_text_lines_stay_human_and_level_filters(restore_root: None) -> None:
    out = io.StringIO()
    logs.configure("text", "warning", out)
    logs.audit(zone(), Version(1, 8, 0.0, "alice", "192.0.2.7", "dyndns2", 0, 1))
    logging.getLogger("ddns_server").warning("kept")
    assert out.getvalue().count("\n") == 1 and "WARNING ddns_server: kept" in out.getvalue()
    logs.configure("text", "info", out)
    logs.audit(zone(), Version(1, 8, 0.0, "alice", "192.0.2.7", "dyndns2", 0, 1))
    assert "INFO ddns_server.audit: zone dyn.example.test. serial 8 by alice" in out.getvalue()
    assert "{" not in out.getvalue()


def test_exceptions_stay_on_one_json_line(restore_root: None) -> None:
    out = io.StringIO()
    logs.configure("json", "info", out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert "ValueError: boom" in entry["exception"]
