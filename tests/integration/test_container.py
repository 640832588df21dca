"""The real Dockerfile, built without a Docker daemon or an image registry.

scripts/podman-build.sh makes debian:bookworm-slim with debootstrap from
apt's own mirror (cached between runs), then `podman build
--isolation=chroot`. Running containers is not possible in this sandbox (the
OCI runtime cannot set rlimits), so the image's file system is exported
(`podman create` + `podman export`) and `ddns-server serve` is started from it
with `chroot`, as the image's non-root user, with the image's built-in config
moved to free loopback ports; dig must get an answer.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest
from conftest import Spawn
from harness import REPO_ROOT, dig, free_port, require_tool, run, wait_for

IMAGE = "localhost/ddns-server:test"
# Measured: about 3 minutes from nothing on a busy 2-core machine (debootstrap,
# apt and pip in the build), about 40 s with the caches; `make test` and CI
# run it (marker `container` only lets a quick local run leave it out).
BUILD_TIMEOUT = 900


def _users(root: Path, name: str) -> tuple[int, int]:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"no user {name} in the image")


@pytest.mark.container
@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_dockerfile_builds_and_serves(tmp_path: Path, spawn: Spawn) -> None:
    if os.geteuid() != 0:
        pytest.skip("podman --isolation=chroot and chroot need root here")
    for tool in ("podman", "debootstrap", "chroot"):
        require_tool(tool)
    build = run(
        ["bash", str(REPO_ROOT / "scripts" / "podman-build.sh"), IMAGE], timeout=BUILD_TIMEOUT
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    created = run(["podman", "create", IMAGE])
    assert created.returncode == 0, created.stderr
    container = created.stdout.strip().splitlines()[-1]
    root = tmp_path / "rootfs"
    root.mkdir()
    try:
        archive = tmp_path / "image.tar"
        exported = run(["podman", "export", "-o", str(archive), container], timeout=300)
        assert exported.returncode == 0, exported.stderr
    finally:
        run(["podman", "rm", container])
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="fully_trusted")  # owners kept: we are root
    archive.unlink()

    # Debian's python3 in a venv, the console script on PATH, the config shipped as a file
    assert (root / "usr" / "bin" / "python3").exists()
    assert (root / "opt" / "ddns-server" / "bin" / "ddns-server").is_file()
    # nothing of the build's pip.conf / CA bundle mount stayed in the image
    assert not (root / "run" / "ddns-build" / "pip.conf").exists()
    assert not (root / "etc" / "pip.conf").exists()
    builtin = (root / "etc" / "ddns-server" / "ddns.yaml").read_text()
    assert "data_dir: /var/lib/ddns-server" in builtin

    dns_port, http_port = free_port("both"), free_port("tcp")
    test_config = re.sub(r'"0\.0\.0\.0:53"', f'"127.0.0.1:{dns_port}"', builtin)
    test_config = re.sub(r'"0\.0\.0\.0:8080"', f'"127.0.0.1:{http_port}"', test_config)
    assert test_config != builtin
    (root / "etc" / "ddns-server" / "test.yaml").write_text(test_config)
    uid, gid = _users(root, "ddns")
    assert uid != 0
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    server = spawn(
        [
            chroot,
            f"--userspec={uid}:{gid}",
            str(root),
            "/opt/ddns-server/bin/ddns-server",
            "serve",
            "-c",
            "/etc/ddns-server/test.yaml",
        ],
        name="container-serve",
        env={"PATH": "/opt/ddns-server/bin:/usr/bin:/bin", "HOME": "/var/lib/ddns-server"},
    )

    def answered() -> bool:
        assert server.running(), server.log_text()
        return dig(dns_port, "dyn.example.test.", "SOA").status == "NOERROR"

    wait_for(answered, timeout=60, message="dig's answer from the image's ddns-server")
    reply = dig(dns_port, "dyn.example.test.", "SOA")
    assert reply.rdata("SOA"), str(reply)
    # the journal went to the volume's folder, owned by the non-root user
    journal = root / "var" / "lib" / "ddns-server" / "journal.sqlite3"
    assert journal.is_file() and journal.stat().st_uid == uid
    server.stop()
