import base64
import textwrap
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.tsig
import pytest

from ddns_server.config import (
    Config,
    Endpoint,
    PolicyRule,
    Tls,
    default_config_path,
    load_config,
    read_key_file,
)
from ddns_server.errors import ConfigError
from ddns_server.keys import keygen_text
from ddns_server.passwords import hash_password, verify_password

HASH = hash_password("pw")
SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0"  # b"secretsecretsecret"
ZONE = """\
$ORIGIN dyn.example.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
@ IN NS ns1
ns1 IN A 127.0.0.1
"""
# A valid config that tests extend; keys, a zone, no users.
BASE = f"""\
keys:
  - name: home-key
    secret: "{SECRET}"
  - name: xfr-key
    algorithm: hmac-sha512
    secret: "{SECRET}"
zones:
  - name: dyn.example.test
    file: ../zones/dyn.example.test.zone
"""


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "dyn.example.test.zone").write_text(ZONE)
    return tmp_path


def write(site: Path, text: str) -> Path:
    path = site / "conf" / "ddns.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(site: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = write(site, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    return info.value.problems


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line of `text` containing `needle`."""
    for number, line in enumerate(textwrap.dedent(text).splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the config")


def expect(
    site: Path,
    text: str,
    needle: str,
    key_path: str,
    message: str,
    environ: dict[str, str] | None = None,
) -> None:
    """The config has exactly one problem, on the line holding `needle`."""
    found = problems(site, text, environ)
    conf = site / "conf" / "ddns.yaml"
    assert found == [f"{conf}:{line_of(text, needle)}: {key_path}: {message}"]


# -- good configs ------------------------------------------------------------


def test_interface_example_loads(site: Path) -> None:
    (site / "conf" / "keys").mkdir()
    (site / "conf" / "keys" / "xfr.key").write_text(keygen_text("xfr-key", "hmac-sha512"))
    path = write(
        site,
        f"""\
        data_dir: ../var                 # the SQLite journal lives here
        listen:
          dns: ["127.0.0.1:5353", "[::1]:5353"]
          http: ["127.0.0.1:8080"]
          https: []
        trusted_proxies: ["127.0.0.1/32", "10.1.2.3/8"]
        tls:
          cert_file: null
          key_file: null
        keys:
          - name: home-key
            algorithm: hmac-sha256
            secret: "{SECRET}"
          - name: xfr-key
            secret_file: keys/xfr.key
          - name: env-key
            algorithm: hmac-sha1
            secret_env: ENV_KEY
        users:
          - name: alice
            password_hash: "{HASH}"
            hosts: [home.dyn.example.test, dyn.example.test.]
        zones:
          - name: dyn.example.test
            file: ../zones/dyn.example.test.zone
            update_policy:
              - grant: home-key
                match: subdomain
                name: home.dyn.example.test
                types: [A, AAAA, TXT]
              - grant: xfr-key
                match: zonesub
              - grant: env-key
                match: wildcard
                name: "*.dyn.example.test"
                types: [ANY]
            allow_transfer: ["127.0.0.0/8", "key:xfr-key", "::1"]
            notify: ["127.0.0.1:5354", "192.0.2.1", "[2001:db8::1]:5300"]
            dyndns_ttl: 60
            journal_max_versions: 50
            journal_max_age_days: 30
          - name: other.example.test
        """,
    )
    config = load_config(path, environ={"ENV_KEY": "c2VjcmV0"})
    assert isinstance(config, Config)
    assert config.path == path
    assert config.data_dir == (site / "var").resolve()
    assert config.dns == (Endpoint("127.0.0.1", 5353), Endpoint("::1", 5353))
    assert config.http == (Endpoint("127.0.0.1", 8080),)
    assert config.https == ()
    assert config.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8")
    assert config.tls == Tls(None, None)

    home, xfr, env = config.keys
    assert (home.name, home.algorithm, home.secret) == (
        name("home-key"),
        dns.tsig.HMAC_SHA256,
        b"secretsecretsecret",
    )
    assert (xfr.name, xfr.algorithm, len(xfr.secret)) == (name("xfr-key"), dns.tsig.HMAC_SHA512, 64)
    assert (env.name, env.algorithm, env.secret) == (name("env-key"), dns.tsig.HMAC_SHA1, b"secret")

    (alice,) = config.users
    assert alice.name == "alice"
    assert verify_password("pw", alice.password_hash)
    assert alice.hosts == (name("home.dyn.example.test"), name("dyn.example.test"))

    zone, other = config.zones
    assert zone.name == name("dyn.example.test")
    assert zone.file == (site / "zones" / "dyn.example.test.zone").resolve()
    assert zone.update_policy == (
        PolicyRule(
            name("home-key"),
            "subdomain",
            name("home.dyn.example.test"),
            frozenset({dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.TXT}),
        ),
        PolicyRule(name("xfr-key"), "zonesub", None, None),
        PolicyRule(name("env-key"), "wildcard", name("*.dyn.example.test"), None),
    )
    assert zone.allow_transfer_networks == ("127.0.0.0/8", "::1/128")
    assert zone.allow_transfer_keys == (name("xfr-key"),)
    assert zone.notify == (
        Endpoint("127.0.0.1", 5354),
        Endpoint("192.0.2.1", 53),
        Endpoint("2001:db8::1", 5300),
    )
    assert (zone.dyndns_ttl, zone.journal_max_versions, zone.journal_max_age_days) == (60, 50, 30)
    assert other.file is None
    assert other.update_policy == () and other.notify == ()
    assert (other.dyndns_ttl, other.journal_max_versions, other.journal_max_age_days) == (
        60,
        1000,
        0,
    )


def test_empty_config_defaults(site: Path) -> None:
    config = load_config(write(site, ""), environ={})
    assert config.data_dir == (site / "conf" / "var").resolve()
    assert config.dns == (Endpoint("127.0.0.1", 5353),)
    assert config.http == () and config.https == ()
    assert config.keys == () and config.users == () and config.zones == ()


def test_listen_defaults_per_key(site: Path) -> None:
    config = load_config(write(site, 'listen:\n  http: ["127.0.0.1:8080"]\n'), environ={})
    assert config.dns == (Endpoint("127.0.0.1", 5353),)
    assert config.http == (Endpoint("127.0.0.1", 8080),)
    config = load_config(write(site, "listen:\n  dns: []\nusers:\nzones:\n"), environ={})
    assert config.dns == ()


def test_tls_files(site: Path) -> None:
    (site / "conf" / "cert.pem").write_text("x")
    (site / "conf" / "key.pem").write_text("x")
    config = load_config(write(site, "tls:\n  cert_file: cert.pem\n  key_file: key.pem\n"))
    assert config.tls == Tls(
        (site / "conf" / "cert.pem").resolve(), (site / "conf/key.pem").resolve()
    )


def test_zone_files_not_parsed_on_request(site: Path) -> None:
    (site / "zones" / "dyn.example.test.zone").write_text("garbage here\n")
    path = write(site, BASE)
    config = load_config(path, environ={}, check_zone_files=False)
    assert config.zones[0].name == name("dyn.example.test")
    with pytest.raises(ConfigError):
        load_config(path, environ={})


def test_default_config_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DDNS_CONFIG", raising=False)
    assert default_config_path() == Path("conf/ddns.yaml")
    monkeypatch.setenv("DDNS_CONFIG", "/etc/ddns/x.yaml")
    assert default_config_path() == Path("/etc/ddns/x.yaml")


# -- file-level problems ---------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.problems == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_yaml_syntax_error(site: Path) -> None:
    found = problems(site, "listen:\n  dns: [127.0.0.1:53\nzones: []\n")
    assert len(found) == 1
    assert found[0].startswith(f"{site / 'conf' / 'ddns.yaml'}:3: YAML syntax error: ")


def test_relative_config_path_in_messages(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(site)
    write(site, "zones:\n  - name: a.test\n    file: ../zones/missing.zone\n")
    with pytest.raises(ConfigError) as info:
        load_config(Path("conf/ddns.yaml"))
    assert info.value.problems == [
        "conf/ddns.yaml:3: zones[0].file: no such file: zones/missing.zone"
    ]


def test_root_not_a_mapping(site: Path) -> None:
    found = problems(site, "- a\n- b\n")
    assert found == [f"{site / 'conf' / 'ddns.yaml'}:1: expected a mapping, got a list"]


def test_every_problem_is_reported_in_line_order(site: Path) -> None:
    text = """\
    zones:
      - name: dyn.example.test
        dyndns_ttl: -1
    datadir: x
    keys:
      - name: k
        secret: "!!"
    """
    conf = site / "conf" / "ddns.yaml"
    assert problems(site, text) == [
        f"{conf}:3: zones[0].dyndns_ttl: -1 is out of range (expected 0..2147483647)",
        f"{conf}:4: datadir: unknown key (expected one of data_dir, listen, trusted_proxies, "
        "tls, dyndns, keys, users, zones, update_limits, tsig_max_fudge, http, rate_limit, "
        "mirrors, log)",
        f"{conf}:7: keys[0].secret: secret is not valid base64",
    ]


# -- structure and types ---------------------------------------------------


def test_unknown_nested_keys(site: Path) -> None:
    text = (
        BASE
        + "    update_policy:\n      - grant: home-key\n        match: zonesub\n        typs: [A]\n"
    )
    expect(
        site,
        text,
        "typs",
        "zones[0].update_policy[0].typs",
        "unknown key (expected one of grant, match, name, types)",
    )
    expect(
        site,
        "listen:\n  dnss: []\n",
        "dnss",
        "listen.dnss",
        "unknown key (expected one of dns, http, https)",
    )
    expect(
        site,
        BASE.replace("  - name: home-key\n", "  - name: home-key\n    colour: red\n"),
        "colour",
        "keys[0].colour",
        "unknown key (expected one of name, algorithm, secret, secret_file, secret_env)",
    )


def test_duplicate_mapping_key(site: Path) -> None:
    text = "data_dir: a\nlisten: {}\ndata_dir: b\n"
    expect(site, text, "data_dir: b", "data_dir", "duplicate key (first at line 1)")


def test_wrong_types(site: Path) -> None:
    expect(site, "data_dir: 12\n", "data_dir", "data_dir", "expected a string, got an integer")
    expect(
        site, "listen:\n  dns: 127.0.0.1:53\n", "dns", "listen.dns", "expected a list, got a string"
    )
    expect(site, "listen: [1]\n", "listen", "listen", "expected a mapping, got a list")
    expect(site, "keys:\n  - just-a-name\n", "just", "keys[0]", "expected a mapping, got a string")
    expect(
        site,
        BASE + "    dyndns_ttl: sixty\n",
        "sixty",
        "zones[0].dyndns_ttl",
        "expected an integer, got a string",
    )
    expect(
        site,
        BASE + "    dyndns_ttl: true\n",
        "true",
        "zones[0].dyndns_ttl",
        "expected an integer, got a boolean",
    )


# -- listen ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "missing port"),
        ("localhost:53", "a host name is not allowed, give an IP address"),
        ("::1:53", "missing port (write IPv6 addresses in brackets, e.g. [::1]:53)"),
        ("::1:http", "write IPv6 addresses in brackets, e.g. [::1]:53"),
        ("[::1]", "missing port"),
        ("[::1:53", "missing ']'"),
        ("[127.0.0.1]:53", "brackets are only for IPv6 addresses"),
        ("[::1]53", "expected ':PORT' after ']'"),
        ("127.0.0.1:0", "bad port '0' (expected 1-65535)"),
        ("127.0.0.1:65536", "bad port '65536' (expected 1-65535)"),
        ("127.0.0.1:http", "bad port 'http' (expected 1-65535)"),
        (
            "256.0.0.1:53",
            "'256.0.0.1' is not an IP address: Octet 256 (> 255) not permitted in '256.0.0.1'",
        ),
    ],
)
def test_listen_address_errors(site: Path, address: str, reason: str) -> None:
    text = f'listen:\n  dns: []\n  http:\n    - "{address}"\n'
    expect(
        site,
        text,
        address,
        "listen.http[0]",
        f"invalid address '{address}': {reason} (expected IP:PORT or [IPv6]:PORT)",
    )


def test_listen_ports_at_the_bounds(site: Path) -> None:
    config = load_config(write(site, 'listen:\n  dns: ["0.0.0.0:1", "[::]:65535"]\n'))
    assert config.dns == (Endpoint("0.0.0.0", 1), Endpoint("::", 65535))


# -- networks and tls --------------------------------------------------------


def test_trusted_proxies_invalid(site: Path) -> None:
    text = 'trusted_proxies: ["127.0.0.1/32", "10.0.0.0/40"]\n'
    expect(
        site,
        text,
        "trusted",
        "trusted_proxies[1]",
        "invalid network '10.0.0.0/40': the prefix length 40 is over 32 for IPv4",
    )


def test_tls_missing_file_and_half_pair(site: Path) -> None:
    conf = site / "conf" / "ddns.yaml"
    assert problems(site, "tls:\n  cert_file: cert.pem\n  key_file: key.pem\n") == [
        f"{conf}:2: tls.cert_file: no such file: {site / 'conf' / 'cert.pem'}",
        f"{conf}:3: tls.key_file: no such file: {site / 'conf' / 'key.pem'}",
    ]
    (site / "conf" / "cert.pem").write_text("x")
    expect(
        site,
        "tls:\n  cert_file: cert.pem\n  key_file: null\n",
        "cert_file",
        "tls",
        "give both cert_file and key_file, or neither",
    )


# -- keys --------------------------------------------------------------------

KEY = f"""\
keys:
  - name: home-key
    secret: "{SECRET}"
"""


def test_key_algorithm_unknown(site: Path) -> None:
    expect(
        site,
        KEY + "    algorithm: hmac-sha3\n",
        "algorithm",
        "keys[0].algorithm",
        "unknown algorithm 'hmac-sha3' (expected one of hmac-sha256, hmac-sha512, hmac-sha384, "
        "hmac-sha224, hmac-sha1, hmac-md5)",
    )


def test_key_algorithms_map_to_dnspython(site: Path) -> None:
    text = "keys:\n" + "".join(
        f'  - name: k{i}\n    algorithm: {alg}\n    secret: "{SECRET}"\n'
        for i, alg in enumerate(["hmac-sha512", "HMAC-SHA384", "hmac-sha224", "hmac-md5"])
    )
    config = load_config(write(site, text))
    assert [k.algorithm for k in config.keys] == [
        dns.tsig.HMAC_SHA512,
        dns.tsig.HMAC_SHA384,
        dns.tsig.HMAC_SHA224,
        dns.tsig.HMAC_MD5,
    ]


def test_key_secret_rules(site: Path) -> None:
    one_of = "one of secret, secret_file, secret_env"
    expect(site, "keys:\n  - name: k\n", "name: k", "keys[0]", f"{one_of} is required")
    expect(
        site,
        KEY + "    secret_env: HOME_KEY\n",
        "name: home-key",
        "keys[0]",
        f"{one_of} are exclusive",
        environ={"HOME_KEY": SECRET},
    )
    expect(
        site,
        "keys:\n  - name: k\n    secret: 'not base64!'\n",
        "secret",
        "keys[0].secret",
        "secret is not valid base64",
    )
    expect(
        site, "keys:\n  - name: k\n    secret: ''\n", "secret", "keys[0].secret", "secret is empty"
    )
    expect(
        site,
        "keys:\n  - secret: c2VjcmV0\n",
        "secret",
        "keys[0]",
        "name is required",
    )


def test_key_secret_env(site: Path) -> None:
    text = "keys:\n  - name: k\n    secret_env: K_SECRET\n"
    config = load_config(write(site, text), environ={"K_SECRET": "c2VjcmV0"})
    assert config.keys[0].secret == b"secret"
    expect(
        site, text, "secret_env", "keys[0].secret_env", "environment variable K_SECRET is not set"
    )
    expect(
        site,
        text,
        "secret_env",
        "keys[0].secret_env",
        "secret is not valid base64",
        environ={"K_SECRET": "???"},
    )


def test_key_secret_file(site: Path) -> None:
    key_file = site / "conf" / "k.key"
    key_file.write_text(keygen_text("k", "hmac-sha384"))
    text = "keys:\n  - name: k\n    secret_file: k.key\n"
    config = load_config(write(site, text))
    assert config.keys[0].algorithm == dns.tsig.HMAC_SHA384  # taken from the file
    assert config.keys[0].secret == read_key_file(key_file)[2]

    shown = str(key_file)
    expect(
        site,
        "keys:\n  - name: other\n    secret_file: k.key\n",
        "secret_file",
        "keys[0].secret_file",
        f"{shown}: key name 'k' differs from 'other'",
    )
    expect(
        site,
        text + "    algorithm: hmac-sha256\n",
        "secret_file",
        "keys[0].secret_file",
        f"{shown}: algorithm hmac-sha384 differs from hmac-sha256",
    )
    expect(
        site,
        "keys:\n  - name: k\n    secret_file: missing.key\n",
        "secret_file",
        "keys[0].secret_file",
        f"{site / 'conf' / 'missing.key'}: cannot read: No such file or directory",
    )
    key_file.write_text("just some text\n")
    expect(
        site,
        text,
        "secret_file",
        "keys[0].secret_file",
        f'{shown}: not a key clause (expected key "NAME" {{ algorithm ALG; secret "..."; }};)',
    )


def test_duplicate_key_names(site: Path) -> None:
    text = f"keys:\n  - name: k\n    secret: {SECRET}\n  - name: K.\n    secret: {SECRET}\n"
    expect(site, text, "K.", "keys[1].name", "duplicate key name 'K' (first at line 2)")


def test_bad_key_name(site: Path) -> None:
    expect(
        site,
        f"keys:\n  - name: a..b\n    secret: {SECRET}\n",
        "a..b",
        "keys[0].name",
        "invalid DNS name 'a..b': A DNS label is empty.",
    )


# -- read_key_file -----------------------------------------------------------


def test_read_key_file_variants(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_text(
        "# made by tsig-keygen\n"
        "// another comment\n"
        "/* and a\n   block */\n"
        'key   home-key{ algorithm  HMAC-SHA512 ;secret\n  "ab//cd+/" ; } ;\n'
    )
    assert read_key_file(path) == ("home-key", "hmac-sha512", base64.b64decode("ab//cd+/"))
    path.write_text('key "k" {\n\tsecret "c2VjcmV0";\n};\n')
    assert read_key_file(path) == ("k", "hmac-sha256", b"secret")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a key clause"),
        ('key "k" { algorithm hmac-sha256; };', "the key clause has no secret"),
        ('key "k" { algorithm hmac-sha256; secret "!!"; };', "secret is not valid base64"),
        ('key "k" { algorithm sha1; secret "c2VjcmV0"; };', "unknown algorithm 'sha1'"),
        ('key "k" { secret "c2VjcmV0"; secret "c2VjcmV0"; };', "secret given twice"),
        ('key "k" { secret "c2VjcmV0"; port 53; };', "unexpected statement 'port 53'"),
        ('key "k" { secret "c2VjcmV0"; }', "not a key clause"),
        ('key "a" { secret "c2VjcmV0"; };\nkey "b" { secret "c2VjcmV0"; };', "not a key clause"),
    ],
)
def test_read_key_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "k.key"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_key_file(path)


def test_read_key_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        read_key_file(tmp_path / "nope.key")


# -- users -------------------------------------------------------------------


def user(body: str) -> str:
    return BASE + "users:\n  - name: alice\n" + body


def test_user_password_hash_sources(site: Path) -> None:
    (site / "conf" / "alice.hash").write_text(HASH + "\n")
    config = load_config(write(site, user("    password_hash_file: alice.hash\n    hosts: []\n")))
    assert config.users[0].password_hash == HASH
    config = load_config(
        write(site, user("    password_hash_env: ALICE\n    hosts: []\n")),
        environ={"ALICE": HASH},
    )
    assert config.users[0].password_hash == HASH


def test_user_problems(site: Path) -> None:
    hint = "not a password hash (make one with `ddns-server passwd`)"
    expect(
        site,
        user("    password_hash: plaintext\n    hosts: []\n"),
        "plaintext",
        "users[0].password_hash",
        hint,
    )
    (site / "conf" / "alice.hash").write_text("nope\n")
    expect(
        site,
        user("    password_hash_file: alice.hash\n    hosts: []\n"),
        "alice.hash",
        "users[0].password_hash_file",
        f"{site / 'conf' / 'alice.hash'}: {hint}",
    )
    expect(
        site,
        user("    password_hash_env: ALICE\n    hosts: []\n"),
        "ALICE",
        "users[0].password_hash_env",
        "environment variable ALICE is not set",
    )
    expect(
        site,
        user("    hosts: []\n"),
        "name: alice",
        "users[0]",
        "one of password_hash, password_hash_file, password_hash_env is required",
    )
    expect(
        site,
        user(f"    password_hash: '{HASH}'\n"),
        "name: alice",
        "users[0].hosts",
        "hosts is required (the names this user may update)",
    )


def test_user_hosts(site: Path) -> None:
    body = f"    password_hash: '{HASH}'\n    hosts:\n      - home.dyn.example.test\n"
    expect(
        site,
        user(body + "      - home.example.org\n"),
        "home.example.org",
        "users[0].hosts[1]",
        "'home.example.org' is not inside any configured zone",
    )
    expect(
        site,
        user(body + "      - '*.dyn.example.test'\n"),
        "*.dyn",
        "users[0].hosts[1]",
        "'*.dyn.example.test': hosts are exact names, not wildcards",
    )
    expect(
        site,
        user(body + "      - 'bad name.dyn.example.test'\n"),
        "bad name",
        "users[0].hosts[1]",
        "invalid DNS name 'bad name.dyn.example.test'",
    )


def test_user_names(site: Path) -> None:
    entry = f"    password_hash: '{HASH}'\n    hosts: []\n"
    text = user(entry + "  - name: alice\n" + entry)
    conf = site / "conf" / "ddns.yaml"
    assert problems(site, text) == [
        f"{conf}:14: users[1].name: duplicate user name 'alice' (first at line 11)"
    ]
    text = BASE + "users:\n  - name: 'a:b'\n" + entry
    expect(site, text, "a:b", "users[0].name", "invalid user name 'a:b'")


# -- zones -------------------------------------------------------------------


def test_zone_names(site: Path) -> None:
    expect(site, "zones:\n  - dyndns_ttl: 5\n", "dyndns_ttl", "zones[0]", "name is required")
    expect(
        site,
        "zones:\n  - name: a.test\n  - name: A.test.\n",
        "A.test.",
        "zones[1].name",
        "duplicate zone 'A.test' (first at line 2)",
    )
    expect(
        site,
        "zones:\n  - name: " + "x" * 64 + ".test\n",
        "name",
        "zones[0].name",
        f"invalid DNS name '{'x' * 64}.test': A DNS label is > 63 octets long.",
    )


def test_zone_file_missing(site: Path) -> None:
    expect(
        site,
        "zones:\n  - name: a.test\n    file: a.zone\n",
        "file",
        "zones[0].file",
        f"no such file: {site / 'conf' / 'a.zone'}",
    )


def test_zone_file_syntax_error(site: Path) -> None:
    zone = site / "zones" / "dyn.example.test.zone"
    zone.write_text(ZONE + "www IN AAA 192.0.2.1\n")
    found = problems(site, BASE)
    assert found == [f"{site / 'zones' / 'dyn.example.test.zone'}:6: unknown rdatatype 'AAA'"]


def test_zone_file_syntax_error_relative(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (site / "zones" / "dyn.example.test.zone").write_text(ZONE + "www IN AAA 192.0.2.1\n")
    monkeypatch.chdir(site)
    write(site, BASE)
    with pytest.raises(ConfigError) as info:
        load_config(Path("conf/ddns.yaml"))
    assert info.value.problems == ["zones/dyn.example.test.zone:6: unknown rdatatype 'AAA'"]


def test_zone_file_apex_records(site: Path) -> None:
    zone = site / "zones" / "dyn.example.test.zone"
    shown = str(zone)
    zone.write_text(ZONE.replace("@ IN NS ns1\n", ""))
    expect(
        site,
        BASE,
        "file:",
        "zones[0].file",
        f"{shown}: no NS records at the zone apex 'dyn.example.test'",
    )
    zone.write_text(ZONE.replace("@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n", ""))
    expect(
        site,
        BASE,
        "file:",
        "zones[0].file",
        f"{shown}: no SOA record at the zone apex 'dyn.example.test'",
    )
    # A file written for another origin: the message names both.
    expect(
        site,
        BASE.replace("name: dyn.example.test", "name: other.example.test"),
        "file:",
        "zones[0].file",
        f"{shown}: the file is for zone dyn.example.test. (its $ORIGIN/SOA owner), not"
        " other.example.test.: give the file of other.example.test. or fix its $ORIGIN",
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dyndns_ttl", "2147483648", "2147483648 is out of range (expected 0..2147483647)"),
        ("dyndns_ttl", "-1", "-1 is out of range (expected 0..2147483647)"),
        ("journal_max_versions", "0", "0 is out of range (expected >= 1)"),
        ("journal_max_age_days", "-1", "-1 is out of range (expected >= 0)"),
        ("journal_max_age_days", "1.5", "expected an integer, got a number"),
    ],
)
def test_zone_numbers(site: Path, key: str, value: str, message: str) -> None:
    expect(site, BASE + f"    {key}: {value}\n", key, f"zones[0].{key}", message)


def test_zone_numbers_at_the_bounds(site: Path) -> None:
    text = BASE + "    dyndns_ttl: 0\n    journal_max_versions: 1\n    journal_max_age_days: 0\n"
    zone = load_config(write(site, text)).zones[0]
    assert (zone.dyndns_ttl, zone.journal_max_versions, zone.journal_max_age_days) == (0, 1, 0)


def test_notify(site: Path) -> None:
    expect(
        site,
        BASE + '    notify: ["ns2.example.test"]\n',
        "notify",
        "zones[0].notify[0]",
        "invalid address 'ns2.example.test': a host name is not allowed, give an IP address"
        " (expected IP, IP:PORT or "
        "[IPv6]:PORT; the port defaults to 53)",
    )


def test_allow_transfer(site: Path) -> None:
    expect(
        site,
        BASE + '    allow_transfer: ["key:nope"]\n',
        "allow_transfer",
        "zones[0].allow_transfer[0]",
        "unknown key 'nope' (configured keys: home-key, xfr-key)",
    )
    expect(
        site,
        BASE + '    allow_transfer: ["10.0.0.0/33"]\n',
        "allow_transfer",
        "zones[0].allow_transfer[0]",
        "invalid entry '10.0.0.0/33': the prefix length 33 is over 32 for IPv4"
        " (expected a network or key:NAME)",
    )


# -- update_policy -----------------------------------------------------------


def rule(body: str) -> str:
    return (
        BASE + "    update_policy:\n      - grant: home-key\n" + textwrap.indent(body, "        ")
    )


def policy(site: Path, body: str) -> PolicyRule:
    return load_config(write(site, rule(body))).zones[0].update_policy[0]


def test_policy_grant(site: Path) -> None:
    text = BASE + "    update_policy:\n      - grant: nokey\n        match: zonesub\n"
    expect(
        site,
        text,
        "nokey",
        "zones[0].update_policy[0].grant",
        "unknown key 'nokey' (configured keys: home-key, xfr-key)",
    )
    text = BASE + "    update_policy:\n      - match: zonesub\n"
    expect(site, text, "match", "zones[0].update_policy[0]", "grant is required (a key name)")


def test_policy_match(site: Path) -> None:
    expect(
        site,
        rule("match: subdomian\nname: home.dyn.example.test\n"),
        "subdomian",
        "zones[0].update_policy[0].match",
        "unknown match 'subdomian' (expected one of name, subdomain, zonesub, self, wildcard)",
    )
    expect(
        site,
        rule("types: [A]\n"),
        "grant",
        "zones[0].update_policy[0]",
        "match is required (one of name, subdomain, zonesub, self, wildcard)",
    )


@pytest.mark.parametrize("match", ["name", "subdomain", "wildcard"])
def test_policy_name_required(site: Path, match: str) -> None:
    expect(
        site,
        rule(f"match: {match}\n"),
        "grant",
        "zones[0].update_policy[0]",
        f"name is required for match {match}",
    )


def test_policy_name_inside_zone(site: Path) -> None:
    expect(
        site,
        rule("match: name\nname: www.example.org\n"),
        "www.example.org",
        "zones[0].update_policy[0].name",
        "'www.example.org' is not inside the zone 'dyn.example.test'",
    )
    expect(
        site,
        rule("match: wildcard\nname: home.dyn.example.test\n"),
        "home.dyn",
        "zones[0].update_policy[0].name",
        "wildcard names start with '*.', got 'home.dyn.example.test'",
    )
    expect(
        site,
        rule("match: wildcard\nname: '*.example.org'\n"),
        "*.example.org",
        "zones[0].update_policy[0].name",
        "'*.example.org' is not inside the zone 'dyn.example.test'",
    )


def test_policy_name_ignored_by_zonesub_and_self(site: Path) -> None:
    assert policy(site, "match: zonesub\nname: anything.example.org\n").name is None
    assert policy(site, "match: self\n") == PolicyRule(name("home-key"), "self", None, None)
    assert policy(site, "match: name\nname: dyn.example.test\n").name == name("dyn.example.test")


def test_policy_types(site: Path) -> None:
    base = "match: zonesub\n"
    assert policy(site, base).types is None
    assert policy(site, base + "types: [ANY]\n").types is None
    assert policy(site, base + "types: [a, TYPE65280, NULL]\n").types == frozenset(
        {dns.rdatatype.A, 65280, dns.rdatatype.NULL}
    )
    expect(
        site,
        rule(base + "types: [A, AAA]\n"),
        "AAA",
        "zones[0].update_policy[0].types[1]",
        "unknown record type 'AAA'",
    )
    expect(
        site,
        rule(base + "types: [AXFR]\n"),
        "AXFR",
        "zones[0].update_policy[0].types[0]",
        "AXFR is not a record type",
    )
    expect(
        site,
        rule(base + "types: []\n"),
        "types",
        "zones[0].update_policy[0].types",
        "empty list (omit types, or use [ANY], for every type)",
    )
    expect(
        site,
        rule(base + "types: A\n"),
        "types",
        "zones[0].update_policy[0].types",
        "expected a list, got a string",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.5", "1.5 is out of range (expected 0..1)"),
        ("-0.1", "-0.1 is out of range (expected 0..1)"),
        ("half", "expected a number, got a string"),
        ("true", "expected a number, got a boolean"),
    ],
)
def test_zone_max_change_share_is_checked(site: Path, value: str, message: str) -> None:
    text = BASE + f"    max_change_share: {value}\n"
    expect(site, text, "max_change_share", "zones[0].max_change_share", message)


def test_zone_max_change_share_bounds_and_default(site: Path) -> None:
    assert load_config(write(site, BASE)).zones[0].max_change_share == 0.5
    for value, expected in (("0", 0.0), ("1", 1.0), ("0.25", 0.25)):
        text = BASE + f"    max_change_share: {value}\n"
        assert load_config(write(site, text)).zones[0].max_change_share == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("maybe", "expected a boolean, got a string"),
        ("1", "expected a boolean, got an integer"),
        ("[true]", "expected a boolean, got a list"),
    ],
)
def test_dyndns_allow_private_addresses_is_a_boolean(site: Path, value: str, message: str) -> None:
    text = BASE + f"dyndns:\n  allow_private_addresses: {value}\n"
    expect(site, text, "allow_private_addresses", "dyndns.allow_private_addresses", message)


def test_dyndns_allow_private_addresses_default_and_off(site: Path) -> None:
    assert load_config(write(site, BASE)).dyndns.allow_private_addresses is True
    text = BASE + "dyndns:\n  allow_private_addresses: false\n"
    assert load_config(write(site, text)).dyndns.allow_private_addresses is False
