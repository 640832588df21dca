"""The `mirrors:` config section: validated strictly, without calling any provider."""

from __future__ import annotations

import textwrap
from pathlib import Path

import dns.tsig
import pytest

from ddns_server.config import load_config
from ddns_server.errors import ConfigError
from ddns_server.mirrors import registry

SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0"
ZONE = """\
$ORIGIN dyn.example.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
@ IN NS ns1
ns1 IN A 127.0.0.1
"""
BASE = f"""\
keys:
  - name: home-key
    secret: "{SECRET}"
zones:
  - name: dyn.example.test
    file: ../zones/dyn.example.test.zone
mirrors:
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "dyn.example.test.zone").write_text(ZONE)
    return tmp_path


def load(site: Path, mirrors: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = site / "conf" / "ddns.yaml"
    path.write_text(BASE + textwrap.indent(textwrap.dedent(mirrors), "  "))
    return load_config(path, environ=environ or {})


def problems(site: Path, mirrors: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(site, mirrors, environ)
    return info.value.problems


def test_interface_example(site: Path) -> None:
    config = load(
        site,
        """\
        - name: public
          provider: rfc2136
          zone: dyn.example.test
          upstream_zone: example.test
          names: ["home", "*.lab"]
          types: [A, AAAA, TXT, CNAME, MX, SRV, CAA]
          adopt: false
          calls_per_second: 5
          resync_interval: 3600
          max_change_share: 0.3
          options:
            server: "192.0.2.1:53"
            key: home-key
        """,
    )
    (spec,) = config.mirrors
    assert spec.name == "public" and spec.zone == "dyn.example.test."
    assert spec.upstream_zone == "example.test." and spec.names == ("home", "*.lab")
    assert spec.manages("x.lab.dyn.example.test.", "A")
    assert spec.options == {"server": "192.0.2.1:53", "key": "home-key"}
    resolved = registry.with_keys(spec, config.keys)
    assert isinstance(resolved.options["key"], dns.tsig.Key)


def test_defaults(site: Path) -> None:
    (spec,) = load(
        site,
        """\
        - {name: m, provider: rfc2136, zone: dyn.example.test, options: {server: 127.0.0.1}}
        """,
    ).mirrors
    assert spec.upstream_zone == "dyn.example.test." and spec.names == ("*",)
    assert spec.types == ("A", "AAAA", "TXT", "CNAME", "MX", "SRV", "CAA")
    assert not spec.adopt and spec.max_change_share == 0.3 and spec.resync_interval == 3600


def test_every_problem_named(site: Path) -> None:
    found = problems(
        site,
        """\
        - name: a
          provider: nosuch
          zone: other.test
        - name: a
          provider: rfc2136
          zone: dyn.example.test
          upstream_zone: elsewhere.test
          names: ["bad name", "home"]
          types: [A, SOA, BOGUS]
          max_change_share: 2
          adopt: "yes"
          options: {server: "x:99999", key: nokey, colour: blue}
        """,
    )
    text = "\n".join(found)
    assert "unknown provider 'nosuch'" in text
    assert "other.test. is not a served zone" in text
    assert "duplicate mirror name" in text
    assert "is not inside upstream_zone elsewhere.test." in text
    assert "bad name 'bad name'" in text
    assert "SOA cannot be mirrored" in text and "unknown record type 'BOGUS'" in text
    assert "max_change_share: 2 is out of range" in text
    assert "adopt: expected a boolean" in text
    assert "colour: unknown key" in text
    assert "unknown key 'nokey'" in text
    assert all(p.startswith(str(site / "conf" / "ddns.yaml") + ":") for p in found)


def test_missing_library_names_the_extra(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_findable", lambda module: module != "boto3")
    found = problems(
        site,
        """\
        - {name: r53, provider: route53, zone: dyn.example.test}
        """,
    )
    assert "pip install 'ddns-server[route53]'" in "\n".join(found)


def test_secrets_inline_file_env(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_findable", lambda module: True)
    (site / "conf" / "token").write_text("from-file\n")
    mirrors = """\
        - {name: a, provider: cloudflare, zone: dyn.example.test, options: {api_token: inline}}
        - {name: b, provider: cloudflare, zone: dyn.example.test, options: {api_token_file: token}}
        - {name: c, provider: cloudflare, zone: dyn.example.test, options: {api_token_env: CF}}
        """
    specs = load(site, mirrors, {"CF": "from-env"}).mirrors
    assert [s.options["api_token"] for s in specs] == ["inline", "from-file", "from-env"]
    found = "\n".join(
        problems(
            site,
            """\
            - {name: a, provider: cloudflare, zone: dyn.example.test, options: {zone_id: x}}
            - name: b
              provider: cloudflare
              zone: dyn.example.test
              options: {api_token: x, api_token_env: CF}
            - {name: c, provider: cloudflare, zone: dyn.example.test, options: {api_token_env: N}}
            """,
        )
    )
    assert "api_token, api_token_file or api_token_env is required" in found
    assert "are exclusive" in found
    assert "environment variable N is not set" in found


def test_missing_provider_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from ddns_server.mirrors.base import PermanentError
    from ddns_server.mirrors.spec import MirrorSpec

    monkeypatch.setitem(registry.PROVIDERS, "broken", "ddns_server.mirrors.nosuch.X")
    assert "module ddns_server.mirrors.nosuch is missing" in (registry.check("broken") or "")
    with pytest.raises(PermanentError, match="nosuch"):
        registry.create(MirrorSpec("m", "broken", "z.", "z."))


def test_every_provider_describes_itself() -> None:
    for name in registry.PROVIDERS:
        info = registry.describe(name)
        assert info.library and (info.extra or name == "rfc2136")
    assert registry.describe("rfc2136").options["server"].required
    assert registry.describe("octodns").passthrough


def test_option_types_from_the_description(site: Path) -> None:
    found = "\n".join(
        problems(
            site,
            """\
            - name: a
              provider: rfc2136
              zone: dyn.example.test
              options: {server: 127.0.0.1, timeout: soon}
            - name: b
              provider: cloudflare
              zone: dyn.example.test
              options: {api_token: x, proxied: "maybe"}
            """,
        )
    )
    assert "timeout: expected a number" in found
    assert "proxied: expected a boolean" in found
