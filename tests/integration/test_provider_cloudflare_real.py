"""The cloudflare mirror provider (Cloudflare's SDK) against our own /client/v4:
a second ddns-server is the "upstream", so the provider and the endpoint are
tested against one real implementation, not only against a double."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from harness import ServerProcess
from provider_contract import check_a_becomes_cname, check_create_replace_delete

pytest.importorskip("cloudflare")

from ddns_server.mirrors.cloudflare import CloudflareProvider  # noqa: E402

ZONE = "example.test."
ZONE_TEXT = f"""$ORIGIN {ZONE}
$TTL 3600
@ IN SOA ns1 hostmaster (1 3600 600 604800 300)
  IN NS ns1
ns1 IN A 192.0.2.53
"""


def test_cloudflare_provider_against_our_client_v4(
    server_factory: Callable[..., ServerProcess],
) -> None:
    upstream = server_factory({ZONE: ZONE_TEXT})
    made = upstream.cli("token", "create", "mirror", "--zone", ZONE, "--names", "*.dyn,dyn")
    assert made.returncode == 0, made.stderr
    options = {
        "api_token": made.stdout.strip(),
        "base_url": f"{upstream.http_url}/client/v4",
        "timeout": 5,
    }
    provider = CloudflareProvider(options, ZONE)
    try:
        check_create_replace_delete(provider, ZONE)
        check_a_becomes_cname(provider, ZONE)
    finally:
        provider.close()
    log = upstream.cli("journal", "log", ZONE, "--json")
    assert '"who": "mirror"' in log.stdout and '"channel": "api"' in log.stdout
