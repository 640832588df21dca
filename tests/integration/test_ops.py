"""Operations (issue 12): one-line errors, clear messages, backup and restore.

Every command runs as the real program (`python -m ddns_server`), as in
test_cli.py; the backup is taken from a live server during a stream of
RFC 2136 updates.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.update
import pytest
from conftest import ServerFactory
from harness import REPO_ROOT, TsigKey, example_zone_text, wait_for
from test_cli import GOOD, ZONE, assert_user_error, cli, write_config

from ddns_server.keys import read_key_file

DATA = Path(__file__).resolve().parents[1] / "data"


# -- first hour: no tracebacks ----------------------------------------------------------


def test_keygen_bad_name_is_one_line() -> None:
    (line,) = assert_user_error(cli("keygen", "bad key!"))
    assert "'bad key!'" in line and "no spaces" in line
    assert cli("keygen", "bad key!").stdout == ""


def test_passwd_ctrl_d_at_the_prompt() -> None:
    """Ctrl-D on a real terminal (a pty): one line, exit 1, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the program on the pty
        os.execve(sys.executable, [sys.executable, "-m", "ddns_server", "passwd"], env)
    output = b""
    deadline = time.monotonic() + 20
    sent = False
    reaped, status = 0, 0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the pty
                chunk = b""
            output += chunk
            if not chunk:
                break
        if not sent and b"Password:" in output:
            os.write(fd, b"\x04")  # Ctrl-D
            sent = True
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            break
    else:
        os.kill(pid, 9)
        raise AssertionError(f"passwd did not end: {output!r}")
    if not reaped:
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = output.decode(errors="replace")
    assert sent, text
    assert os.WEXITSTATUS(status) == 1, text
    assert "Traceback" not in text and "EOFError" not in text
    errors = [line for line in text.splitlines() if line.startswith("ddns-server:")]
    assert errors == ["ddns-server: no password given (end of input at the prompt)"], text


# -- first hour: messages that say what to fix ------------------------------------------


def test_bad_address_in_zone_file_names_token_and_why(tmp_path: Path) -> None:
    text = (DATA / "example.zone").read_text().replace("192.0.2.25", "192.0.2.256")
    path = write_config(tmp_path, GOOD, text)
    (line,) = assert_user_error(cli("check-config", "-c", str(path)))
    number = next(i for i, row in enumerate(text.splitlines(), 1) if "192.0.2.256" in row)
    assert line.startswith(f"{tmp_path / 'example.zone'}:{number}: "), line
    assert "'192.0.2.256' is not an IPv4 address" in line and "256 (> 255)" in line, line
    assert "malformed" not in line


def test_zone_file_of_another_zone_says_so(tmp_path: Path) -> None:
    text = (DATA / "example.zone").read_text().replace("dyn.example.test.", "other.test.")
    path = write_config(tmp_path, GOOD, text)
    (line,) = assert_user_error(cli("check-config", "-c", str(path)))
    assert "the file is for zone other.test." in line and "not dyn.example.test." in line, line
    assert "no SOA" not in line


def test_zone_import_of_an_unknown_zone(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    foreign = tmp_path / "foreign.zone"
    foreign.write_text((DATA / "example.zone").read_text().replace(ZONE + ".", "other.test."))
    (line,) = assert_user_error(
        cli("zone", "import", "-c", str(path), "unknown.test", str(foreign))
    )
    assert line == f"ddns-server: zone unknown.test. is not configured: add it to zones: in {path}"
    journal = tmp_path / "var" / "journal.sqlite3"
    if journal.exists():  # nothing written
        conn = sqlite3.connect(journal)
        assert conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 0
        conn.close()


def test_zone_import_of_a_foreign_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    foreign = tmp_path / "foreign.zone"
    foreign.write_text((DATA / "example.zone").read_text().replace(ZONE + ".", "other.test."))
    (line,) = assert_user_error(cli("zone", "import", "-c", str(path), ZONE, str(foreign)))
    assert "the file is for zone other.test." in line, line


# -- backup and restore -------------------------------------------------------------------


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _journal_serial(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT serial FROM versions ORDER BY id DESC LIMIT 1").fetchone()
        return int(row[0])
    finally:
        conn.close()


def test_backup_during_updates_restores_and_serves_its_serial(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    key = TsigKey.generate("stream-key")
    server = server_factory(
        {ZONE: example_zone_text()},
        {"keys": [key.config()]},
        zone_extra={ZONE: {"update_policy": [{"grant": "stream-key", "match": "zonesub"}]}},
    )
    first = server.soa_serial()
    stop = threading.Event()
    sent: list[int] = []
    failures: list[str] = []

    def stream() -> None:
        i = 0
        while not stop.is_set() and i < 5000:
            update = dns.update.UpdateMessage(ZONE, keyring=key.keyring())
            update.replace(f"h{i % 50}", 60, "A", f"198.51.100.{i % 250}")
            update.replace("log", 60, "TXT", f'"u{i}"')  # one record: update_limits
            reply = dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=5)
            if reply.rcode() != dns.rcode.NOERROR:
                failures.append(dns.rcode.to_text(reply.rcode()))
                return
            sent.append(i)
            i += 1

    writer = threading.Thread(target=stream)
    writer.start()
    try:
        wait_for(lambda: len(sent) >= 20, timeout=20, message="updates flowing")
        backup = tmp_path / "backups" / "journal.bak"
        proc = server.cli("backup", str(backup))
        assert proc.returncode == 0, proc.stderr
        wait_for(lambda: len(sent) >= 40, timeout=20, message="updates after the backup")
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not failures, failures
    assert f"{ZONE}. serial " in proc.stdout and "integrity check ok" in proc.stdout
    assert _integrity(backup) == "ok"
    held = _journal_serial(backup)
    assert first < held < server.soa_serial()  # taken mid-stream, later updates not in it

    # restore is refused while serve runs, and changes nothing: the same file
    # (a restore replaces it), with the same versions. Not its mtime: the
    # server's checkpoint thread may still be copying the last pages into it.
    live = server.data_dir / "journal.sqlite3"
    before = (live.stat().st_ino, _journal_serial(live))
    (line,) = assert_user_error(server.cli("restore", str(backup)))
    assert "restore refused" in line and f"pid {server.pid}" in line and "stop it first" in line
    assert (live.stat().st_ino, _journal_serial(live)) == before
    assert not live.with_name(live.name + ".before-restore").exists()

    latest = server.soa_serial()
    server.stop()
    proc = server.cli("restore", str(backup))
    assert proc.returncode == 0, proc.stderr
    assert f"{ZONE}. serial {held}" in proc.stdout
    journal = server.data_dir / "journal.sqlite3"
    assert _integrity(journal) == "ok"
    assert not Path(f"{journal}-wal").exists() or Path(f"{journal}-wal").stat().st_size == 0
    assert (server.data_dir / "journal.sqlite3.before-restore").is_file()
    server.start()
    assert server.soa_serial() == held != latest
    assert _journal_serial(journal) == held


def test_restore_refuses_a_damaged_file(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory({ZONE: example_zone_text()})
    server.stop()
    journal = server.data_dir / "journal.sqlite3"
    before = journal.read_bytes()
    bad = tmp_path / "bad.bak"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    (line,) = assert_user_error(server.cli("restore", str(bad)))
    assert str(bad) in line and "integrity" in line, line
    text = tmp_path / "text.bak"
    text.write_text("not a database\n" * 100)
    (line,) = assert_user_error(server.cli("restore", str(text)))
    assert "integrity" in line, line
    assert journal.read_bytes() == before


def test_backup_without_a_journal(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    (line,) = assert_user_error(cli("backup", "-c", str(path), str(tmp_path / "b.bak")))
    assert "no journal at" in line and "nothing to back up" in line


def test_serve_refuses_a_second_serve_on_one_data_dir(
    server_factory: ServerFactory,
) -> None:
    server = server_factory({ZONE: example_zone_text()})
    proc = subprocess.run(
        [sys.executable, "-m", "ddns_server", "serve", "-c", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    (line,) = assert_user_error(proc)
    assert "cannot start" in line and f"pid {server.pid}" in line
    assert server.running()


# -- first hour: the command's path, and the keygen comment of conf/ddns.yaml ---------------


def test_conf_keygen_comment_makes_a_private_ignored_key(tmp_path: Path) -> None:
    """The command in conf/ddns.yaml's comment, run from a checkout's root as written."""
    line = next(
        text.lstrip("# ").strip()
        for text in (REPO_ROOT / "conf" / "ddns.yaml").read_text().splitlines()
        if "keygen home-key" in text
    )
    assert line == "(umask 077; .venv/bin/ddns-server keygen home-key > conf/home.key)"
    venv_command = REPO_ROOT / ".venv" / "bin" / "ddns-server"
    if not venv_command.exists():
        pytest.skip("no .venv (run `make venv`)")
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    (tmp_path / "conf").mkdir()
    proc = subprocess.run(
        ["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    key = tmp_path / "conf" / "home.key"
    assert key.stat().st_mode & 0o777 == 0o600
    name, algorithm, secret = read_key_file(key)
    assert (name, algorithm, len(secret)) == ("home-key", "hmac-sha256", 32)
    if (REPO_ROOT / ".git").exists() and shutil.which("git"):
        ignored = subprocess.run(
            ["git", "check-ignore", "conf/home.key", "conf/alice.hash"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ignored.stdout.split() == ["conf/home.key", "conf/alice.hash"], ignored.stderr


COMMAND = re.compile(
    r"^\s*(?:\$ )?(?:\(umask 077; )?ddns-server"
    r" (keygen|passwd|zone|journal|check-config|backup|restore|serve)\b"
)


def test_docs_show_the_command_path() -> None:
    """In code blocks run from a checkout, the command is .venv/bin/ddns-server."""
    bare = []
    for doc in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        fenced = False
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif fenced and COMMAND.match(line):
                if not any(w in line for w in ("/etc/ddns-server", "docker", "podman")):
                    bare.append(f"{doc.name}:{number}: {line.strip()}")
        commands = [part for part in re.split(r"[`\n]", doc.read_text()) if COMMAND.match(part)]
        if doc.parent.name == "docs" and commands:
            assert ".venv/bin/ddns-server" in doc.read_text(), f"{doc.name} never says where"
    assert not bare, "\n".join(bare)


def test_backup_timer_units_as_documented(server_factory: ServerFactory, tmp_path: Path) -> None:
    """contrib/ddns-server-backup.{service,timer}: shown verbatim in operations.md,
    accepted by systemd-analyze, and the service's commands make a backup."""
    doc = (REPO_ROOT / "docs" / "operations.md").read_text()
    units = {}
    for name in ("ddns-server-backup.service", "ddns-server-backup.timer"):
        units[name] = (REPO_ROOT / "contrib" / name).read_text()
        assert units[name].strip() in doc, name
    analyze = shutil.which("systemd-analyze")
    if analyze:
        folder = tmp_path / "units"
        folder.mkdir()
        for name, text in units.items():
            (folder / name).write_text(text)
        proc = subprocess.run(
            [analyze, "verify", *(str(folder / n) for n in units)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    server = server_factory({ZONE: example_zone_text()})
    service = units["ddns-server-backup.service"]
    backups = tmp_path / "backups"
    env = {
        **os.environ,
        "DDNS_CONFIG": str(server.config_path),
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    (tmp_path / "bin").mkdir()
    wrapper = tmp_path / "bin" / "ddns-server"  # the installed command, from this checkout
    wrapper.write_text(
        f'#!/bin/sh\nPYTHONPATH={REPO_ROOT} exec {sys.executable} -m ddns_server "$@"\n'
    )
    wrapper.chmod(0o755)
    old = backups / "journal-2000-01-01.sqlite3"
    for key in ("ExecStartPre", "ExecStart", "ExecStartPost"):
        line = next(v for v in service.splitlines() if v.startswith(key + "="))
        command = line.split("=", 1)[1].replace("%%", "%")
        command = command.replace("/var/backups/ddns-server", str(backups))
        cmd = shlex.split(command)
        if key == "ExecStartPost":
            old.write_bytes(b"")
            os.utime(old, (0, 0))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        assert proc.returncode == 0, (key, proc.stdout, proc.stderr)
    made = sorted(p.name for p in backups.iterdir())
    assert len(made) == 1 and re.fullmatch(r"journal-\d{4}-\d\d-\d\d\.sqlite3", made[0]), made
    assert _integrity(backups / made[0]) == "ok"  # and the old one was rotated away


# -- config messages that say what to fix --------------------------------------------------

CONFIG_MESSAGES = {
    "tab": (
        GOOD.replace('  http: ["127.0.0.1:18080"]', '\thttp: ["127.0.0.1:18080"]'),
        r"ddns\.yaml:4:1: a tab character: YAML indents with spaces only",
    ),
    "indentation": (
        GOOD.replace("    file: example.zone", "     file: example.zone"),
        r"ddns\.yaml:7:6: indentation: this line is indented differently",
    ),
    "allow_transfer": (
        GOOD + '    allow_transfer: ["10.0.0.300/8"]\n',
        r"ddns\.yaml:8: zones\[0\]\.allow_transfer\[0\]: invalid entry '10\.0\.0\.300/8':"
        r" .*Octet 300 \(> 255\)",
    ),
    "notify host name": (
        GOOD + '    notify: ["ns2.example.net"]\n',
        r"ddns\.yaml:8: zones\[0\]\.notify\[0\]: invalid address 'ns2\.example\.net':"
        r" a host name is not allowed, give an IP address",
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_MESSAGES))
def test_config_messages_say_what_to_fix(tmp_path: Path, case: str) -> None:
    body, pattern = CONFIG_MESSAGES[case]
    path = write_config(tmp_path, body)
    (line,) = assert_user_error(cli("check-config", "-c", str(path)))
    assert re.match(pattern, line.removeprefix(str(tmp_path) + "/")), line
    assert "block end" not in line.split("(")[0]
