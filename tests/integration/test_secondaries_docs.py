"""docs/secondaries.md's complete named.conf, knot.conf and nsd.conf work.

The files are contrib/secondaries/*.conf, shown verbatim in the doc. The
named.conf is run for real (with `ddns-server keygen` output included as it
is) against a live ddns-server, moved from its documented folder and ports to
the test's; knot.conf and nsd.conf go through `knotc conf-check` and `nsd-checkconf`.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest
from conftest import ServerFactory, Spawn
from harness import REPO_ROOT, example_zone_text, free_port, require_tool, run, wait_for

from ddns_server.keys import read_key_file

EXAMPLES = REPO_ROOT / "contrib" / "secondaries"
DOC = REPO_ROOT / "docs" / "secondaries.md"
ZONE = "dyn.example.test"
TRIAL_DIR = "/tmp/ddns-secondary"


@pytest.mark.parametrize("name", ["named.conf", "knot.conf", "nsd.conf"])
def test_the_doc_shows_the_files_verbatim(name: str) -> None:
    assert (EXAMPLES / name).read_text().strip() in DOC.read_text()


def keygen(path: Path) -> bytes:
    proc = run(
        ["bash", "-c", f"(umask 077; .venv/bin/ddns-server keygen xfr-key > {path})"], cwd=REPO_ROOT
    )
    if proc.returncode != 0 or not path.exists():  # no .venv: the same program
        from ddns_server.keys import keygen_text

        path.write_text(keygen_text("xfr-key"))
    return read_key_file(path)[2]


def serial(port: int) -> int | None:
    query = dns.message.make_query(ZONE, "SOA")
    try:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return None
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


def test_named_conf_runs_as_a_secondary(
    server_factory: ServerFactory, spawn: Spawn, tmp_path: Path
) -> None:
    named = require_tool("named")
    folder = tmp_path / "bind"
    folder.mkdir()
    secret = keygen(folder / "xfr.key")
    port = free_port("both")
    server = server_factory(
        {ZONE: example_zone_text()},
        {"keys": [{"name": "xfr-key", "secret_file": str(folder / "xfr.key")}]},
        zone_extra={ZONE: {"allow_transfer": ["key:xfr-key"], "notify": [f"127.0.0.1:{port}"]}},
    )
    assert base64.b64decode(base64.b64encode(secret)) == secret
    text = (EXAMPLES / "named.conf").read_text()
    text = text.replace(f"{TRIAL_DIR}/bind", str(folder))
    text = text.replace("port 5354", f"port {port}").replace("port 5353", f"port {server.dns_port}")
    assert not re.search(r"port 535[34]\b", text) and TRIAL_DIR not in text
    conf = folder / "named.conf"
    conf.write_text(text)
    check = run([require_tool("named-checkconf"), str(conf)])
    assert check.returncode == 0, check.stdout + check.stderr
    proc = spawn([named, "-g", "-c", str(conf), "-n", "1"], "named", cwd=folder)
    first = server.soa_serial()
    wait_for(lambda: serial(port) == first, timeout=20, message=f"named: {proc.log_text()[-2000:]}")
    changed = example_zone_text() + "trial IN A 192.0.2.77\n"
    (tmp_path / "new.zone").write_text(changed)
    imported = server.cli("zone", "import", ZONE, str(tmp_path / "new.zone"))
    assert imported.returncode == 0, imported.stderr
    new = int(imported.stdout)
    wait_for(lambda: serial(port) == new, timeout=10, message="the NOTIFYed version")
    assert "TSIG 'xfr-key'" in proc.log_text()


def _secret_placeholder(text: str) -> str:
    return re.sub(r'secret: "[^"]*"', 'secret: "' + "A" * 43 + '="', text)


def test_knot_conf_checks(tmp_path: Path) -> None:
    knotc = require_tool("knotc")  # Debian package knot (scripts/ensure-tools.sh)
    conf = tmp_path / "knot.conf"
    conf.write_text(
        _secret_placeholder((EXAMPLES / "knot.conf").read_text()).replace(TRIAL_DIR, str(tmp_path))
    )
    proc = run([knotc, "-c", str(conf), "conf-check"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_nsd_conf_checks(tmp_path: Path) -> None:
    checker = require_tool("nsd-checkconf")  # Debian package nsd
    conf = tmp_path / "nsd.conf"
    conf.write_text(
        _secret_placeholder((EXAMPLES / "nsd.conf").read_text()).replace(TRIAL_DIR, str(tmp_path))
    )
    proc = run([checker, str(conf)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
