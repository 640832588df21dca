"""A restarted server serves the journal's latest version, never its zone file again.

Issue 2: "Killing the server with SIGKILL and starting it again serves the
same latest version." The zone file only seeds a zone the journal has never
held; edits to it afterwards are ignored (zone import is the way to use them).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from conftest import ServerFactory
from harness import ServerProcess, dig, wait_for

DATA = Path(__file__).resolve().parents[1] / "data"
ZONE = "dyn.example.test"
SERIAL = 2026112501


def served(server: ServerProcess, name: str, rdtype: str = "A") -> list[str]:
    return dig(server, f"{name}.{ZONE}.", rdtype).rdata()


def versions(server: ServerProcess) -> list[tuple[int, str]]:
    proc = server.cli("journal", "log", ZONE, "--json")
    assert proc.returncode == 0, proc.stderr
    return [(entry["serial"], entry["channel"]) for entry in json.loads(proc.stdout)]


def import_text(server: ServerProcess, text: str, folder: Path) -> int:
    path = folder / "import.zone"
    path.write_text(text)
    proc = server.cli("zone", "import", ZONE, str(path))
    assert proc.returncode == 0, proc.stderr
    serial = int(proc.stdout)
    wait_for(lambda: server.soa_serial() == serial, timeout=2.0, message=f"serial {serial}")
    return serial


def test_sigkill_and_restart_serve_the_latest_version(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    source = (DATA / "example.zone").read_text()
    server = server_factory({ZONE: source})
    assert server.soa_serial() == SERIAL
    changed = source.replace("192.0.2.10", "192.0.2.123") + 'late IN TXT "after the seed"\n'
    serial = import_text(server, changed, tmp_path)
    assert serial == SERIAL + 1
    history = versions(server)
    assert history == [(SERIAL + 1, "import"), (SERIAL, "seed")]

    server.kill()  # SIGKILL: no chance to flush or close anything
    assert server.returncode == -signal.SIGKILL
    # The seed file changes while the server is down: it must be ignored.
    server.zone_file(ZONE).write_text(
        source.replace("2026112501", "2030010100").replace("192.0.2.10", "198.51.100.1")
        + "fromfile IN A 198.51.100.2\n"
    )
    server.start()

    assert server.soa_serial() == SERIAL + 1
    assert served(server, "www") == ["192.0.2.123"]
    assert dig(server, f"late.{ZONE}.", "TXT").rdata() == ['"after the seed"']
    assert dig(server, f"fromfile.{ZONE}.", "A").status == "NXDOMAIN"
    assert versions(server) == history  # never re-seeded
    exported = server.cli("zone", "export", ZONE).stdout
    assert "198.51.100" not in exported and "192.0.2.123" in exported


def test_clean_restart_and_several_versions(server_factory: ServerFactory, tmp_path: Path) -> None:
    source = (DATA / "example.zone").read_text()
    server = server_factory({ZONE: source})
    text = source
    for i in range(3):
        text += f"v{i} IN A 192.0.2.{200 + i}\n"
        import_text(server, text, tmp_path)
    rollback = server.cli("journal", "rollback", ZONE, str(SERIAL + 1))
    assert rollback.returncode == 0, rollback.stderr
    latest = int(rollback.stdout)
    wait_for(lambda: server.soa_serial() == latest, timeout=2.0)
    history = versions(server)
    assert history[0] == (latest, "rollback")

    server.restart()  # SIGTERM, then start again
    assert server.soa_serial() == latest
    assert served(server, "v0") == ["192.0.2.200"]
    assert dig(server, f"v1.{ZONE}.", "A").status == "NXDOMAIN"
    assert versions(server) == history

    server.kill()
    server.start()
    assert server.soa_serial() == latest
    assert versions(server) == history
