"""The `http:` and `rate_limit:` sections (issue 14 items 7 and 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddns_server.config import load_config
from ddns_server.errors import ConfigError
from ddns_server.model import Config, HttpLimits, RateLimit


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "ddns.yaml"
    path.write_text(text)
    return load_config(path, environ={})


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    prefix = f"{tmp_path / 'ddns.yaml'}:"
    return [p.removeprefix(prefix) for p in info.value.problems]


def test_defaults_rrl_off_and_http_limits(tmp_path: Path) -> None:
    config = load(tmp_path, "data_dir: var\n")
    assert config.rate_limit is None
    assert config.http_limits == HttpLimits()


def test_rate_limit_as_in_the_interface(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "rate_limit:\n"
        "  responses_per_second: 20\n"
        "  nxdomains_per_second: 10\n"
        "  errors_per_second: 5\n"
        "  window: 15\n"
        "  slip: 2\n"
        "  ipv4_prefix_length: 24\n"
        "  ipv6_prefix_length: 56\n"
        '  exempt: ["10.0.0.0/8", "2001:db8::/32"]\n',
    )
    assert config.rate_limit == RateLimit(20, 10, 5, 15, 2, 24, 56, ("10.0.0.0/8", "2001:db8::/32"))


def test_an_empty_rate_limit_section_turns_it_on_with_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "rate_limit:\n").rate_limit == RateLimit()
    assert load(tmp_path, "rate_limit: {}\n").rate_limit == RateLimit()


@pytest.mark.parametrize(
    "text, problem",
    [
        ("rate_limit:\n  slip: 11\n", "2: rate_limit.slip: 11 is out of range (expected 0..10)"),
        (
            "rate_limit:\n  ipv4_prefix_length: 33\n",
            "2: rate_limit.ipv4_prefix_length: 33 is out of range (expected 0..32)",
        ),
        (
            "rate_limit:\n  window: 0\n",
            "2: rate_limit.window: 0 is out of range (expected 1..3600)",
        ),
        (
            "rate_limit:\n  exempt: [10.0.0.300/8]\n",
            "2: rate_limit.exempt[0]: invalid network '10.0.0.300/8'",
        ),
        ("rate_limit:\n  responses: 5\n", "2: rate_limit.responses: unknown key"),
        ("http:\n  header_timeout: 0.1\n", "2: http.header_timeout: 0.1 is out of range"),
        ("http:\n  max_headers: lots\n", "2: http.max_headers: expected an integer, got a string"),
        ("http:\n  timeout: 5\n", "2: http.timeout: unknown key"),
    ],
)
def test_problems(tmp_path: Path, text: str, problem: str) -> None:
    (found,) = problems(tmp_path, text)
    assert found.startswith(problem), found


def test_http_limits(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "http:\n  max_request_line: 4096\n  max_header_bytes: 8192\n  max_headers: 50\n"
        "  max_body_bytes: 1024\n  header_timeout: 2.5\n  idle_timeout: 30\n"
        "  max_connections_per_source: 8\n",
    )
    assert config.http_limits == HttpLimits(4096, 8192, 50, 1024, 2.5, 30.0, 8)
