import base64
import re
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import dns.tsig
import dns.update
import pytest

from ddns_server.config import TsigKey, read_key_file
from ddns_server.keys import ALGORITHMS, algorithm_from_text, keygen_text, keyring

DIGEST_SIZES = {
    "hmac-sha256": 32,
    "hmac-sha512": 64,
    "hmac-sha384": 48,
    "hmac-sha224": 28,
    "hmac-sha1": 20,
    "hmac-md5": 16,
}


def test_algorithms() -> None:
    assert list(ALGORITHMS) == list(DIGEST_SIZES)
    assert ALGORITHMS["hmac-sha256"] == dns.tsig.HMAC_SHA256
    assert ALGORITHMS["hmac-md5"] == dns.tsig.HMAC_MD5


def test_algorithm_from_text() -> None:
    assert algorithm_from_text("HMAC-SHA512") == "hmac-sha512"
    assert algorithm_from_text("hmac-sha1.") == "hmac-sha1"
    assert algorithm_from_text("hmac-md5.sig-alg.reg.int") == "hmac-md5"
    with pytest.raises(ValueError, match=r"unknown algorithm 'sha256' \(expected one of hmac-"):
        algorithm_from_text("sha256")


def test_keygen_format() -> None:
    text = keygen_text("home-key")
    match = re.fullmatch(
        r'key "home-key" \{\n\talgorithm hmac-sha256;\n\tsecret "([A-Za-z0-9+/=]+)";\n\};\n',
        text,
    )
    assert match is not None
    assert len(base64.b64decode(match.group(1))) == 32
    assert keygen_text("home-key") != text


@pytest.mark.parametrize("algorithm", list(DIGEST_SIZES))
def test_keygen_round_trip(tmp_path: Path, algorithm: str) -> None:
    path = tmp_path / "k.key"
    path.write_text(keygen_text("k1.example.", algorithm))
    name, read_algorithm, secret = read_key_file(path)
    assert (name, read_algorithm) == ("k1.example.", algorithm)
    assert len(secret) == DIGEST_SIZES[algorithm]
    key = dns.tsig.Key(name, secret, ALGORITHMS[read_algorithm])
    assert key.algorithm == ALGORITHMS[algorithm]


def test_keygen_rejects() -> None:
    with pytest.raises(ValueError, match="unknown algorithm"):
        keygen_text("k", "hmac-sha3")
    for bad in ["", 'a"b', "a b", "a..b", "x" * 64]:
        with pytest.raises(ValueError):
            keygen_text(bad)


def test_keyring_signs_and_verifies() -> None:
    name = dns.name.from_text("home-key")
    key = TsigKey(name, dns.tsig.HMAC_SHA512, b"0123456789abcdef")
    ring = keyring([key])
    assert set(ring) == {name}
    assert ring[name].algorithm == dns.tsig.HMAC_SHA512
    update = dns.update.UpdateMessage("dyn.example.test.", keyring=ring, keyname=name)
    update.add("home", 60, dns.rdatatype.A, "192.0.2.1")
    parsed = dns.message.from_wire(update.to_wire(), keyring=ring)
    assert parsed.had_tsig
    with pytest.raises(dns.tsig.BadSignature):
        other = {name: dns.tsig.Key(name, b"another secret!!", dns.tsig.HMAC_SHA512)}
        dns.message.from_wire(update.to_wire(), keyring=other)
