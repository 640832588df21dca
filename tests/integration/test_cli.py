"""`python -m ddns_server ...` as a subprocess: check-config, keygen, zone, journal.

Exit status 0 on success, 1 on a user error with one line per problem on
stderr (naming the file and line, or the value at fault), 2 on bad usage;
never a traceback (INTERFACE.md). Commands that change a zone run beside a
live server, which must serve the change within 2 seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.zone
import pytest
from conftest import ServerFactory
from harness import REPO_ROOT, ServerProcess, dig, require_tool, run, wait_for

from ddns_server.config import read_key_file

DATA = Path(__file__).resolve().parents[1] / "data"
ZONE = "dyn.example.test"
SERIAL = 2026112501
# Within 2 seconds (INTERFACE.md: journal rollback, and zone import alike).
PROPAGATION = 2.0


def cli(
    *args: str, cwd: Path | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m ddns_server ARGS` with no config of its own unless -c is given."""
    env = dict(os.environ)
    env.pop("DDNS_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return run([sys.executable, "-m", "ddns_server", *args], input=input, env=env, cwd=cwd)


def assert_user_error(proc: subprocess.CompletedProcess[str], lines: int = 1) -> list[str]:
    """Exit 1, `lines` lines on stderr, no traceback; returns the lines."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = proc.stderr.splitlines()
    assert len(errors) == lines, proc.stderr
    return errors


def write_config(folder: Path, body: str, zone_text: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "example.zone").write_text(zone_text or (DATA / "example.zone").read_text())
    path = folder / "ddns.yaml"
    path.write_text(body)
    return path


GOOD = """\
data_dir: var
listen:
  dns: ["127.0.0.1:15353"]
  http: ["127.0.0.1:18080"]
zones:
  - name: dyn.example.test
    file: example.zone
"""


def served(server: ServerProcess, name: str, rdtype: str = "A") -> list[str]:
    return dig(server, f"{name}.{ZONE}.", rdtype).rdata()


def journal(server: ServerProcess) -> list[dict[str, object]]:
    proc = server.cli("journal", "log", ZONE, "--json")
    assert proc.returncode == 0, proc.stderr
    entries: list[dict[str, object]] = json.loads(proc.stdout)
    return entries


# -- check-config --------------------------------------------------------------------------


def test_check_config_ok(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    proc = cli("check-config", "-c", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"
    # $DDNS_CONFIG is the default
    env_proc = run(
        [sys.executable, "-m", "ddns_server", "check-config"],
        env={**os.environ, "DDNS_CONFIG": str(path), "PYTHONPATH": str(REPO_ROOT)},
        cwd=tmp_path,
    )
    assert env_proc.returncode == 0 and env_proc.stdout.strip() == "OK"


BAD_CONFIGS = {
    "unknown key": (GOOD + "colour: blue\n", [r"ddns\.yaml:8: colour: unknown key"]),
    "unknown zone key": (
        GOOD + "    colour: blue\n",
        [r"ddns\.yaml:8: zones\[0\]\.colour: unknown key"],
    ),
    "bad address": (
        GOOD.replace('"127.0.0.1:15353"', '"999.0.0.1:53"'),
        [r"ddns\.yaml:3: listen\.dns\[0\]: .*999\.0\.0\.1"],
    ),
    "missing zone file": (
        GOOD.replace("file: example.zone", "file: nowhere.zone"),
        [r"ddns\.yaml:7: zones\[0\]\.file: .*nowhere\.zone"],
    ),
    "several problems": (
        GOOD.replace('"127.0.0.1:18080"', '"localhost:80"') + "typo: 1\n",
        [r"ddns\.yaml:4: listen\.http\[0\]: .*localhost", r"ddns\.yaml:8: typo: unknown key"],
    ),
    "yaml syntax": ("data_dir: [unclosed\n", [r"ddns\.yaml:\d+: YAML syntax error"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_one_line_per_problem(tmp_path: Path, case: str) -> None:
    body, patterns = BAD_CONFIGS[case]
    path = write_config(tmp_path, body)
    proc = cli("check-config", "-c", str(path))
    errors = assert_user_error(proc, len(patterns))
    for line, pattern in zip(errors, patterns, strict=True):
        assert line.startswith(str(path)), line
        assert re.search(pattern, line), line
    assert proc.stdout == ""


def test_bad_zone_file_names_file_and_line(tmp_path: Path) -> None:
    text = (DATA / "example.zone").read_text().replace("192.0.2.25", "192.0.2.256")
    path = write_config(tmp_path, GOOD, text)
    (line,) = assert_user_error(cli("check-config", "-c", str(path)))
    number = next(i for i, row in enumerate(text.splitlines(), 1) if "192.0.2.256" in row)
    assert re.match(rf"{re.escape(str(tmp_path / 'example.zone'))}:{number}: ", line), line


def test_missing_config_file(tmp_path: Path) -> None:
    (line,) = assert_user_error(cli("check-config", "-c", str(tmp_path / "none.yaml")))
    assert str(tmp_path / "none.yaml") in line


def test_serve_with_a_bad_config_exits_1(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD + "colour: blue\n")
    (line,) = assert_user_error(cli("serve", "-c", str(path)))
    assert "colour: unknown key" in line


# -- usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["journal"],
        ["journal", "log"],
        ["journal", "diff", ZONE, "not-a-serial"],
        ["journal", "rollback", ZONE, "-5"],
        ["journal", "log", ZONE, "--limit", "0"],
        ["zone", "import", ZONE],
        ["keygen"],
        ["check-config", "--bogus"],
    ],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "usage:" in proc.stderr


# -- keygen --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "hmac-sha512", "hmac-md5"])
def test_keygen_reads_back(tmp_path: Path, algorithm: str) -> None:
    proc = cli("keygen", "home-key", "-a", algorithm)
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "home.key"
    path.write_text(proc.stdout)
    name, parsed_algorithm, secret = read_key_file(path)
    assert (name, parsed_algorithm) == ("home-key", algorithm)
    assert len(secret) >= 16
    assert cli("keygen", "home-key").stdout != proc.stdout  # a fresh secret every time


def test_keygen_bad_algorithm(tmp_path: Path) -> None:
    (line,) = assert_user_error(cli("keygen", "k", "-a", "hmac-sha3"))
    assert "hmac-sha3" in line


def test_keygen_file_works_with_bind_tools(server_factory: ServerFactory, tmp_path: Path) -> None:
    """The keygen clause is the config's secret_file and `dig -k` / `nsupdate -k` read it."""
    require_tool("nsupdate")
    key_file = tmp_path / "tool.key"
    key_file.write_text(cli("keygen", "tool-key").stdout)
    server = server_factory(
        {ZONE: (DATA / "example.zone").read_text()},
        {"keys": [{"name": "tool-key", "secret_file": str(key_file)}]},
    )
    result = dig(server, "-k", str(key_file), f"www.{ZONE}.", "A")
    assert result.rdata() == ["192.0.2.10"]
    assert result.tsig and "NOERROR" in result.tsig[0][4]
    assert not any("validated" in note for note in result.notes), result.raw
    # nsupdate signs with it and verifies our signed answer (no policy: refused)
    script = (
        f"server 127.0.0.1 {server.dns_port}\nzone {ZONE}\n"
        f"update add new.{ZONE}. 60 A 192.0.2.5\nsend\n"
    )
    proc = run([require_tool("nsupdate"), "-k", str(key_file)], input=script)
    # the key was read, the request signed, our signed answer verified: only the
    # policy (none here) says no. A bad key would give "NOTAUTH(BADKEY)".
    assert proc.stderr.strip() == "update failed: REFUSED", proc.stderr
    assert server.soa_serial() == SERIAL
    assert dig(server, f"new.{ZONE}.", "A").status == "NXDOMAIN"


# -- zone export / import -------------------------------------------------------------------


def zone_records(text: str) -> set[tuple[str, int, str, str]]:
    zone = dns.zone.from_text(text, ZONE, relativize=False)
    return {
        (name.to_text().lower(), rdataset.ttl, dns.rdatatype.to_text(rdataset.rdtype), rd.to_text())
        for name, rdataset in zone.iterate_rdatasets()
        for rd in rdataset
    }


def test_zone_export_equals_the_zone(server_factory: ServerFactory) -> None:
    source = (DATA / "example.zone").read_text()
    server = server_factory({ZONE: source})
    proc = server.cli("zone", "export", ZONE)
    assert proc.returncode == 0, proc.stderr
    assert zone_records(proc.stdout) == zone_records(source)
    assert proc.stdout.lstrip().startswith("$ORIGIN")
    (line,) = assert_user_error(server.cli("zone", "export", "unknown.test"))
    assert "unknown.test" in line


def test_zone_import_is_journaled_and_served(server_factory: ServerFactory, tmp_path: Path) -> None:
    source = (DATA / "example.zone").read_text()
    server = server_factory({ZONE: source})
    new_text = source.replace("192.0.2.10", "192.0.2.123").replace(
        "mail    IN A    192.0.2.25", "mail    IN A    192.0.2.26\nfresh   IN A    192.0.2.27"
    )
    new_file = tmp_path / "new.zone"
    new_file.write_text(new_text)
    proc = server.cli("zone", "import", ZONE, str(new_file))
    assert proc.returncode == 0, proc.stderr
    new_serial = int(proc.stdout.strip())
    assert new_serial == SERIAL + 1  # the file's serial is not newer: current + 1
    (latest, seed) = journal(server)
    assert latest["channel"] == "import" and latest["serial"] == new_serial
    assert seed["channel"] == "seed" and seed["serial"] == SERIAL
    wait_for(
        lambda: server.soa_serial() == new_serial,
        timeout=PROPAGATION,
        message="the imported version to be served",
    )
    assert served(server, "www") == ["192.0.2.123"]
    assert served(server, "mail") == ["192.0.2.26"]
    assert served(server, "fresh") == ["192.0.2.27"]
    exported = server.cli("zone", "export", ZONE).stdout
    expected = {r for r in zone_records(new_text) if r[2] != "SOA"}
    assert {r for r in zone_records(exported) if r[2] != "SOA"} == expected
    # importing the same content again makes no version, and says so
    again = server.cli("zone", "import", ZONE, str(new_file))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("no change:") and str(new_serial) in again.stdout
    assert len(journal(server)) == 2


def test_zone_import_of_a_bad_file_changes_nothing(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    source = (DATA / "example.zone").read_text()
    server = server_factory({ZONE: source})
    bad = tmp_path / "bad.zone"
    bad.write_text(source.replace("192.0.2.10", "not-an-address"))
    (line,) = assert_user_error(server.cli("zone", "import", ZONE, str(bad)))
    assert line.startswith(f"{bad}:"), line
    (line,) = assert_user_error(server.cli("zone", "import", ZONE, str(tmp_path / "none.zone")))
    assert "none.zone" in line
    (line,) = assert_user_error(server.cli("zone", "import", "other.test", str(DATA / "wild.zone")))
    assert "other.test" in line
    assert len(journal(server)) == 1
    assert server.soa_serial() == SERIAL
    assert served(server, "www") == ["192.0.2.10"]


# -- journal log / diff / rollback ----------------------------------------------------------


@pytest.fixture
def changed_server(server_factory: ServerFactory, tmp_path: Path) -> ServerProcess:
    """A server whose zone went through two imports: seed, +1 (www changed), +2 (added x)."""
    source = (DATA / "example.zone").read_text()
    server = server_factory({ZONE: source})
    first = tmp_path / "first.zone"
    first.write_text(source.replace("192.0.2.10", "192.0.2.111"))
    assert server.cli("zone", "import", ZONE, str(first)).returncode == 0
    second = tmp_path / "second.zone"
    second.write_text(first.read_text() + 'x IN TXT "second"\n')
    assert server.cli("zone", "import", ZONE, str(second)).returncode == 0
    wait_for(lambda: server.soa_serial() == SERIAL + 2, timeout=PROPAGATION)
    return server


def test_journal_log(changed_server: ServerProcess) -> None:
    proc = changed_server.cli("journal", "log", ZONE)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split()[:2] == ["SERIAL", "TIME"]
    assert [row.split()[0] for row in rows] == [str(SERIAL + 2), str(SERIAL + 1), str(SERIAL)]
    assert [row.split()[-3] for row in rows] == ["import", "import", "seed"]
    assert rows[0].split()[-2:] == ["-1", "+2"]  # the old SOA; the new SOA and x TXT
    entries = journal(changed_server)
    assert [e["serial"] for e in entries] == [SERIAL + 2, SERIAL + 1, SERIAL]
    for entry in entries:
        assert set(entry) == {"serial", "time", "who", "source", "channel", "removed", "added"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(entry["time"]))
        assert entry["who"] and entry["source"]
    assert entries[1]["removed"] == 2 and entries[1]["added"] == 2  # SOA and www A
    limited = json.loads(
        changed_server.cli("journal", "log", ZONE, "--json", "--limit", "1").stdout
    )
    assert [e["serial"] for e in limited] == [SERIAL + 2]
    (line,) = assert_user_error(changed_server.cli("journal", "log", "unknown.test"))
    assert "unknown.test" in line


def test_journal_diff(changed_server: ServerProcess) -> None:
    proc = changed_server.cli("journal", "diff", ZONE, str(SERIAL + 1))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    removed = [line[2:] for line in lines if line.startswith("- ")]
    added = [line[2:] for line in lines if line.startswith("+ ")]
    assert len(removed) + len(added) == len(lines)
    assert f"www.{ZONE}. 3600 IN A 192.0.2.10" in removed
    assert f"www.{ZONE}. 3600 IN A 192.0.2.111" in added
    assert any(" IN SOA " in r and f" {SERIAL} " in r for r in removed)
    assert any(" IN SOA " in a and f" {SERIAL + 1} " in a for a in added)
    (line,) = assert_user_error(changed_server.cli("journal", "diff", ZONE, "12345"))
    assert "12345" in line


def test_journal_rollback(changed_server: ServerProcess) -> None:
    proc = changed_server.cli("journal", "rollback", ZONE, str(SERIAL))
    assert proc.returncode == 0, proc.stderr
    new_serial = int(proc.stdout.strip())
    assert new_serial == SERIAL + 3  # a NEW version, never the old serial again
    wait_for(
        lambda: changed_server.soa_serial() == new_serial,
        timeout=PROPAGATION,
        message="the rolled-back version to be served",
    )
    assert served(changed_server, "www") == ["192.0.2.10"]
    assert dig(changed_server, f"x.{ZONE}.", "TXT").status == "NXDOMAIN"
    latest = journal(changed_server)[0]
    assert latest["channel"] == "rollback" and latest["serial"] == new_serial
    exported = changed_server.cli("zone", "export", ZONE).stdout
    original = (DATA / "example.zone").read_text()
    strip = lambda records: {r for r in records if r[2] != "SOA"}  # noqa: E731
    assert strip(zone_records(exported)) == strip(zone_records(original))


def test_rollback_to_an_unknown_serial(changed_server: ServerProcess) -> None:
    before = journal(changed_server)
    (line,) = assert_user_error(changed_server.cli("journal", "rollback", ZONE, "42"))
    assert "42" in line
    assert journal(changed_server) == before
    assert changed_server.soa_serial() == SERIAL + 2
    assert served(changed_server, "www") == ["192.0.2.111"]


def test_cli_without_a_journal(tmp_path: Path) -> None:
    """journal commands on a zone that was never served: one line, exit 1."""
    path = write_config(tmp_path, GOOD)
    (line,) = assert_user_error(cli("journal", "log", "-c", str(path), ZONE))
    assert ZONE in line
    (line,) = assert_user_error(cli("journal", "rollback", "-c", str(path), ZONE, "1"))
    assert ZONE in line


def test_zone_export_of_a_never_served_zone_writes_nothing(tmp_path: Path) -> None:
    """Export is read-only (issue 14: no path replaces journaled content
    without an explicit command): a never-served zone prints its seed file,
    says so, and neither creates nor seeds the journal."""
    path = write_config(tmp_path, GOOD)
    journal = tmp_path / "var" / "journal.sqlite3"
    proc = cli("zone", "export", "-c", str(path), ZONE)
    assert proc.returncode == 0, proc.stderr
    assert zone_records(proc.stdout) == zone_records((DATA / "example.zone").read_text())
    assert proc.stderr.strip() == (
        f"zone {ZONE}.: no version journaled yet; printing its file"
        f" {tmp_path / 'example.zone'} (nothing written)"
    )
    assert not journal.exists()
    # with a journal that exists (another zone's history or none): still no seed
    assert cli("journal", "log", "-c", str(path), ZONE).returncode == 1  # creates it
    assert journal.exists()
    before = journal.read_bytes()
    proc = cli("zone", "export", "-c", str(path), ZONE)
    assert proc.returncode == 0, proc.stderr
    assert zone_records(proc.stdout) == zone_records((DATA / "example.zone").read_text())
    (line,) = assert_user_error(cli("journal", "log", "-c", str(path), ZONE))
    assert "no version journaled yet" in line
    assert journal.read_bytes() == before


def test_zone_import_before_the_first_serve(tmp_path: Path) -> None:
    """The configured file seeds the zone, and the import is a version of its own."""
    path = write_config(tmp_path, GOOD)
    new = tmp_path / "new.zone"
    new.write_text((DATA / "example.zone").read_text().replace("192.0.2.10", "192.0.2.99"))
    proc = cli("zone", "import", "-c", str(path), ZONE, str(new))
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == SERIAL + 1
    log = json.loads(cli("journal", "log", "-c", str(path), ZONE, "--json").stdout)
    assert [(e["serial"], e["channel"]) for e in log] == [(SERIAL + 1, "import"), (SERIAL, "seed")]


def test_unusable_data_dir_is_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD.replace("data_dir: var", "data_dir: afile"))
    (tmp_path / "afile").write_text("not a folder")
    for args in (
        ("journal", "log", "-c", str(path), ZONE),
        ("zone", "export", "-c", str(path), ZONE),
    ):
        (line,) = assert_user_error(cli(*args))
        assert "afile" in line
