"""The engine end to end with another provider: ddns-server mirroring to Route 53
(moto's server mode on loopback), the secret from the environment.

The provider itself is tested in test_provider_route53.py; here the whole
path: an UPDATE journaled, the worker woken, the route53 provider built from
the config, the upstream equal on the managed names, the rest untouched.
"""

from __future__ import annotations

from typing import Any

import dns.query
import dns.update
import pytest
from conftest import ServerFactory
from harness import EXAMPLE_ZONE_NAME, TsigKey, wait_for

from ddns_server.mirrors.base import RRset

pytest.importorskip("boto3")
pytest.importorskip("moto")

from test_provider_route53 import OUTSIDE, ZONE, Moto, moto  # noqa: E402, F401

from ddns_server.mirrors.route53 import Route53Provider  # noqa: E402

OURS = EXAMPLE_ZONE_NAME
UPDATE_KEY = TsigKey.generate("update-key")
OUR_ZONE = f"""$ORIGIN {OURS}.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 604800 300
@ NS ns1
ns1 A 192.0.2.1
home A 192.0.2.10
other A 192.0.2.30
"""


def test_changes_reach_route53(moto: Moto, server_factory: ServerFactory) -> None:  # noqa: F811
    zone_id = moto.new_zone()
    options: dict[str, Any] = {
        **moto.options(zone_id),
        "secret_access_key_env": "MIRROR_AWS_SECRET",
    }
    del options["secret_access_key"]
    server = server_factory(
        {OURS: OUR_ZONE},
        {
            "keys": [UPDATE_KEY.config()],
            "mirrors": [
                {
                    "name": "aws",
                    "provider": "route53",
                    "zone": OURS,
                    "upstream_zone": ZONE,
                    "names": ["home", "*.lab"],
                    "resync_interval": 0,
                    "options": options,
                }
            ],
        },
        zone_extra={OURS: {"update_policy": [{"grant": UPDATE_KEY.name, "match": "zonesub"}]}},
        env={"MIRROR_AWS_SECRET": moto.secret},
    )
    upstream = Route53Provider(moto.options(zone_id), ZONE)

    def managed() -> set[RRset]:
        return {r for r in upstream.read() if r.name.endswith(f"{OURS}.")}

    def update(*ops: tuple[Any, ...]) -> None:
        message = dns.update.UpdateMessage(OURS, keyring=UPDATE_KEY.keyring())
        for op, *args in ops:
            getattr(message, op)(*args)
        assert dns.query.tcp(message, "127.0.0.1", port=server.dns_port, timeout=5).rcode() == 0

    home = RRset(f"home.{OURS}.", "A", 300, ("192.0.2.10",))
    wait_for(lambda: managed() == {home}, timeout=20, message="the first push")
    update(
        ("replace", "home", 60, "A", "198.51.100.5"),
        ("add", "home", 60, "TXT", '"hello"'),
        ("add", "x.lab", 300, "CNAME", f"home.{OURS}."),
        ("add", "other", 300, "AAAA", "2001:db8::30"),  # not managed
    )
    expected = {
        RRset(f"home.{OURS}.", "A", 60, ("198.51.100.5",)),
        RRset(f"home.{OURS}.", "TXT", 60, ('"hello"',)),
        RRset(f"x.lab.{OURS}.", "CNAME", 300, (f"home.{OURS}.",)),
    }
    wait_for(lambda: managed() == expected, timeout=20, message="the changes at Route 53")
    update(("delete", "x.lab", "CNAME"), ("delete", "home", "TXT"))
    wait_for(
        lambda: managed() == {RRset(f"home.{OURS}.", "A", 60, ("198.51.100.5",))},
        timeout=20,
        message="the deletes at Route 53",
    )
    assert upstream.read([OUTSIDE.key]) == [OUTSIDE]
    upstream.close()
