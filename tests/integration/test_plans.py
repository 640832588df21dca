"""Plans for whole-content changes from the command line: `--dry-run [--json]`,
the `--force` rail (max_change_share, apex NS), "no change", `journal undo`.

The real binary; most cases need no running server (the CLI writes the
journal itself); `journal undo` is checked against a running one too.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ServerFactory
from harness import ServerProcess, wait_for
from test_cli import (
    DATA,
    GOOD,
    PROPAGATION,
    SERIAL,
    ZONE,
    assert_user_error,
    cli,
    served,
    write_config,
)

SOURCE = (DATA / "example.zone").read_text()


def versions(path: Path) -> list[dict[str, object]]:
    proc = cli("journal", "log", "-c", str(path), ZONE, "--json")
    assert proc.returncode == 0, proc.stderr
    entries: list[dict[str, object]] = json.loads(proc.stdout)
    return entries


def export(path: Path) -> str:
    proc = cli("zone", "export", "-c", str(path), ZONE)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def zone_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def minimal(text: str) -> str:
    """The zone with only its SOA, apex NS and their addresses: most records deleted."""
    keep = []
    for line in text.splitlines():
        if line.startswith(("$", "@", "ns1")) or line.lstrip().startswith(("IN NS", "IN AAAA")):
            keep.append(line)
    return "\n".join(keep[:6]) + "\n"


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    export(path)  # seeds the journal
    new = zone_file(
        tmp_path, "new.zone", SOURCE.replace("192.0.2.10", "192.0.2.123") + "fresh IN A 192.0.2.7\n"
    )
    before = export(path)
    proc = cli("zone", "import", "-c", str(path), ZONE, str(new), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"- www.{ZONE}. 3600 IN A 192.0.2.10" in lines
    assert f"+ www.{ZONE}. 3600 IN A 192.0.2.123" in lines
    assert f"+ fresh.{ZONE}. 3600 IN A 192.0.2.7" in lines
    assert "1 removed, 2 added" in proc.stdout and "apex NS changed: no" in proc.stdout
    assert lines[-1] == "dry run: nothing changed"
    proc = cli("zone", "import", "-c", str(path), ZONE, str(new), "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert (plan["removed"], plan["added"], plan["apex_ns_changed"]) == (1, 2, False)
    assert plan["apex_soa_changed"] is False and plan["refused"] is None
    assert len(versions(path)) == 1 and export(path) == before
    # the same for a rollback and an undo
    proc = cli("zone", "import", "-c", str(path), ZONE, str(new))
    assert proc.returncode == 0 and int(proc.stdout) == SERIAL + 1, proc.stderr
    for args in (("journal", "rollback", ZONE, str(SERIAL)), ("journal", "undo", ZONE)):
        proc = cli(args[0], args[1], "-c", str(path), *args[2:], "--dry-run", "--json")
        assert proc.returncode == 0, proc.stderr
        plan = json.loads(proc.stdout)
        assert (plan["removed"], plan["added"], plan["apex_ns_changed"]) == (2, 1, False)
    assert len(versions(path)) == 2


def test_a_mass_deletion_needs_force(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    before = export(path)
    small = zone_file(tmp_path, "small.zone", minimal(SOURCE))
    (line,) = assert_user_error(cli("zone", "import", "-c", str(path), ZONE, str(small)))
    assert "--force" in line and "max_change_share" in line
    assert len(versions(path)) == 1 and export(path) == before  # nothing changed
    dry = json.loads(
        cli("zone", "import", "-c", str(path), ZONE, str(small), "--dry-run", "--json").stdout
    )
    assert dry["removed"] > dry["records"] / 2 and "--force" in dry["refused"]
    proc = cli("zone", "import", "-c", str(path), ZONE, str(small), "--force")
    assert proc.returncode == 0 and int(proc.stdout) == SERIAL + 1, proc.stderr
    # ... and so does undoing it? no: undo brings records back, it deletes nothing
    proc = cli("journal", "undo", "-c", str(path), ZONE)
    assert proc.returncode == 0 and int(proc.stdout) == SERIAL + 2, proc.stderr
    strip = lambda text: sorted(l for l in text.splitlines() if " SOA " not in l)  # noqa: E731, E741
    assert strip(export(path)) == strip(before)


def test_the_share_is_configurable(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD + "    max_change_share: 1\n")
    export(path)
    small = zone_file(tmp_path, "small.zone", minimal(SOURCE))
    proc = cli("zone", "import", "-c", str(path), ZONE, str(small))
    assert proc.returncode == 0 and int(proc.stdout) == SERIAL + 1, proc.stderr
    bad = write_config(tmp_path / "bad", GOOD + "    max_change_share: 2\n")
    (line,) = assert_user_error(cli("check-config", "-c", str(bad)))
    assert "max_change_share" in line and "0..1" in line


def test_an_apex_ns_change_needs_force(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    before = export(path)
    moved = zone_file(
        tmp_path, "moved.zone", SOURCE.replace("ns2.example.net.", "ns3.example.net.")
    )
    (line,) = assert_user_error(cli("zone", "import", "-c", str(path), ZONE, str(moved)))
    assert "apex NS" in line and "--force" in line
    assert len(versions(path)) == 1 and export(path) == before
    dry = json.loads(
        cli("zone", "import", "-c", str(path), ZONE, str(moved), "--dry-run", "--json").stdout
    )
    assert dry["apex_ns_changed"] is True and (dry["removed"], dry["added"]) == (1, 1)
    proc = cli("zone", "import", "-c", str(path), ZONE, str(moved), "--force")
    assert proc.returncode == 0 and int(proc.stdout) == SERIAL + 1, proc.stderr
    # undoing it changes the apex NS again: the same rail
    (line,) = assert_user_error(cli("journal", "undo", "-c", str(path), ZONE))
    assert "--force" in line
    assert cli("journal", "undo", "-c", str(path), ZONE, "--force").returncode == 0


def test_no_change_writes_no_version_and_says_so(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    export(path)
    same = zone_file(tmp_path, "same.zone", SOURCE)
    for args in (
        ("zone", "import", "-c", str(path), ZONE, str(same)),
        ("journal", "rollback", "-c", str(path), ZONE, str(SERIAL)),
    ):
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("no change:") and str(SERIAL) in proc.stdout
        dry = json.loads(cli(*args, "--dry-run", "--json").stdout)
        assert dry["empty"] is True and (dry["removed"], dry["added"]) == (0, 0)
    assert len(versions(path)) == 1
    (line,) = assert_user_error(cli("journal", "undo", "-c", str(path), ZONE))
    assert "no earlier version" in line


def test_journal_undo_while_serving(server_factory: ServerFactory, tmp_path: Path) -> None:
    server: ServerProcess = server_factory({ZONE: SOURCE})
    new = zone_file(tmp_path, "new.zone", SOURCE.replace("192.0.2.10", "192.0.2.111"))
    assert server.cli("zone", "import", ZONE, str(new)).returncode == 0
    wait_for(lambda: server.soa_serial() == SERIAL + 1, timeout=PROPAGATION)
    assert served(server, "www") == ["192.0.2.111"]
    proc = server.cli("journal", "undo", ZONE)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == SERIAL + 2
    wait_for(lambda: server.soa_serial() == SERIAL + 2, timeout=PROPAGATION)
    assert served(server, "www") == ["192.0.2.10"]
    latest = json.loads(server.cli("journal", "log", ZONE, "--json").stdout)[0]
    assert latest["channel"] == "rollback" and (latest["removed"], latest["added"]) == (2, 2)
    assert "Traceback" not in server.log_text()
