"""The client's pure parts: address classification, consensus, the state file, config errors."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

import dns.name
import pytest

from ddns_server.client import state as state_mod
from ddns_server.client.addresses import (
    DEFAULT_ROUTE_TARGETS,
    Answer,
    SourceError,
    decide,
    not_public_reason,
    parse_checkip,
    psutil_addresses,
    rejection,
)
from ddns_server.client.addresses import Source as S
from ddns_server.client.config import load_client_config
from ddns_server.errors import ConfigError

ip = ipaddress.ip_address

# -- classification ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("8.8.8.8", None),
        ("2a00:1450:4001:80b::200e", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.5.4", "private"),
        ("fd00::1", "private"),
        ("198.51.100.7", "private"),  # documentation: nothing routes it
        ("2001:db8::1", "private"),
        ("100.64.0.1", "not a globally routable"),  # CGNAT (RFC 6598)
        ("::ffff:8.8.8.8", "IPv4-mapped"),
    ],
)
def test_not_public_reason(text: str, reason: str | None) -> None:
    found = not_public_reason(ip(text))
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_rejection_honours_allow_private_but_never_unspecified_or_multicast() -> None:
    assert rejection(ip("10.0.0.1"), allow_private=True) is None
    assert rejection(ip("127.0.0.1"), allow_private=True) is None
    assert "allow_private" in (rejection(ip("10.0.0.1"), allow_private=False) or "")
    assert rejection(ip("8.8.8.8"), allow_private=False) is None
    for text in ("0.0.0.0", "::", "224.0.0.1", "ff02::1"):
        assert rejection(ip(text), allow_private=True) is not None


@pytest.mark.parametrize(
    ("body", "family", "expected"),
    [
        ("Current IP Address: 203.0.113.9", 4, "203.0.113.9"),
        ("<html><body>Current IP Address: 203.0.113.9</body></html>\n", 4, "203.0.113.9"),
        ("current ip address:2001:db8::9", 6, "2001:db8::9"),
        ("  198.51.100.1\r\n", 4, "198.51.100.1"),
        ("2001:db8::1\n", 6, "2001:db8::1"),
    ],
)
def test_parse_checkip(body: str, family: int, expected: str) -> None:
    assert parse_checkip(body, family) == ip(expected)


@pytest.mark.parametrize(
    ("body", "family", "message"),
    [
        ("198.51.100.1", 6, "not an IPv6 address"),
        ("2001:db8::1", 4, "not an IPv4 address"),
        ("<html>oops</html>", 4, "not an IP address"),
        ("", 4, "not an IP address"),
    ],
)
def test_parse_checkip_errors(body: str, family: int, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_checkip(body, family)


def test_interface_without_psutil_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(SourceError, match=r"needs psutil: pip install 'ddns-server\[client\]'"):
        psutil_addresses("Ethernet", 4)


# -- consensus ------------------------------------------------------------------------


def answers(*values: str | None) -> list[Answer]:
    return [
        Answer(S("checkip", f"http://s{i}/"), ip(v) if v else None, None if v else "down")
        for i, v in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("policy", "values", "expected"),
    [
        ("first", ["198.51.100.1", "198.51.100.2"], "198.51.100.1"),
        ("first", [None, "198.51.100.2", "198.51.100.3"], "198.51.100.2"),
        ("first", [None, None], None),
        ("majority", ["198.51.100.1", "198.51.100.1", "198.51.100.2"], "198.51.100.1"),
        ("majority", ["198.51.100.1", "198.51.100.1", None], "198.51.100.1"),
        ("majority", ["198.51.100.1", "198.51.100.2", None], None),  # 1 of 3
        ("majority", ["198.51.100.1", None], None),  # half is not a majority
        ("majority", ["198.51.100.1", "198.51.100.2"], None),
        ("majority", ["198.51.100.1"], "198.51.100.1"),
        ("majority", ["198.51.100.1"] * 2 + ["198.51.100.2"] * 2, None),
    ],
)
def test_decide(policy: str, values: list[str | None], expected: str | None) -> None:
    decision = decide(4, policy, answers(*values))
    assert decision.address == (ip(expected) if expected else None)
    if expected is None:
        assert "down" in decision.reason or "no majority" in decision.reason


def test_decide_names_the_sources_in_its_reason() -> None:
    decision = decide(4, "majority", answers("198.51.100.1", "198.51.100.1", None))
    assert decision.reason.startswith("2 of 3 sources agree")
    assert "checkip http://s2/: down" in decision.reason


# -- state file -------------------------------------------------------------------------


def test_state_round_trip_and_atomic_save(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    assert state_mod.load(path).sent == {}
    st = state_mod.State()
    st.record_sent("home.example.test", "A", "198.51.100.1")
    st.record_sent("home.example.test", "AAAA", "2001:db8::1")
    st.block("office.example.test", "A", "fp1", "badauth")
    state_mod.save(path, st)
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left
    again = state_mod.load(path)
    assert again.last_sent("home.example.test", "A") == "198.51.100.1"
    assert again.last_sent("home.example.test", "AAAA") == "2001:db8::1"
    assert again.last_sent("office.example.test", "A") is None
    assert again.blocked_by("office.example.test", "A", "fp1") == "badauth"
    assert again.blocked_by("office.example.test", "A", "fp2") is None  # settings changed
    assert again.blocked_by("office.example.test", "AAAA", "fp1") is None
    again.unblock("office.example.test", "A")
    assert again.blocked_by("office.example.test", "A", "fp1") is None


@pytest.mark.parametrize(
    "text", ["{not json", '{"version": 99}', "[]", '{"version": 1, "sent": 3}']
)
def test_a_damaged_state_file_starts_afresh(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    assert state_mod.load(path).sent == {}


def test_state_file_is_json_with_a_version(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    st = state_mod.State()
    st.record_sent("h.example.test", "A", "198.51.100.1")
    state_mod.save(path, st)
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["sent"] == {"h.example.test": {"A": "198.51.100.1"}}


# -- config -------------------------------------------------------------------------------

SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"  # base64


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_client_config(path, environ=environ or {})
    return [p.removeprefix(f"{path}:") for p in info.value.problems]


GOOD = f"""\
hostnames: [home.dyn.example.test]
ipv4:
  policy: majority
  sources:
    - checkip: https://ddns.example.test/nic/checkip
    - interface: eth0
    - route: true
ipv6:
  sources: [{{route: "2001:db8::1"}}]
rfc2136:
  server: "192.0.2.1"
  key: home-key
  secret: {SECRET}
"""


def test_a_good_config(tmp_path: Path) -> None:
    config = load_client_config(write(tmp_path, GOOD), environ={})
    assert config.hostnames == (dns.name.from_text("home.dyn.example.test"),)
    assert [f.version for f in config.families] == [4, 6]
    assert config.families[0].policy == "majority"
    assert config.families[1].policy == "first"
    assert config.families[0].sources[2] == S("route", DEFAULT_ROUTE_TARGETS[4], 7)
    assert config.state_file == tmp_path / "client-state.json"
    assert config.rfc2136 is not None
    assert (config.rfc2136.host, config.rfc2136.port, config.rfc2136.ttl) == ("192.0.2.1", 53, 60)
    assert config.rfc2136.algorithm == "hmac-sha256"
    assert config.method == "rfc2136" and not config.allow_private


def test_the_fingerprint_follows_the_credentials(tmp_path: Path) -> None:
    first = load_client_config(write(tmp_path, GOOD), environ={}).fingerprint()
    other = GOOD.replace(SECRET, "b3RoZXJvdGhlcm90aGVy")
    assert load_client_config(write(tmp_path, other), environ={}).fingerprint() != first
    assert SECRET not in first


def test_unknown_keys_and_bad_values_name_file_and_line(tmp_path: Path) -> None:
    text = """\
hostnames: [home.dyn.example.test, home]
ipv4:
  policy: most
  sources:
    - checkip: ftp://x/
    - {interface: eth0, route: true}
    - route: "2001:db8::1"
ipv6:
  sources: []
intervall: 60
timeout: 0
rfc2136:
  server: "192.0.2.1:99999"
  secret: "not base64!"
"""
    found = problems(tmp_path, text)
    assert "1: hostnames[1]: 'home' is not a fully qualified host name" in found
    assert "3: ipv4.policy: expected one of first, majority" in found
    assert "5: ipv4.sources[0].checkip: 'ftp://x/' is not an http:// or https:// URL" in found
    assert "6: ipv4.sources[1]: exactly one of checkip, interface, route" in found
    assert "7: ipv4.sources[2].route: 2001:db8::1 is not an IPv4 address" in found
    assert "9: ipv6.sources: expected a non-empty list of sources" in found
    assert any(p.startswith("10: intervall: unknown key (expected one of") for p in found)
    assert "11: timeout: 0 is out of range (expected 0.1..300)" in found
    assert any(p.startswith("13: rfc2136.server: bad server") for p in found)
    assert found == sorted(found, key=lambda p: int(p.split(":")[0]))


def test_method_and_sources_are_required(tmp_path: Path) -> None:
    found = problems(tmp_path, "hostnames: [h.example.test]\n")
    assert "1: one of ipv4, ipv6 is required (where the addresses come from)" in found
    assert "1: exactly one of rfc2136, dyndns2 is required (how to update)" in found


def test_secrets_inline_file_env(tmp_path: Path) -> None:
    base = "hostnames: [h.example.test]\nipv4: {sources: [{route: true}]}\n"
    both = (
        base + "dyndns2: {url: 'https://x/nic/update', username: u, password: p, password_env: P}\n"
    )
    assert "3: dyndns2: one of password, password_file, password_env are exclusive" in problems(
        tmp_path, both
    )
    missing = base + "dyndns2: {url: 'https://x/nic/update', username: u, password_env: P}\n"
    assert "3: dyndns2.password_env: environment variable P is not set" in problems(
        tmp_path, missing
    )
    config = load_client_config(write(tmp_path, missing), environ={"P": "pw"})
    assert config.dyndns2 is not None and config.dyndns2.password == "pw"
    (tmp_path / "pw.txt").write_text("from-file\n")
    from_file = (
        base + "dyndns2: {url: 'https://x/nic/update', username: u, password_file: pw.txt}\n"
    )
    config = load_client_config(write(tmp_path, from_file), environ={})
    assert config.dyndns2 is not None and config.dyndns2.password == "from-file"
    no_ca = (
        base + "dyndns2: {url: 'https://x/nic/update', username: u, password: p, ca_file: no.pem}\n"
    )
    assert "3: dyndns2.ca_file: no.pem: no such file" in problems(tmp_path, no_ca)


def test_rfc2136_key_file(tmp_path: Path) -> None:
    (tmp_path / "home.key").write_text(
        f'key "home-key" {{\n\talgorithm hmac-sha512;\n\tsecret "{SECRET}";\n}};\n'
    )
    base = "hostnames: [h.example.test]\nipv4: {sources: [{route: true}]}\n"
    config = load_client_config(
        write(tmp_path, base + "rfc2136: {server: '[::1]:5353', secret_file: home.key}\n"),
        environ={},
    )
    assert config.rfc2136 is not None
    assert config.rfc2136.key_name == dns.name.from_text("home-key")
    assert config.rfc2136.algorithm == "hmac-sha512"
    assert (config.rfc2136.host, config.rfc2136.port) == ("::1", 5353)
    clash = base + "rfc2136: {server: a.example, key: other, secret_file: home.key}\n"
    assert "3: rfc2136.key: differs from the key file's name 'home-key'" in problems(
        tmp_path, clash
    )
    no_name = base + f"rfc2136: {{server: a.example, secret: {SECRET}}}\n"
    assert "3: rfc2136.key: is required (the TSIG key's name)" in problems(tmp_path, no_name)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "hostnames: [a\nipv4: {\n")
    assert len(found) == 1 and "YAML syntax error" in found[0]


def test_interface_addresses_through_psutil() -> None:
    """The path Windows and macOS take (psutil), tried on this machine's loopback."""
    psutil = pytest.importorskip("psutil")
    name = next(n for n, addrs in psutil.net_if_addrs().items() if n in ("lo", "lo0"))
    assert ip("127.0.0.1") in psutil_addresses(name, 4)
    with pytest.raises(SourceError, match="no interface named"):
        psutil_addresses("no-such-interface", 4)


def test_the_sample_config_loads() -> None:
    sample = Path(__file__).resolve().parents[2] / "conf" / "client.yaml"
    config = load_client_config(sample, environ={"DDNS_PASSWORD": "x"})
    assert config.method == "dyndns2" and [f.version for f in config.families] == [4, 6]


def test_new_update_settings_forget_what_was_sent(tmp_path: Path) -> None:
    """Another server or account has not seen the addresses: they are sent again."""
    st = state_mod.State()
    assert not st.follow("fp1")  # nothing sent yet: nothing forgotten
    st.record_sent("h.example.test", "A", "198.51.100.1")
    assert not st.follow("fp1")
    path = tmp_path / "state.json"
    state_mod.save(path, st)
    again = state_mod.load(path)
    assert again.settings == "fp1" and again.last_sent("h.example.test", "A") == "198.51.100.1"
    assert again.follow("fp2")
    assert again.last_sent("h.example.test", "A") is None and again.settings == "fp2"


# -- DynDNS2 replies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "permanent", "message"),
    [
        (401, "", True, r"badauth: bad user name or password \(user alice\)"),
        (200, "badauth\n", True, "badauth"),
        (200, "nohost\n", True, "nohost: the host does not exist"),
        (200, "abuse\n", True, "abuse"),
        (200, "notfqdn\n", True, "notfqdn"),
        (200, "badagent\n", True, "badagent"),
        (200, "dnserr\n", False, "dnserr"),
        (200, "911\n", False, "911"),
        (503, "", False, "HTTP status 503"),
        (404, "", True, "HTTP status 404"),
        (200, "<html>huh</html>", False, "unexpected answer"),
    ],
)
def test_dyndns2_replies(status: int, body: str, permanent: bool, message: str) -> None:
    from ddns_server.client.updaters import UpdateError, dyndns2_reply

    with pytest.raises(UpdateError, match=message) as info:
        dyndns2_reply(status, body, "https://x/nic/update", "alice", "h.example.test")
    assert info.value.permanent is permanent


def test_dyndns2_good_replies() -> None:
    from ddns_server.client.updaters import dyndns2_reply

    assert dyndns2_reply(200, "good 198.51.100.1\n", "u", "alice", "h") == "good 198.51.100.1"
    assert dyndns2_reply(200, "nochg 198.51.100.1", "u", "alice", "h") == "nochg 198.51.100.1"


def test_the_client_loads_neither_twisted_nor_posix_only_modules() -> None:
    """`ddns-server client` must run on Windows: nothing Unix-only on its import path
    (fcntl is imported inside the Linux-only interface reader, when it runs)."""
    import subprocess

    code = (
        "import sys, ddns_server.cli, ddns_server.client.runner;"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('twisted', 'fcntl', 'pwd', 'grp', 'resource', 'posix_ipc'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
