"""Provider modules without their peers: the descriptions the config reader uses,
and the conversions between the providers' dialects and RRset form."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from ddns_server.mirrors import rdata
from ddns_server.mirrors.base import PermanentError
from ddns_server.mirrors.options import Option

PROVIDERS = {
    "route53": ("boto3", "Route53Provider"),
    "cloudflare": ("cloudflare", "CloudflareProvider"),
    "dnspod": ("tencentcloud", "DnspodProvider"),
    "octodns": ("octodns", "OctodnsProvider"),
}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_module_describes_itself_without_its_library(name: str) -> None:
    """The config reader imports the module for OPTIONS/EXTRA/LIBRARY even where the
    extra is not installed: the module must not import its SDK at import time."""
    blocked, cls = PROVIDERS[name]
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"import ddns_server.mirrors.{name} as m\n"
        "print(m.EXTRA, m.LIBRARY, sorted(m.OPTIONS))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == name
    module = importlib.import_module(f"ddns_server.mirrors.{name}")
    assert all(isinstance(o, Option) for o in module.OPTIONS.values())
    assert any(o.required for o in module.OPTIONS.values())
    assert hasattr(module, cls)


def test_secrets_are_marked() -> None:
    secrets = {
        name: sorted(
            k
            for k, o in importlib.import_module(f"ddns_server.mirrors.{name}").OPTIONS.items()
            if o.secret
        )
        for name in PROVIDERS
    }
    assert secrets == {
        "route53": ["access_key_id", "secret_access_key", "session_token"],
        "cloudflare": ["api_token"],
        "dnspod": ["secret_id", "secret_key"],
        "octodns": [],
    }


def test_relative_and_absolute_names() -> None:
    zone = "example.test."
    assert rdata.relative("home.dyn.example.test.", zone) == "home.dyn"
    assert rdata.relative(zone, zone) == "@"
    assert rdata.absolute("@", zone) == zone
    assert rdata.absolute("Home.Dyn", zone) == "home.dyn.example.test."
    assert rdata.owner("\\042.lab.example.test.") == "*.lab.example.test."  # decimal
    with pytest.raises(PermanentError):
        rdata.relative("home.elsewhere.test.", zone)
    assert rdata.zone_name("Example.Test") == zone


def test_route53_names_use_octal_escapes() -> None:
    from ddns_server.mirrors.route53 import aws_name

    assert aws_name("\\052.lab.Example.Test.") == "*.lab.example.test."
    # "@" inside a label: the same name as the master-file (decimal) escape gives
    assert aws_name("a\\100b.example.test.") == rdata.owner("a\\064b.example.test.")


@pytest.mark.parametrize(
    ("rdtype", "text", "expected"),
    [
        ("CNAME", "Target.Example.Test", "target.example.test."),
        ("MX", "10 Mail.example.test", "10 mail.example.test."),
        ("TXT", '"a b"   "c"', '"a b" "c"'),
        ("AAAA", "2001:DB8:0::1", "2001:db8::1"),
        ("SRV", "0 5 443 Host.example.test.", "0 5 443 host.example.test."),
    ],
)
def test_canonical_values(rdtype: str, text: str, expected: str) -> None:
    assert rdata.canonical(rdtype, text) == expected


def test_bad_value_is_permanent() -> None:
    with pytest.raises(PermanentError, match="bad A value"):
        rdata.canonical("A", "not-an-address")


def test_txt_plain_and_quoted() -> None:
    assert rdata.txt_from_plain("v=spf1 -all") == '"v=spf1 -all"'
    assert rdata.txt_from_plain('"v=spf1 -all"') == '"v=spf1 -all"'
    assert rdata.txt_from_plain('say "hi"') == '"say \\"hi\\""'
    long = "x" * 300
    assert rdata.txt_from_plain(long) == f'"{"x" * 255}" "{"x" * 45}"'
    assert rdata.txt_text('"v=spf1" " -all"') == "v=spf1 -all"
    assert rdata.txt_from_plain(rdata.txt_text('"say \\"hi\\""')) == '"say \\"hi\\""'


def test_make_rrset_sorts_and_dedups() -> None:
    rrset = rdata.make_rrset("Home.Example.Test", "A", 60, ["192.0.2.2", "192.0.2.1", "192.0.2.2"])
    assert rrset.name == "home.example.test."
    assert rrset.values == ("192.0.2.1", "192.0.2.2")


def test_octodns_error_classes() -> None:
    from ddns_server.mirrors.base import TransientError
    from ddns_server.mirrors.octodns import classify

    class Response:
        def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.status_code, self.headers, self.text = status, headers or {}, "body"

    class HTTPError(Exception):
        def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
            super().__init__(f"HTTP {status}")
            self.response = Response(status, headers)

    limited = classify(HTTPError(429, {"Retry-After": "7"}))
    assert isinstance(limited, TransientError) and limited.retry_after == 7.0
    assert isinstance(classify(HTTPError(503)), TransientError)
    assert isinstance(classify(HTTPError(401)), PermanentError)
    try:
        try:
            raise HTTPError(401)
        except HTTPError:
            raise Exception("unauthorized") from None
    except Exception as wrapped:
        # `from None` hides the context: nothing to go on, so permanent
        assert isinstance(classify(wrapped), PermanentError)

    class ReadTimeout(Exception):
        pass

    assert isinstance(classify(ReadTimeout("slow")), TransientError)
    assert isinstance(classify(ConnectionRefusedError()), TransientError)
    assert isinstance(classify(KeyError("x")), PermanentError)


def test_flag_options() -> None:
    from ddns_server.mirrors.options import flag

    assert flag(True, "x") is True and flag("false", "x") is False and flag("Yes", "x") is True
    with pytest.raises(ValueError, match="proxied"):
        flag("maybe", "proxied")


def test_bad_timeout_is_a_permanent_error() -> None:
    pytest.importorskip("cloudflare")
    from ddns_server.mirrors.cloudflare import CloudflareProvider

    with pytest.raises(PermanentError, match="timeout"):
        CloudflareProvider({"api_token": "t", "timeout": "soon"}, "example.test")
