"""`log: {format: json}`: every stderr line is one JSON object; one audit line
per committed change, whatever the channel, with stable field names."""

from __future__ import annotations

import json
from pathlib import Path

import dns.query
import dns.rcode
import dns.update
import yaml
from conftest import ServerFactory
from harness import TsigKey, example_zone_text, wait_for

ZONE = "dyn.example.test"
FIELDS = ["time", "level", "logger", "message", "zone", "serial", "channel", "who", "source"]


def json_lines(text: str) -> list[dict[str, object]]:
    """Every line the server wrote (the harness adds "----- start #N" lines)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("----- ")]
    return [json.loads(line) for line in lines]


def audits(text: str) -> list[dict[str, object]]:
    return [e for e in json_lines(text) if e["logger"] == "ddns_server.audit"]


def test_json_lines_and_an_audit_line_per_change(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    key = TsigKey.generate("audit-key")
    server = server_factory(
        {ZONE: example_zone_text()},
        {"keys": [key.config()], "log": {"format": "json", "level": "info"}},
        zone_extra={ZONE: {"update_policy": [{"grant": "audit-key", "match": "zonesub"}]}},
    )
    update = dns.update.UpdateMessage(ZONE, keyring=key.keyring())
    update.replace("audited", 60, "A", "192.0.2.99")
    reply = dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR
    after_update = server.soa_serial()
    (tmp_path / "new.zone").write_text(example_zone_text() + "imported IN A 192.0.2.98\n")
    proc = server.cli("zone", "import", ZONE, str(tmp_path / "new.zone"))
    assert proc.returncode == 0, proc.stderr
    imported = int(proc.stdout)
    wait_for(lambda: len(audits(server.log_text())) >= 2, timeout=5, message="two audit lines")

    entries = json_lines(server.log_text())  # every line parses: nothing else is written
    assert any(e["logger"] == "ddns_server" and "listening" in str(e["message"]) for e in entries)
    first, second = audits(server.log_text())[:2]
    assert list(first)[: len(FIELDS)] == FIELDS
    assert (first["zone"], first["serial"], first["channel"], first["who"]) == (
        f"{ZONE}.",
        after_update,
        "rfc2136",
        "audit-key",
    )
    assert str(first["source"]).startswith("127.0.0.1")
    assert (first["removed"], first["added"]) == (1, 2)  # the old SOA; the new SOA and A
    assert (second["serial"], second["channel"], second["source"]) == (imported, "import", "local")
    assert first["level"] == "info" and str(first["time"]).endswith("Z")

    # SIGHUP: back to human lines
    server.config["log"] = {"format": "text"}
    server.config_path.write_text(yaml.safe_dump(server.config))
    server.reload()
    wait_for(lambda: "INFO ddns_server: configuration reloaded" in server.log_text(), timeout=5)


def test_default_is_human_lines(server_factory: ServerFactory) -> None:
    server = server_factory({ZONE: example_zone_text()})
    assert "INFO ddns_server: ddns-server listening on dns" in server.log_text()
    assert not any(line.startswith("{") for line in server.log_text().splitlines())
