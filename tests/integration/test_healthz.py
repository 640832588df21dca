"""/healthz follows what the journal did, both ways (issue 14 item 2).

A full disk is made real for the running server with RLIMIT_FSIZE (set on
its pid with prlimit: the journal files cannot grow; Python ignores
SIGXFSZ, so writes fail with EFBIG as on a full file system). A "read-only"
report is made with `chattr +i` on the data folder: `access(W_OK)` then says
no, while the open journal files still take writes.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.query
import dns.rcode
import dns.update
import pytest
from conftest import ServerFactory
from harness import EXAMPLE_ZONE_NAME, ServerProcess, TsigKey, example_zone_text, http_get, wait_for

# The server retries a write probe every 2 s while unhealthy.
RECOVERY = 10.0


def started(server_factory: ServerFactory) -> tuple[ServerProcess, TsigKey]:
    key = TsigKey.generate("health-key")
    server = server_factory(
        {EXAMPLE_ZONE_NAME: example_zone_text()},
        {"keys": [key.config()]},
        zone_extra={
            EXAMPLE_ZONE_NAME: {"update_policy": [{"grant": "health-key", "match": "zonesub"}]}
        },
    )
    return server, key


def update(server: ServerProcess, key: TsigKey, n: int, size: int = 200) -> int:
    message = dns.update.UpdateMessage(EXAMPLE_ZONE_NAME, keyring=key.keyring(), keyname=key.name)
    for i in range(20):
        message.add(f"h{n}-{i}", 60, "TXT", '"' + "x" * size + '"')
    response = dns.query.tcp(message, "127.0.0.1", port=server.dns_port, timeout=5)
    return int(response.rcode())


def healthz(server: ServerProcess) -> tuple[int, str]:
    return http_get(f"{server.http_url}/healthz")


def journal_gauge(server: ServerProcess) -> str:
    _, body = http_get(f"{server.http_url}/metrics")
    return next(line for line in body.splitlines() if line.startswith("ddns_journal_healthy "))


def test_a_full_disk_makes_healthz_503_until_a_write_succeeds(
    server_factory: ServerFactory,
) -> None:
    if not hasattr(resource, "prlimit"):
        pytest.skip("needs resource.prlimit (Linux)")
    server, key = started(server_factory)
    assert update(server, key, 0) == dns.rcode.NOERROR
    assert healthz(server) == (200, "ok\n")
    assert journal_gauge(server) == "ddns_journal_healthy 1.0"
    pid = server.pid
    assert pid is not None
    files = [p for p in server.data_dir.iterdir() if p.name.startswith("journal.sqlite3")]
    limit = max(p.stat().st_size for p in files)
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))  # no file may grow
    serial = server.soa_serial()
    try:
        rcodes = [update(server, key, n, size=250) for n in range(1, 6)]
        assert dns.rcode.SERVFAIL in rcodes
        assert server.soa_serial() == serial + rcodes.count(dns.rcode.NOERROR)
        status, body = healthz(server)
        assert status == 503
        assert body.startswith("unhealthy: ") and "error" in body
        assert journal_gauge(server) == "ddns_journal_healthy 0.0"
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
    # space again: the write probe notices without any update
    wait_for(lambda: healthz(server) == (200, "ok\n"), timeout=RECOVERY, message="healthy again")
    assert journal_gauge(server) == "ddns_journal_healthy 1.0"
    assert update(server, key, 9) == dns.rcode.NOERROR
    assert "journal write failed" in server.log_text()


@contextmanager
def immutable(folder: Path) -> Iterator[None]:
    chattr = shutil.which("chattr")
    if chattr is None or os.geteuid() != 0:
        pytest.skip("needs chattr and root")
    if subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("the file system does not support chattr +i")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_folder_reported_read_only_is_healthy_while_writes_succeed(
    server_factory: ServerFactory,
) -> None:
    server, key = started(server_factory)
    with immutable(server.data_dir):
        assert not os.access(server.data_dir, os.W_OK)  # what the old check looked at
        assert update(server, key, 1) == dns.rcode.NOERROR
        assert healthz(server) == (200, "ok\n")
        assert journal_gauge(server) == "ddns_journal_healthy 1.0"
