"""Start-up never seeds over an existing journal (issue 14 items 1 and 15).

Only a journal this server creates from nothing is seeded from zone files.
An existing journal that is empty, corrupt, or has history for some zones
but none for a configured one stops `serve` with one line and exit 1; the
way on is an explicit command (`zone import`) or moving the file away.
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

from conftest import ServerFactory
from harness import EXAMPLE_ZONE_NAME, ServerProcess, example_zone_text, wait_for

NEW_ZONE = "new.example.test"
NEW_ZONE_TEXT = f"""\
$ORIGIN {NEW_ZONE}.
$TTL 300
@ IN SOA ns1 hostmaster 7 3600 600 604800 300
@ IN NS ns1
ns1 IN A 192.0.2.1
www IN A 192.0.2.80
"""


BIG_ZONE = "big.example.test"
BIG_HOSTS = 30_000  # seeding it takes a while: the server is killed meanwhile


def big_zone_text() -> str:
    lines = [
        f"$ORIGIN {BIG_ZONE}.",
        "$TTL 300",
        "@ IN SOA ns1 hostmaster 1 3600 600 604800 300",
        "@ IN NS ns1",
        "ns1 IN A 192.0.2.1",
    ]
    lines += [f"h{i} IN A 10.{i >> 16}.{(i >> 8) & 255}.{i & 255}" for i in range(BIG_HOSTS)]
    return "\n".join(lines) + "\n"


def serve_fails(server: ServerProcess) -> str:
    """`serve` exits 1 with one line on stderr, no traceback; returns the line."""
    proc = server.cli("serve", timeout=20)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def journal_file(server: ServerProcess) -> Path:
    return server.data_dir / "journal.sqlite3"


def test_an_empty_journal_file_is_an_error_not_a_seed(server_factory: ServerFactory) -> None:
    server = server_factory({EXAMPLE_ZONE_NAME: example_zone_text()})
    server.stop()
    path = journal_file(server)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"")  # what a failed copy or `> journal.sqlite3` leaves
    line = serve_fails(server)
    assert str(path) in line and "empty (0 bytes)" in line
    assert "zone import" in line and "move the file away" in line
    assert path.read_bytes() == b""  # left as found
    path.unlink()  # moved away deliberately: now the zone file seeds a new journal
    server.start()
    assert server.soa_serial() == 2026112501


def test_a_corrupt_journal_is_an_error(server_factory: ServerFactory) -> None:
    server = server_factory({EXAMPLE_ZONE_NAME: example_zone_text()})
    server.stop()
    path = journal_file(server)
    path.write_bytes(b"this is not SQLite" * 100)
    line = serve_fails(server)
    assert "not an SQLite database" in line
    assert path.read_bytes() == b"this is not SQLite" * 100


def test_a_zone_missing_from_a_journal_with_history_needs_zone_import(
    server_factory: ServerFactory,
) -> None:
    server = server_factory({EXAMPLE_ZONE_NAME: example_zone_text()})
    server.stop()
    zone_file = server.directory / "zones" / f"{NEW_ZONE}.zone"
    zone_file.write_text(NEW_ZONE_TEXT)
    server.config["zones"].append({"name": NEW_ZONE, "file": str(zone_file)})
    server.write_config()
    line = serve_fails(server)
    assert f"none for configured zone {NEW_ZONE}" in line
    assert f"ddns-server zone import {NEW_ZONE} FILE" in line
    # the documented way to add a zone: import it, then serve
    proc = server.cli("zone", "import", NEW_ZONE, str(zone_file))
    assert proc.returncode == 0, proc.stderr
    server.start()
    assert server.soa_serial(NEW_ZONE) == 7
    assert server.soa_serial() == 2026112501


def test_a_zone_added_by_reload_is_refused_until_imported(server_factory: ServerFactory) -> None:
    server = server_factory({EXAMPLE_ZONE_NAME: example_zone_text()})
    zone_file = server.directory / "zones" / f"{NEW_ZONE}.zone"
    zone_file.write_text(NEW_ZONE_TEXT)
    server.config["zones"].append({"name": NEW_ZONE, "file": str(zone_file)})
    server.write_config()
    server.reload()
    wait_for(lambda: f"none for configured zone {NEW_ZONE}" in server.log_text(), timeout=10)
    assert server.query(f"{NEW_ZONE}.", "SOA").rcode() == 5  # REFUSED: not served
    proc = server.cli("zone", "import", NEW_ZONE, str(zone_file))
    assert proc.returncode == 0, proc.stderr
    server.reload()
    wait_for(lambda: server.query(f"{NEW_ZONE}.", "SOA").rcode() == 0, timeout=10)


def test_journal_files_are_private(server_factory: ServerFactory) -> None:
    server = server_factory({EXAMPLE_ZONE_NAME: example_zone_text()})
    path = journal_file(server)
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def journaled_versions(path: Path) -> int:
    """Versions another process can see in the journal (0 while it has none)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return 0
    try:
        return int(conn.execute("SELECT count(*) FROM versions").fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0
    finally:
        conn.close()


def test_a_kill_at_the_first_seed_commit_leaves_a_journal_the_next_start_takes(
    tmp_path: Path,
) -> None:
    """The zones' seeds are one transaction: a kill -9 as soon as any version
    is journaled never leaves some zones seeded and others not (which the
    next start would refuse, as a journal restored too old)."""
    server = ServerProcess(
        tmp_path / "server",
        {EXAMPLE_ZONE_NAME: example_zone_text(), BIG_ZONE: big_zone_text()},
    )
    try:
        server.start(wait=False)
        wait_for(
            lambda: journaled_versions(journal_file(server)) or not server.running(),
            timeout=60,
            interval=0.002,
            message="the first journaled version",
        )
        server.kill()
        server.start()
        assert server.soa_serial(EXAMPLE_ZONE_NAME) == 2026112501
        assert server.soa_serial(BIG_ZONE) == 1
        assert server.query(f"h{BIG_HOSTS - 1}.{BIG_ZONE}", "A").answer
    finally:
        server.stop()
