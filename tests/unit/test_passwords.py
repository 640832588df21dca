import base64
import re

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ddns_server.passwords import hash_password, is_valid_hash, verify_password


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def test_hash_format() -> None:
    encoded = hash_password("s3cret")
    match = re.fullmatch(r"\$scrypt\$ln=15,r=8,p=1\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)", encoded)
    assert match is not None
    assert len(base64.b64decode(match.group(1) + "==")) == 16
    assert len(base64.b64decode(match.group(2) + "=")) == 32


def test_round_trip() -> None:
    encoded = hash_password("correct horse")
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horsE", encoded)
    assert not verify_password("", encoded)
    assert is_valid_hash(encoded)


def test_salted() -> None:
    assert hash_password("same") != hash_password("same")


def test_unicode_and_odd_input() -> None:
    encoded = hash_password("pässwörd")
    assert verify_password("pässwörd", encoded)
    assert not verify_password("p\udcc3sswörd", encoded)  # lone surrogate: no crash


def test_parameters_are_read_from_the_hash() -> None:
    salt = b"0123456789abcdef"
    key = Scrypt(salt=salt, length=32, n=2**4, r=2, p=3).derive(b"pw")
    encoded = f"$scrypt$ln=4,r=2,p=3${b64(salt)}${b64(key)}"
    assert is_valid_hash(encoded)
    assert verify_password("pw", encoded)
    assert not verify_password("pW", encoded)


def test_malformed_hashes() -> None:
    good = hash_password("x")
    _, _, params, salt, key = good.split("$")
    bad = [
        "",
        "plain",
        "$2b$12$abcdefghijklmnopqrstuv",
        f"$scrypt${params}${salt}",
        f"$scrypt$ln=15,r=8${salt}${key}",
        f"$scrypt$ln=15,r=8,p=1,x=2${salt}${key}",
        f"$scrypt$ln=15,r=8,r=8${salt}${key}",
        f"$scrypt$ln=99,r=8,p=1${salt}${key}",
        f"$scrypt$ln=0,r=8,p=1${salt}${key}",
        f"$scrypt$ln=-1,r=8,p=1${salt}${key}",
        f"$scrypt${params}$${key}",
        f"$scrypt${params}${salt}$!!!",
        f"$scrypt${params}${salt}${key}=",
        f"$scrypt${params}${salt}${b64(b'short')}",
        good + "$",
    ]
    for encoded in bad:
        assert not is_valid_hash(encoded), encoded
        assert not verify_password("x", encoded), encoded
