"""The abuse-limit sections: `http:` (HTTP request limits) and `rate_limit:` (RRL)."""

from __future__ import annotations

from typing import Any

import yaml

from ddns_server.config.reader import NULL, Reader, join
from ddns_server.model import HttpLimits, RateLimit

_HTTP_SIZES: dict[str, tuple[int, int]] = {  # key -> (low, high)
    "max_request_line": (256, 1 << 20),
    "max_header_bytes": (1024, 1 << 20),
    "max_headers": (8, 10000),
    "max_body_bytes": (0, 1 << 24),
    "max_connections_per_source": (1, 100000),
}
_HTTP_TIMES: dict[str, tuple[float, float]] = {
    "header_timeout": (0.5, 3600.0),
    "idle_timeout": (1.0, 86400.0),
}
_RRL_BOUNDS: dict[str, tuple[int, int]] = {
    "responses_per_second": (0, 1_000_000),
    "nxdomains_per_second": (0, 1_000_000),
    "errors_per_second": (0, 1_000_000),
    "window": (1, 3600),
    "slip": (0, 10),
    "ipv4_prefix_length": (0, 32),
    "ipv6_prefix_length": (0, 128),
}


def read_http(reader: Reader, node: yaml.Node | None) -> HttpLimits:
    if node is None:
        return HttpLimits()
    values = reader.mapping(node, "http", (*_HTTP_SIZES, *_HTTP_TIMES))
    found: dict[str, Any] = {}
    for key, (low, high) in _HTTP_SIZES.items():
        if key in values:
            number = reader.integer(values[key], join("http", key), low, high)
            if number is not None:
                found[key] = number
    for key, (flow, fhigh) in _HTTP_TIMES.items():
        if key in values:
            seconds = reader.number(values[key], join("http", key), flow, fhigh)
            if seconds is not None:
                found[key] = seconds
    return HttpLimits(**found)


def read_rate_limit(reader: Reader, node: yaml.Node | None) -> RateLimit | None:
    """Absent: RRL off. `rate_limit:` with no value: on, with the defaults."""
    if node is None:
        return None
    if node.tag == NULL:
        return RateLimit()
    values = reader.mapping(node, "rate_limit", (*_RRL_BOUNDS, "exempt"))
    found: dict[str, Any] = {}
    for key, (low, high) in _RRL_BOUNDS.items():
        if key in values:
            number = reader.integer(values[key], join("rate_limit", key), low, high)
            if number is not None:
                found[key] = number
    if "exempt" in values:
        found["exempt"] = reader.networks(values["exempt"], "rate_limit.exempt")
    return RateLimit(**found)
