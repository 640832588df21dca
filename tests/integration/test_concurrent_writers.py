"""Two processes writing one zone: a stream of RFC 2136 updates through the
running server (UDP, group commit) while `zone import` and `journal rollback`
run from the command line (issue 13's proof; issue 14 item 4).

Every write lands or is refused with a clear error, nothing prints a
traceback, and at the end the journal's content (`zone export`) equals what
the server serves (AXFR).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import dns.zone
from conftest import ServerFactory
from harness import TsigKey, wait_for
from test_cli import DATA, SERIAL, ZONE, zone_records

CLI_WRITES = 4  # imports and rollbacks, alternately, while the stream runs
MAX_SECONDS = 30.0  # a bound, never reached on a sane machine
STREAMS = 3  # clients sending updates side by side (UDP: group commits of several)


def test_cli_writers_and_an_update_stream(server_factory: ServerFactory, tmp_path: Path) -> None:
    key = TsigKey.generate("stream-key")
    source = (DATA / "example.zone").read_text()
    server = server_factory(
        {ZONE: source},
        {"keys": [key.config()]},
        zone_extra={
            ZONE: {
                "update_policy": [{"grant": key.name, "match": "zonesub"}],
                "allow_transfer": ["127.0.0.0/8"],
                # The rollbacks go back to the seed version: a fast stream
                # must not prune it away meanwhile.
                "journal_max_versions": 1000000,
            }
        },
    )
    imported = tmp_path / "imported.zone"
    imported.write_text(source.replace("192.0.2.10", "192.0.2.123"))
    rcodes: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def stream(first: int) -> None:
        ring = key.keyring()
        i = first
        while not stop.is_set():
            i += STREAMS
            update = dns.update.UpdateMessage(ZONE + ".", keyring=ring, keyname=key.name)
            update.replace(f"s{i % 40}", 60, "A", f"198.51.100.{i % 250 + 1}")
            try:
                response = dns.query.udp(update, "127.0.0.1", port=server.dns_port, timeout=5)
                rcodes.append(response.rcode())
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(f"update {i}: {e!r}")

    threads = [threading.Thread(target=stream, args=(n,)) for n in range(STREAMS)]
    for thread in threads:
        thread.start()
    results = []
    try:
        deadline = time.monotonic() + MAX_SECONDS
        turn = 0
        while turn < CLI_WRITES and time.monotonic() < deadline:
            turn += 1
            if turn % 2:
                args = ("zone", "import", ZONE, str(imported), "--force")
            else:
                args = ("journal", "rollback", ZONE, str(SERIAL), "--force")
            results.append((args, server.cli(*args)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures[:5]
    assert len(rcodes) > 20 and set(rcodes) == {dns.rcode.NOERROR}, rcodes
    assert len(results) == CLI_WRITES
    for args, proc in results:
        assert "Traceback" not in proc.stderr, proc.stderr
        # --force: nothing may refuse these; each landed as a new version (or "no change")
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stdout.strip().isdigit() or proc.stdout.startswith("no change:"), proc.stdout
    assert "Traceback" not in server.log_text()

    # The journal's final content is what the server serves.
    log = json.loads(server.cli("journal", "log", ZONE, "--json", "--limit", "1").stdout)
    latest = int(log[0]["serial"])
    wait_for(
        lambda: server.soa_serial() == latest, timeout=10.0, message="the newest version served"
    )
    exported = server.cli("zone", "export", ZONE).stdout
    transfer = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", ZONE, port=server.dns_port, timeout=5))
    served_text = transfer.to_text(relativize=False)
    assert zone_records(served_text) == zone_records(exported)
