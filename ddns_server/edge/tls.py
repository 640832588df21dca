"""TLS for the https listeners: the configured certificate, or a self-signed one.

When `listen.https` is set and `tls.cert_file` is not, a self-signed pair is
made once in DATA_DIR/tls/ (cert.pem, and key.pem with mode 0600) and reused afterwards,
so clients can pin or trust it (`curl --cacert DATA_DIR/tls/cert.pem`).
TLS 1.2 is the minimum. With `tls.client_ca_file`, clients may present a
certificate issued by those CAs (mutual TLS); its subject CN then names the
user (config `users[].client_cert_cn`). A certificate is optional: Basic auth
still works without one.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import crypto
from twisted.internet import ssl
from twisted.internet.interfaces import ISSLTransport

from ddns_server import model
from ddns_server.errors import UserError

SELF_SIGNED_DAYS = 3650
_LOOPBACK = ("127.0.0.1", "::1")


def self_signed_paths(data_dir: Path) -> tuple[Path, Path]:
    folder = data_dir / "tls"
    return folder / "cert.pem", folder / "key.pem"


def subject_names(config: model.Config) -> list[str]:
    """What the self-signed certificate is valid for: localhost, loopback, the
    https listen addresses, the zone names and the users' hosts."""
    names = ["localhost", *_LOOPBACK]
    names += [ep.host for ep in config.https if not ipaddress.ip_address(ep.host).is_unspecified]
    names += [zone.name.to_text(omit_final_dot=True) for zone in config.zones]
    names += [host.to_text(omit_final_dot=True) for user in config.users for host in user.hosts]
    return list(dict.fromkeys(names))  # unique, in order


def make_self_signed(
    names: Iterable[str], now: datetime.datetime | None = None
) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM): EC P-256, SANs for `names` (DNS names
    and IP addresses), CA:TRUE like `openssl req -x509`, so it can be its own
    trust anchor for every client library."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(names)
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    subject = x509.Name(
        [
            x509.NameAttribute(
                NameOID.COMMON_NAME,
                next((n for n in names if "." in n and not _is_ip(n)), "localhost"),
            ),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ddns-server (self-signed)"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def ensure_self_signed(config: model.Config) -> tuple[Path, Path]:
    """The self-signed pair in DATA_DIR/tls/, made on first use."""
    cert_path, key_path = self_signed_paths(config.data_dir)
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    cert_pem, key_pem = make_self_signed(subject_names(config))
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    # The key is secret (0600); the certificate is what clients are given to trust.
    for path, data, mode in ((key_path, key_pem, 0o600), (cert_path, cert_pem, 0o644)):
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # never a half-written file under the real name
    return cert_path, key_path


def _certificates(path: Path, what: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as e:
        raise UserError(f"{what} {path}: cannot read: {e.strerror or e}") from None
    except ValueError:
        raise UserError(f"{what} {path}: not a PEM certificate") from None


def _private_key(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"tls.key_file {path}: cannot read: {e.strerror or e}") from None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UserError(f"tls.key_file {path}: encrypted (give it without a passphrase)") from None
    except Exception:  # noqa: BLE001 - ValueError, UnsupportedAlgorithm
        raise UserError(f"tls.key_file {path}: not a usable PEM private key") from None


def context_factory(config: model.Config) -> ssl.CertificateOptions:
    """The server side of TLS for every https listener; UserError names a bad file."""
    tls = config.tls
    if tls.cert_file is not None and tls.key_file is not None:
        cert_path, key_path = tls.cert_file, tls.key_file
    else:
        cert_path, key_path = ensure_self_signed(config)
    chain = _certificates(cert_path, "tls.cert_file")
    key = _private_key(key_path)
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise UserError(f"tls.key_file {key_path}: does not match the certificate {cert_path}")
    options: dict[str, Any] = {}
    if tls.client_ca_file is not None:
        cas = _certificates(tls.client_ca_file, "tls.client_ca_file")
        # Ask for a client certificate and verify it against these CAs, but
        # don't require one: Basic auth stays the other way in.
        options.update(
            verify=True,
            caCerts=[crypto.X509.from_cryptography(ca) for ca in cas],
            requireCertificate=False,
        )
    return ssl.CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(key),
        certificate=crypto.X509.from_cryptography(chain[0]),
        extraCertChain=[crypto.X509.from_cryptography(c) for c in chain[1:]],
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        **options,
    )


class ReloadableContextFactory:
    """The https listeners' context factory; SIGHUP swaps in new options.

    Twisted asks the factory for a context on every new connection
    (`_ContextFactoryToConnectionFactory`), so the next handshake after a
    swap presents the new certificate; open connections keep theirs.
    """

    def __init__(self, options: ssl.CertificateOptions) -> None:
        self.options = options

    def getContext(self) -> Any:  # noqa: N802 - Twisted's IOpenSSLContextFactory
        return self.options.getContext()


def describe_certificate(config: model.Config) -> str:
    """ "CN=..., valid until ..." of the certificate the https listeners present."""
    tls = config.tls
    if tls.cert_file is None or tls.key_file is None:
        path = self_signed_paths(config.data_dir)[0]
    else:
        path = tls.cert_file
    try:
        cert = _certificates(path, "tls.cert_file")[0]
    except UserError as e:
        return str(e)
    until = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{path}: {cert.subject.rfc4514_string()}, valid until {until}"


def peer_common_name(transport: object) -> str | None:
    """The subject CN of the client's (verified) certificate, if it sent one."""
    if not ISSLTransport.providedBy(transport):
        return None
    cert: crypto.X509 | None = cast(Any, transport).getPeerCertificate()
    if cert is None:
        return None
    subject = cert.to_cryptography().subject
    values = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None
