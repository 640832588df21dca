"""SIGHUP (issue 12): new TLS files and listen addresses without a restart.

An ACME client renews the certificate every 60-90 days and sends SIGHUP: the
next TLS handshake must present the new certificate. Listen addresses added
to the config answer after SIGHUP; removed ones stop. What only a restart can
apply (data_dir) is logged as such, never as "configuration reloaded".
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import yaml
from conftest import ServerFactory
from cryptography import x509
from harness import (
    ServerProcess,
    dig,
    example_zone_text,
    free_port,
    http_get,
    port_is_open,
    wait_for,
)

from ddns_server.edge.tls import make_self_signed

ZONE = "dyn.example.test"


def write_pair(folder: Path, name: str) -> tuple[Path, Path]:
    cert_pem, key_pem = make_self_signed([name, "127.0.0.1"])
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    key.write_bytes(key_pem)
    key.chmod(0o600)
    cert.write_bytes(cert_pem)
    return cert, key


def presented_cn(port: int) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def rewrite(server: ServerProcess, **changes: object) -> None:
    server.config.update(changes)
    server.config_path.write_text(yaml.safe_dump(server.config))


def test_sighup_presents_the_renewed_certificate(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    cert, key = write_pair(tmp_path / "tls", "old.example.test")
    server = server_factory(
        {ZONE: example_zone_text()},
        {"tls": {"cert_file": str(cert), "key_file": str(key)}},
        https=True,
    )
    assert presented_cn(server.https_port) == "old.example.test"
    write_pair(tmp_path / "tls", "renewed.example.test")  # same paths, new files
    assert presented_cn(server.https_port) == "old.example.test"  # not before SIGHUP
    server.reload()
    wait_for(
        lambda: presented_cn(server.https_port) == "renewed.example.test",
        timeout=5,
        message="the renewed certificate",
    )
    wait_for(lambda: "configuration reloaded" in server.log_text(), timeout=5)
    assert "renewed.example.test" in server.log_text()  # says which certificate

    # A broken renewal keeps the working certificate, and the log says so.
    cert.write_text("not a certificate\n")
    server.reload()
    wait_for(lambda: "keeping the previous certificate" in server.log_text(), timeout=5)
    assert presented_cn(server.https_port) == "renewed.example.test"
    assert "configuration reloaded from" in server.log_text().split("keeping the previous")[-1]
    assert "except: tls" in server.log_text()


def test_sighup_opens_and_closes_listen_addresses(server_factory: ServerFactory) -> None:
    server = server_factory({ZONE: example_zone_text()})
    old_dns, old_http = server.dns_port, server.http_port
    new_dns, new_http = free_port("both"), free_port("tcp")
    rewrite(
        server,
        listen={
            "dns": [f"127.0.0.1:{old_dns}", f"127.0.0.1:{new_dns}"],
            "http": [f"127.0.0.1:{new_http}"],
            "https": [],
        },
    )
    server.reload()
    wait_for(
        lambda: dig(new_dns, f"{ZONE}.", "SOA").status == "NOERROR",
        timeout=5,
        message="an answer on the new DNS address",
    )
    assert dig(new_dns, f"{ZONE}.", "SOA", "+tcp").status == "NOERROR"
    wait_for(lambda: port_is_open("127.0.0.1", new_http), timeout=5, message="new http")
    wait_for(lambda: not port_is_open("127.0.0.1", old_http), timeout=5, message="old http closed")
    assert dig(old_dns, f"{ZONE}.", "SOA").status == "NOERROR"  # kept

    rewrite(server, listen={"dns": [f"127.0.0.1:{new_dns}"], "http": [f"127.0.0.1:{new_http}"]})
    server.reload()
    wait_for(lambda: dig(old_dns, f"{ZONE}.", "SOA").status is None, timeout=5, message="closed")
    assert not port_is_open("127.0.0.1", old_dns)  # TCP too
    assert dig(new_dns, f"{ZONE}.", "SOA").status == "NOERROR"
    log = server.log_text()
    assert f"listen.dns: listening on 127.0.0.1:{new_dns}" in log
    assert f"listen.dns: closed 127.0.0.1:{old_dns}" in log
    assert f"listen.http: closed 127.0.0.1:{old_http}" in log


def loaded_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_a_dns_only_server_gets_http_and_https_by_sighup(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A DNS-only server loads neither the HTTP side nor pyOpenSSL/cryptography
    (issue 11: RSS); a reload that adds http and https listeners loads them."""
    server = server_factory({ZONE: example_zone_text()}, {"listen": {"http": [], "https": []}})
    assert server.pid is not None
    maps = loaded_libraries(server.pid)
    assert "cryptography" not in maps and "OpenSSL" not in maps  # pyOpenSSL's cffi module
    cert, key = write_pair(tmp_path / "tls", "late.example.test")
    http_port, https_port = free_port("tcp"), free_port("tcp")
    rewrite(
        server,
        listen={
            "dns": [f"127.0.0.1:{server.dns_port}"],
            "http": [f"127.0.0.1:{http_port}"],
            "https": [f"127.0.0.1:{https_port}"],
        },
        tls={"cert_file": str(cert), "key_file": str(key)},
    )
    server.reload()
    wait_for(lambda: port_is_open("127.0.0.1", https_port), timeout=5, message="https open")
    assert http_get(f"http://127.0.0.1:{http_port}/healthz") == (200, "ok\n")
    assert http_get(f"https://127.0.0.1:{https_port}/healthz") == (200, "ok\n")
    assert presented_cn(https_port) == "late.example.test"
    assert "configuration reloaded from" in server.log_text()
    assert dig(server.dns_port, f"{ZONE}.", "SOA").status == "NOERROR"


def test_sighup_names_what_needs_a_restart(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory({ZONE: example_zone_text()})
    old_data = server.config["data_dir"]
    rewrite(server, data_dir=str(tmp_path / "elsewhere"))
    server.reload()
    wait_for(lambda: "reloaded from" in server.log_text(), timeout=5)
    log = server.log_text()
    assert "data_dir changed but needs a restart: the journal stays open" in log
    assert "except: data_dir" in log
    assert "INFO ddns_server: configuration reloaded" not in log
    assert server.soa_serial() > 0 and (Path(old_data) / "journal.sqlite3").is_file()
